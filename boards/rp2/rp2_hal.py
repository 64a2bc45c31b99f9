# rp2 HAL: runs the firmware's board loop (firmware/main.py) on an RP2040 board.
#
# main.py asks its HAL for: config(), block_device(), ports() -> [host, bus, peer]
# (read_into(buf) -> n without blocking, write(frame)), ticks_us() (30-bit wrapping
# microsecond ticks, firmware/ticks.py), wait(us) (sleep until input or timeout) and log(msg).
#
# Every class here gets its machine objects (UART, SPI card, Pin, streams, clock)
# injected; only build() creates hardware, and nothing happens at import. That is
# what lets tests/mpy/t_boot.py run this file unchanged under MicroPython with a
# stand-in `machine` module, and what keeps the classes type-checkable against the
# rp2 stubs.
#
# Site bus (RS-485, half duplex, DE and /RE on one GPIO): this HAL is the only
# writer of that UART. A frame goes out as: DE high, one write of the whole frame
# (the TX ring holds any bus frame), uart.flush() (returns when the FIFO is
# empty, i.e. while the last character may still be in the shift register), one
# more character time so its stop bit has left the pin, DE low. The TX-idle
# interrupt is never used for this: on the RP2040 it fires before the last stop bit.
#
# Peer link (full duplex UART): writes never block the loop. The port keeps a model
# of the TX ring (when it will have drained, at the line rate plus 2 %); a frame is
# handed to uart.write() only when it fits, otherwise it waits in a software queue
# that wait() and the next calls drain. The ring never overflows, so uart.write()
# never has to wait for the line.
#
# Host port (USB CDC, sys.stdin/sys.stdout buffers): the REPL's own port, made
# binary-safe with micropython.kbd_intr(-1) while the service runs (open/close).
# sys.stdin.buffer.readinto() blocks until the buffer is full, so the port reads
# one byte at a time while poll() says a byte is there, at most len(buf) per call.
# Escape to the REPL: after ESCAPE_QUIET_US without host input, a chunk made only
# of Ctrl-C (and CR/LF, Ctrl-A/B/D) bytes raises KeyboardInterrupt. A frame always
# starts with 0xA5 and the host tools write whole frames, so frame traffic can
# never look like that.
#
# SD card: micropython-lib's sdcard driver can return silently when the card
# rejects a data block. VerifiedCard reads every written block back and compares;
# a mismatch is retried, and a block that will not stick (or a driver OSError that
# persists) makes writeblocks/readblocks return -EIO, which the store turns into
# StoreError(S_IO_ERROR) for the node to report.
#
# Clock: the board clock is firmware/ticks.py's Clock over time.ticks_us(): 30-bit
# wrapping ticks (what the rp2 port's counter is), always a small int; everything here
# that keeps a time compares it with ticks_diff (firmware/ticks.py).
import sys

from firmware.wire import MAX_FRAME
from firmware.config import Config
from firmware.ticks import Clock, ticks_add, ticks_diff

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, List, Optional, Type
    from machine import UART, Pin, SPI
    from sdcard import SDCard

_EIO = 5
_BLOCK = 512

# bytes allowed in a host-port break-in chunk (Ctrl-C required among them)
_BREAK_OK = (1, 2, 3, 4, 10, 13)


def rxbuf_size(baud: int, latency_us: int, lo: int = 256, hi: int = 32766) -> int:
    """RX ring bytes for `baud` (8N1: baud/10 bytes per second) over `latency_us`."""
    n = (baud // 10) * (latency_us // 1000) // 1000
    if n < lo:
        return lo
    if n > hi:
        return hi
    return n


def _set_kbd_intr(ch: int) -> bool:
    try:
        import micropython
    except ImportError:      # CPython (tests): no REPL to protect
        return False
    micropython.kbd_intr(ch)
    return True


class UartRx:
    """Receive side shared by the UART ports: non-blocking, at most len(buf) bytes."""
    uart = None  # type: Any

    def any(self) -> int:
        return self.uart.any()

    def read_into(self, buf: "Any") -> int:
        n = self.uart.any()
        if not n:
            return 0
        if n > len(buf):
            n = len(buf)
        return self.uart.readinto(buf, n) or 0


class BusPort(UartRx):
    """RS-485 half-duplex site bus: one UART, DE and /RE driven by one pin."""

    def __init__(self, uart: "UART", de: "Pin", baud: int, clock: Clock) -> None:
        self.uart = uart
        self.de = de
        self.clock = clock
        self.char_us = 10000000 // baud + 1          # one 8N1 character, rounded up
        self.frames = 0
        de.value(0)


    def write(self, frame: "Any") -> None:
        uart = self.uart
        de = self.de
        de.value(1)
        try:
            sent = uart.write(frame) or 0
            if sent < len(frame):                    # only if txbuf < frame: finish it
                mv = memoryview(frame)
                while sent < len(frame):
                    sent += uart.write(mv[sent:]) or 0
            uart.flush()                             # FIFO empty: last char in the shifter
            self.clock.sleep_us(self.char_us)        # ...and now its stop bit is out
        finally:
            de.value(0)
        self.frames += 1


class PeerPort(UartRx):
    """Point-to-point peer link on a full-duplex UART; writes never block."""

    def __init__(self, uart: "UART", baud: int, txbuf: int, clock: Clock) -> None:
        self.uart = uart
        self.clock = clock
        # microseconds per character x 64, for 10.2 bit times (2 % slower than the
        # line really drains: the model never thinks the ring emptier than it is)
        self.char_q = (652800000 + baud - 1) // baud
        self.room = txbuf - 64
        self.busy_until = 0          # when the TX ring is estimated empty (clock us)
        self.q = []                  # type: List[Any]
        self.queued = 0              # frames that had to wait in the software queue
        self.frames = 0


    def _ahead(self, now: int) -> int:
        """us until the TX ring is estimated empty (0: empty). A time a drained ring left
        behind long ago may read as ahead once it is 2**29 us old: the ring never holds a
        second's worth, so anything farther ahead is that."""
        b = ticks_diff(self.busy_until, now)
        return b if 0 < b < 1000000 else 0

    def _backlog(self, now: int) -> int:
        b = self._ahead(now)
        if b <= 0:
            return 0
        return b * 64 // self.char_q + 1

    def _fits(self, n: int, now: int) -> bool:
        # a frame larger than the ring (only with a tiny txbuf override) goes when it is empty
        b = self._backlog(now)
        return b + n <= self.room or b == 0

    def _send(self, frame: "Any", now: int) -> None:
        start = self.busy_until if self._ahead(now) > 0 else now
        self.uart.write(frame)
        self.busy_until = ticks_add(start, len(frame) * self.char_q // 64 + 1)
        self.frames += 1

    def write(self, frame: "Any") -> None:
        now = self.clock.ticks()
        if self.q or not self._fits(len(frame), now):
            self.q.append(frame)
            self.queued += 1
            return
        self._send(frame, now)

    def pump(self) -> None:
        q = self.q
        if not q:
            return
        now = self.clock.ticks()
        while q and self._fits(len(q[0]), now):
            self._send(q.pop(0), now)

    def until_room_us(self) -> int:
        """Microseconds until the queued head frame fits (0: now or nothing queued)."""
        if not self.q:
            return 0
        now = self.clock.ticks()
        if self._fits(len(self.q[0]), now):
            return 0
        over = self._backlog(now) + len(self.q[0]) - self.room
        b = self._backlog(now)
        if over > b:
            over = b
        return over * self.char_q // 64 + 1


class HostPort:
    """The USB CDC port (sys.stdin/stdout buffers) as a binary frame port."""

    def __init__(self, inp: "Any", out: "Any", ready: "Callable[[], bool]", clock: Clock,
                 quiet_us: int = 1000000) -> None:
        self._rd = inp.readinto
        self._wr = out.write
        self._ready = ready
        self._b1 = bytearray(1)
        self.clock = clock
        self.quiet_us = quiet_us
        self.last_rx = clock.ticks()
        self.serving = False

    def any(self) -> bool:
        return self._ready()

    def read_into(self, buf: "Any") -> int:
        ready = self._ready
        rd = self._rd
        b1 = self._b1
        lim = len(buf)
        n = 0
        while n < lim and ready():
            rd(b1)
            buf[n] = b1[0]
            n += 1
        if n:
            now = self.clock.ticks()
            d = ticks_diff(now, self.last_rx)
            quiet = d >= self.quiet_us or d < 0          # (< 0: 2**29 us or more ago)
            self.last_rx = now
            if quiet and is_break_in(buf, n):
                self.escape()
        return n

    def write(self, frame: "Any") -> None:
        self._wr(frame)

    def escape(self) -> None:
        """Give the port back to the REPL: Ctrl-C on again, stop the loop."""
        self.serving = False
        _set_kbd_intr(3)
        raise KeyboardInterrupt


def is_break_in(buf: "Any", n: int) -> bool:
    """True for a short chunk of REPL control bytes containing at least one Ctrl-C."""
    if n > 16 or buf[0] == 0xA5:
        return False
    seen = False
    for i in range(n):
        c = buf[i]
        if c == 3:
            seen = True
        elif c not in _BREAK_OK:
            return False
    return seen


class VerifiedCard:
    """Block device over an SD card driver: every written block is read back and
    compared; retries, then -EIO (the store raises StoreError(S_IO_ERROR))."""

    def __init__(self, card: "SDCard", retries: int = 2) -> None:
        self.card = card
        self.retries = retries
        self._vbuf = bytearray(_BLOCK)
        self.mismatches = 0          # writes that did not stick (retried)
        self.io_errors = 0           # driver exceptions (retried)
        self.failed = 0              # operations given up with -EIO

    def readblocks(self, n: int, buf: "Any") -> int:
        for _ in range(1 + self.retries):
            try:
                self.card.readblocks(n, buf)
                return 0
            except OSError:
                self.io_errors += 1
        self.failed += 1
        return -_EIO

    def writeblocks(self, n: int, buf: "Any") -> int:
        count = len(buf) // _BLOCK
        if count == 1:
            return 0 if self._write1(n, buf) else -_EIO
        mv = memoryview(buf)
        for i in range(count):
            if not self._write1(n + i, mv[i * _BLOCK:(i + 1) * _BLOCK]):
                return -_EIO
        return 0

    def _write1(self, n: int, data: "Any") -> bool:
        card = self.card
        vbuf = self._vbuf
        for _ in range(1 + self.retries):
            try:
                card.writeblocks(n, data)
                card.readblocks(n, vbuf)
            except OSError:
                self.io_errors += 1
                continue
            if vbuf == data:
                return True
            self.mismatches += 1
        self.failed += 1
        return False

    def ioctl(self, op: int, arg: int) -> "Optional[int]":
        if op == 5:
            return _BLOCK
        r = self.card.ioctl(op, arg)
        if op == 4:
            return r
        return 0 if r is None else r


class PollReady:
    """ready() for a stream: poll it without waiting (allocation-free after the first call)."""

    def __init__(self, stream: "Any") -> None:
        import select
        p = select.poll()
        p.register(stream, select.POLLIN)
        self._ipoll = p.ipoll

    def __call__(self) -> bool:
        for _ in self._ipoll(0):
            return True
        return False


class PollIdle:
    """idle(us): sleep until one of the streams has input, or `us` has passed."""

    def __init__(self, streams: "List[Any]", sleep_us: "Callable[[int], None]") -> None:
        import select
        p = select.poll()
        for s in streams:
            p.register(s, select.POLLIN)
        self._ipoll = p.ipoll
        self._sleep_us = sleep_us

    def __call__(self, us: int) -> None:
        if us >= 1000:
            self._ipoll(us // 1000)
        elif us > 0:
            self._sleep_us(us)


class RP2Hal:
    """The HAL firmware/main.py's Board drives (see the top of this file)."""

    LOG_LINES = 32

    def __init__(self, conf: dict, bdev: "Any", host: HostPort, bus: BusPort, peer: PeerPort,
                 clock: Clock, idle: "Callable[[int], None]", led: "Any" = None) -> None:
        self.conf = conf
        self.bdev = bdev
        self.host = host
        self.bus = bus
        self.peer = peer
        self.clock = clock
        self.idle = idle
        self.led = led
        self._ports = [host, bus, peer]
        self.logs = []               # type: List[str]
        self.echo = True             # print log lines while the host port is not binary
        self._led_t = 0

    # -- main.py's interface --------------------------------------------------------
    def config(self) -> dict:
        return self.conf["config"]

    def block_device(self) -> "Any":
        return self.bdev

    def ports(self) -> list:
        return self._ports

    def ticks_us(self) -> int:
        return self.clock.ticks()

    def wait(self, us: int) -> None:
        peer = self.peer
        peer.pump()
        if self.led is not None:
            now = self.clock.ticks()
            if ticks_diff(now, self._led_t) >= 500000:
                self._led_t = now
                self.led.value(not self.led.value())
        if peer.q:
            r = peer.until_room_us()
            if r < us:
                us = r
        if us <= 0 or self.bus.any() or peer.any() or self.host.any():
            return
        self.idle(us)

    def log(self, msg: str) -> None:
        line = "%d ms: %s" % (self.clock.ticks() // 1000, msg)
        logs = self.logs
        logs.append(line)
        if len(logs) > self.LOG_LINES:
            logs.pop(0)
        if self.echo and not self.host.serving:
            print("arcopy:", msg)

    # -- service --------------------------------------------------------------------
    def open(self) -> None:
        """Make the USB port a binary host port (Ctrl-C off) for the copy service."""
        _set_kbd_intr(-1)
        self.host.serving = True
        self.host.last_rx = self.clock.ticks()

    def close(self) -> None:
        """Give the port back to the REPL (Ctrl-C on)."""
        self.host.serving = False
        _set_kbd_intr(3)
        if self.led is not None:
            self.led.value(0)

    def stats(self) -> dict:
        return {"bus_frames": self.bus.frames, "peer_frames": self.peer.frames,
                "peer_queued": self.peer.queued, "sd_mismatches": self.bdev.mismatches,
                "sd_io_errors": self.bdev.io_errors, "sd_failed": self.bdev.failed,
                "clock_wraps": self.clock.wraps}


def build(conf: dict, board: "Any", machine: "Any" = None, sdcard: "Any" = None,
          clock: "Any" = None, host: "Any" = None, idle: "Any" = None) -> RP2Hal:
    """Create the board's hardware objects from the pin map `board` (boards/rp2/pico.py)
    and config.json's dict `conf` ({"config": {...}, optional "pins": {...}}).

    machine, sdcard, clock (ticks_us/ticks_diff/sleep_us/sleep_ms), host
    ((stdin, stdout, ready)) and idle(us) default to the real ones on a board."""
    if machine is None:
        import machine as _machine
        machine = _machine
    if sdcard is None:
        import sdcard as _sdcard
        sdcard = _sdcard
    if clock is None:
        import time
        clock = time
    over = conf.get("pins") or {}

    def opt(name: str) -> "Any":
        return over[name] if name in over else getattr(board, name)

    cfg = Config.from_dict(conf["config"])
    mono = Clock(clock)
    # typed as the rp2 port's classes, so the calls below are checked against its stubs
    MPin = machine.Pin               # type: Type[Pin]
    MUART = machine.UART             # type: Type[UART]
    MSPI = machine.SPI               # type: Type[SPI]
    MSDCard = sdcard.SDCard          # type: Type[SDCard]
    latency = opt("MAX_LOOP_LATENCY_US")
    lo = opt("RXBUF_MIN")
    hi = opt("RXBUF_MAX")

    # microSD on SPI: pull-up on MISO (DO) before the SPI unit takes the pin
    MPin(opt("SD_MISO"), MPin.IN, MPin.PULL_UP)
    spi = MSPI(opt("SD_SPI"), baudrate=opt("SD_INIT_BAUD"), polarity=0, phase=0,
                      sck=MPin(opt("SD_SCK")), mosi=MPin(opt("SD_MOSI")), miso=MPin(opt("SD_MISO")))
    cs = MPin(opt("SD_CS"), MPin.OUT, value=1)
    card = MSDCard(spi, cs, baudrate=opt("SD_BAUD"))
    bdev = VerifiedCard(card)

    # site bus: receiver output floats while /RE is high, so pull RX up first
    MPin(opt("BUS_RX"), MPin.IN, MPin.PULL_UP)
    de = MPin(opt("BUS_DE"), MPin.OUT, value=0)
    bus_uart = MUART(opt("BUS_UART"), baudrate=cfg.bus_baud, tx=MPin(opt("BUS_TX")),
                            rx=MPin(opt("BUS_RX")), txbuf=opt("BUS_TXBUF"),
                            rxbuf=rxbuf_size(cfg.bus_baud, latency, lo, hi), timeout=0)

    # peer link
    MPin(opt("PEER_RX"), MPin.IN, MPin.PULL_UP)
    peer_rx = rxbuf_size(cfg.peer_baud, latency, lo, hi)
    peer_tx = peer_rx if peer_rx >= MAX_FRAME + 256 else MAX_FRAME + 256
    if peer_tx > hi:
        peer_tx = hi
    peer_uart = MUART(opt("PEER_UART"), baudrate=cfg.peer_baud, tx=MPin(opt("PEER_TX")),
                             rx=MPin(opt("PEER_RX")), txbuf=peer_tx, rxbuf=peer_rx, timeout=0)

    # host port: USB CDC through the REPL's stdio
    if host is None:
        inp = sys.stdin.buffer
        out = sys.stdout.buffer
        host = (inp, out, PollReady(sys.stdin))
        if idle is None:
            idle = PollIdle([bus_uart, peer_uart, sys.stdin], clock.sleep_us)
    if idle is None:
        idle = PollIdle([bus_uart, peer_uart], clock.sleep_us)
    hp = HostPort(host[0], host[1], host[2], mono, opt("ESCAPE_QUIET_US"))

    led = None
    try:
        led = MPin(opt("LED"), MPin.OUT, value=0)
    except (ValueError, TypeError):
        pass                         # a board without a plain LED pin
    return RP2Hal(conf, bdev, hp, BusPort(bus_uart, de, cfg.bus_baud, mono),
                  PeerPort(peer_uart, cfg.peer_baud, peer_tx, mono), mono, idle, led)
