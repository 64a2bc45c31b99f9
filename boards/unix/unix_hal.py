# unix HAL: an emulated board for firmware/main.py inside the MicroPython unix port.
#
# This is what runs instead of boards/rp2/rp2_hal.py when a board of the emulated rig is a
# real MicroPython interpreter (`arcopy rig up --runtime micropython`, or a board provisioned
# with `hal = "unix"`). It gives main.py's Board the same interface as every HAL: config(),
# block_device(), ports() -> [host, bus, peer] (read_into(buf) -> n without blocking,
# write(frame)), ticks_us(), wait(us) and log(msg). It imports only what the unix port has
# (no `machine`: that module is not part of this board).
#
# Ports. Every port is a pseudo-terminal, as for the CPython boards, so the hub and the host
# tools see no difference:
#   bus, peer  the hub's pty slaves, opened by path with open(path, "r+b", 0), put in raw
#              mode with VMIN = VTIME = 0, so a read returns at once with what is there (a
#              read of a larger buffer would otherwise wait until it is full);
#   host       a pty master inherited from the process that started the board (the unix
#              port cannot create a pty): its file descriptor number is "host_fd", opened
#              with open(fd, "r+b", 0); that descriptor is non-blocking, so a read returns
#              None when nothing is there and a write None when nobody reads the host side.
#              Without "host_fd" the host port is the interpreter's own stdin/stdout (a
#              provisioned board: the REPL's port, as USB CDC is on a Pico), put in raw
#              mode the same way; after ESCAPE_QUIET_US of silence a chunk made only of
#              Ctrl-C (and CR/LF, Ctrl-A/B/D) stops the service with KeyboardInterrupt, the
#              rp2 board's escape back to the REPL.
# select.poll tells wait() when any port has input. Every port paces its transmitter like a
# UART: a byte reaches the line only once the 10 bit times (8N1) of the byte before it at
# the port's baud rate have passed; what the far end does not take is dropped. A frame's
# bytes go out together once its last byte's time has passed (one wake-up per frame for
# this board, the hub and the receivers; bytes of a frame the ring cannot hold whole go out
# in 1 ms grains), and read_into sends what is due (the loop polls while it spins). Bytes wait
# in a fixed TX ring per port (Port: the bus and the host port block the writer while it is
# full, the peer port queues whole frames instead), never in a buffer that grows.
#
# Block device: the SD card is a file in the board's directory (the image), read and
# written in place with seek + readinto/write on an unbuffered file.
#
# Clock: firmware/ticks.py's Clock over time.ticks_us(), as on the rp2: ticks_us() gives
# the firmware 30-bit wrapping ticks; the ports' pacing here uses the same clock unwrapped
# (Clock.now(): small ints are 63-bit on this port). "clock_offset_us" starts the clock at
# that value, e.g. just below 2**30 to get a board past the wrap without waiting 18 minutes.
import sys
import time
import select

from firmware.ticks import Clock
from firmware.wire import MAX_FRAME

_BLOCK = 512
_GRAIN_US = 1000          # pacing: wake the transmitter at most this often
_FRAME_ENDS = 16          # frames mode: ends of queued frames kept (beyond: they leave in grains)
_BREAK_OK = (1, 2, 3, 4, 10, 13)

# keys of a board's config file that are the HAL's, not the firmware's
HAL_KEYS = ("name", "image", "host_link", "bus_tty", "peer_tty", "host_baud", "state_file",
            "disk_delay_us", "clock_offset_us", "clock_drift_ppm", "host_fd", "host_tty",
            "runtime", "escape_quiet_us", "heap_file")
_HEAP_FILE_US = 2000000   # how often the heap figures are written to "heap_file"
# transmit rings (bytes), allocated once per port: the bus as boards/rp2/pico.py's BUS_TXBUF,
# the peer link as rp2_hal's (one whole frame and a margin); the host port small, since a
# Pico's USB CDC buffers are not on its heap (a longer reply waits for the line: at 1 Mbaud
# a 533-byte read reply holds the loop ~0.2 ms)
BUS_TXBUF = 512
PEER_TXBUF = MAX_FRAME + 256
HOST_TXBUF = 512


def _raw_nowait(f):
    """Raw mode, and reads that return at once with what is there (VMIN = VTIME = 0)."""
    import termios
    fd = f.fileno()
    termios.setraw(fd)
    a = termios.tcgetattr(fd)
    cc = a[6]
    cc[5] = 0                 # VTIME
    cc[6] = 0                 # VMIN
    termios.tcsetattr(fd, termios.TCSANOW, a)


class FileBlockDevice:
    """MicroPython's block device protocol on an image file."""

    def __init__(self, path, delay_us=0):
        self.path = path
        self.f = open(path, "r+b", 0)
        self.f.seek(0, 2)
        self.nblocks = self.f.tell() // _BLOCK
        self.delay = delay_us
        self.reads = 0
        self.writes = 0

    def readblocks(self, n, buf, offset=0):
        ln = len(buf)
        pos = n * _BLOCK + offset
        if n < 0 or pos + ln > self.nblocks * _BLOCK:
            raise ValueError("read beyond the device")
        f = self.f
        f.seek(pos)
        got = f.readinto(buf)
        if got != ln:
            raise OSError(5)
        self.reads += 1
        return 0

    def writeblocks(self, n, buf, offset=0):
        ln = len(buf)
        pos = n * _BLOCK + offset
        if n < 0 or pos + ln > self.nblocks * _BLOCK:
            raise ValueError("write beyond the device")
        if self.delay:
            time.sleep_us(self.delay)
        f = self.f
        f.seek(pos)
        if f.write(buf) != ln:
            raise OSError(5)
        self.writes += 1
        return 0

    def ioctl(self, op, arg):
        if op == 4:
            return self.nblocks
        if op == 5:
            return _BLOCK
        return 0


class Port:
    """One UART-like port on a file: reads that never wait, a paced transmitter.

    Transmit side: a fixed ring of `ring` bytes, allocated once (a UART's TX ring: the rp2
    port allocates it on the heap at construction too), that drains at the line rate. When
    a frame does not fit:
      - queue=False (site bus, host port): write() waits until the line has drained room,
        as rp2_hal's BusPort does over a UART write that fills its ring (the rp2 port's
        machine.UART.write puts what fits in the ring and busy-waits for room);
      - queue=True (peer link): write() never waits; the frame waits whole, in a list of the
        frames the firmware already made, until it fits (rp2_hal's PeerPort). The primary
        frames the next peer frame only when less than one frame's airtime is queued, so
        that list stays short.
    No per-byte loops: bytes move in at most two slice copies into the ring, and out in at
    most two writes to the file per pump."""

    def __init__(self, f, baud, clock, name, ring=1024, queue=False, sleep_us=None, frames=False):
        self.f = f
        self.name = name
        self.clock = clock
        self.sleep_us = sleep_us if sleep_us is not None else time.sleep_us
        self.char64 = (640000000 + baud - 1) // baud      # one 8N1 character, us x 64
        self.grain = _GRAIN_US * 64 // self.char64 + 1    # bytes released per wake-up, at least
        self.ring = bytearray(ring)
        self.rv = memoryview(self.ring)
        self.size = ring
        self.rhead = 0               # ring[rhead] is the next byte for the line
        self.rlen = 0                # bytes in the ring waiting for the line
        self.t64 = 0                 # when ring[rhead] starts on the line (us x 64)
        self.wq = [] if queue else None   # frames waiting whole for ring room (peer)
        self.wq_bytes = 0
        self.queued = 0              # frames that had to wait in wq
        self.blocked_us = 0          # time write() waited for room (bus, host)
        self.rx_bytes = 0
        self.tx_bytes = 0
        self.tx_dropped = 0
        # frames: whole frames leave at once; fends is a small ring of the ends of the frames
        # in the ring (as counts of bytes ever put: put_n), oldest at fh
        self.fends = [0] * _FRAME_ENDS if frames else None
        self.fh = 0
        self.nf = 0
        self.put_n = 0               # bytes ever put in the ring
        self.out_n = 0               # bytes ever taken off it (to the line)

    def read_into(self, buf):
        if self.rlen:
            self.pump(self.clock.now() * 64)
        try:
            n = self.f.readinto(buf)
        except OSError:              # EIO: the other end is away for now
            return 0
        if not n:
            return 0
        self.rx_bytes += n
        return n

    def tx_pending(self):
        """Bytes written and not yet on the line (ring and waiting frames)."""
        return self.rlen + self.wq_bytes

    def _put(self, mv, off, n):
        # copy up to n bytes of mv[off:] into the ring's free room -> bytes copied
        free = self.size - self.rlen
        if n > free:
            n = free
        if n <= 0:
            return 0
        tail = self.rhead + self.rlen
        if tail >= self.size:
            tail -= self.size
        a = self.size - tail
        if a > n:
            a = n
        self.rv[tail:tail + a] = mv[off:off + a]
        if a < n:
            self.rv[0:n - a] = mv[off + a:off + n]
        self.rlen += n
        self.put_n += n
        return n

    def _end(self):
        # a whole frame is in the ring (frames mode): remember where it ends
        if self.fends is None or self.nf == _FRAME_ENDS:
            return
        i = self.fh + self.nf
        if i >= _FRAME_ENDS:
            i -= _FRAME_ENDS
        self.fends[i] = self.put_n
        self.nf += 1

    def write(self, frame):
        now64 = self.clock.now() * 64
        self.pump(now64)
        if not self.rlen and self.t64 < now64:
            self.t64 = now64
        n = len(frame)
        wq = self.wq
        if wq is not None and n <= self.size and (wq or n > self.size - self.rlen):
            wq.append(frame)
            self.wq_bytes += n
            self.queued += 1
            return n
        mv = memoryview(frame)
        done = self._put(mv, 0, n)
        while done < n:
            # ring full: wait until the line has taken the room the rest needs
            want = n - done
            if want > self.size:
                want = self.size
            k = want - (self.size - self.rlen)
            wait = (self.t64 + k * self.char64 - now64) // 64 + 1
            if wait > 0:
                self.sleep_us(wait)
                self.blocked_us += wait
            now64 = self.clock.now() * 64
            self.pump(now64)
            done += self._put(mv, done, n - done)
        self._end()
        return n

    def _out(self, mv):
        try:
            n = self.f.write(mv)
        except OSError:
            n = 0
        return n or 0

    def pump(self, now64):
        left = self.rlen
        if left:
            k = (now64 - self.t64) // self.char64
            if k > left:
                k = left
            if k > 0 and self.nf:
                # whole frames: up to the end of the last frame that is due; none due: nothing,
                # unless the ring is full (a writer waits for room)
                fe = self.fends
                due = self.out_n + k
                i = self.fh
                e = -1
                for _ in range(self.nf):
                    if fe[i] > due:
                        break
                    e = fe[i]
                    i += 1
                    if i == _FRAME_ENDS:
                        i = 0
                if e >= 0:
                    k = e - self.out_n
                elif left < self.size:
                    k = 0
            if k > 0:
                h = self.rhead
                a = self.size - h
                if a > k:
                    a = k
                n = self._out(self.rv[h:h + a])
                if a < k:
                    n += self._out(self.rv[0:k - a])
                if n < k:
                    self.tx_dropped += k - n         # nobody takes them: lost on the line
                self.tx_bytes += n
                h += k
                if h >= self.size:
                    h -= self.size
                self.rhead = h
                self.rlen = left - k
                self.t64 += k * self.char64
                self.out_n += k
                while self.nf and self.fends[self.fh] <= self.out_n:
                    self.fh += 1
                    if self.fh == _FRAME_ENDS:
                        self.fh = 0
                    self.nf -= 1
        wq = self.wq
        if wq:
            if not self.rlen and self.t64 < now64:
                self.t64 = now64
            while wq and len(wq[0]) <= self.size - self.rlen:
                f = wq.pop(0)
                self.wq_bytes -= len(f)
                self._put(memoryview(f), 0, len(f))
                self._end()

    def due64(self):
        """Clock time (us x 64) when the next chunk of queued bytes is on the line, or -1."""
        left = self.rlen
        if not left:
            return -1
        if self.nf:
            return self.t64 + self.char64 * (self.fends[self.fh] - self.out_n)
        return self.t64 + self.char64 * (left if left < self.grain else self.grain)


class StdioHostPort(Port):
    """The interpreter's own stdin/stdout as the host port (a provisioned board)."""

    def __init__(self, baud, clock, quiet_us):
        import termios
        self.saved = termios.tcgetattr(0)
        _raw_nowait(sys.stdin)
        Port.__init__(self, sys.stdin.buffer, baud, clock, "host", ring=HOST_TXBUF)
        self.out = sys.stdout.buffer
        self.quiet_us = quiet_us
        self.last_rx = clock.now()

    def read_into(self, buf):
        n = Port.read_into(self, buf)
        if n:
            now = self.clock.now()
            quiet = now - self.last_rx >= self.quiet_us
            self.last_rx = now
            if quiet and is_break_in(buf, n):
                raise KeyboardInterrupt
        return n

    def close(self):
        """Give the terminal back to the REPL as it was."""
        import termios
        termios.tcsetattr(0, termios.TCSANOW, self.saved)

    def pump(self, now64):
        f = self.f
        self.f = self.out
        try:
            Port.pump(self, now64)
        finally:
            self.f = f


def is_break_in(buf, n):
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


def _pid():
    f = open("/proc/self/stat")
    try:
        return int(f.read().split()[0])
    finally:
        f.close()


def _write_json_atomic(path, obj):
    import json
    import os
    tmp = path + ".tmp"
    f = open(tmp, "w")
    try:
        f.write(json.dumps(obj))
    finally:
        f.close()
    os.rename(tmp, path)


class UnixHal:
    """The HAL firmware/main.py's Board drives, on ptys, an image file and ticks_us()."""

    LOG_LINES = 32

    def __init__(self, conf):
        fw = {}
        hal = {}
        for k in conf:
            if k in HAL_KEYS:
                hal[k] = conf[k]
            else:
                fw[k] = conf[k]
        self.fw_config = fw
        self.name = hal.get("name", "board")
        self.clock = Clock(time, hal.get("clock_offset_us", 0))
        self.bdev = FileBlockDevice(hal["image"], hal.get("disk_delay_us", 0))
        clock = self.clock
        host_baud = hal.get("host_baud", 1000000)
        if "host_fd" in hal:
            host = Port(open(hal["host_fd"], "r+b", 0), host_baud, clock, "host", ring=HOST_TXBUF,
                        frames=True)
            self.stdio = False
        else:
            host = StdioHostPort(host_baud, clock, hal.get("escape_quiet_us", 1000000))
            self.stdio = True
        bus = Port(self._open_tty(hal["bus_tty"]), fw.get("bus_baud", 115200), clock, "bus",
                   ring=BUS_TXBUF, frames=True)
        peer = Port(self._open_tty(hal["peer_tty"]), fw.get("peer_baud", 115200), clock, "peer",
                    ring=PEER_TXBUF, queue=True, frames=True)
        self._ports = [host, bus, peer]
        p = select.poll()
        for port in self._ports:
            p.register(port.f, select.POLLIN)
        self._ipoll = p.ipoll
        self.logs = []
        self.board = None            # main.Board, when the boot script hands it over
        self.code_bytes = 0          # heap in use once the firmware is imported (boot script)
        self.heap_file = hal.get("heap_file")
        self._heap_next = 0
        self.host_tty = hal.get("host_tty")
        if hal.get("state_file"):
            _write_json_atomic(hal["state_file"], {"pid": _pid(), "host_tty": self.host_tty,
                                                   "started": time.time(),
                                                   "runtime": "micropython"})

    def _open_tty(self, path):
        f = open(path, "r+b", 0)
        _raw_nowait(f)
        drop = bytearray(256)        # what queued up while this board was down
        while f.readinto(drop):
            pass
        return f

    # -- main.py's interface ---------------------------------------------------------------
    def config(self):
        return dict(self.fw_config)

    def block_device(self):
        return self.bdev

    def ports(self):
        return self._ports

    def ticks_us(self):
        return self.clock.ticks()

    def log(self, msg):
        line = "%d ms %s: %s" % (self.clock.now() // 1000, self.name, msg)
        logs = self.logs
        logs.append(line)
        if len(logs) > self.LOG_LINES:
            logs.pop(0)
        if not self.stdio:
            print(line)

    def close(self):
        """The service stops: the REPL gets its terminal back (a provisioned board)."""
        if self.stdio:
            self._ports[0].close()

    def heap(self):
        """-> {"heap_peak", "mem_alloc", "mem_free", "code"}: the board's peak (main.py's
        sample), the heap now, and what the imported firmware and HAL held before the board's data."""
        import gc
        node = self.board.node if self.board is not None else None
        return {"heap_peak": getattr(node, "heap_peak", 0), "mem_alloc": gc.mem_alloc(),
                "mem_free": gc.mem_free(), "code": self.code_bytes}

    def _write_heap(self, now):
        self._heap_next = now + _HEAP_FILE_US
        try:
            _write_json_atomic(self.heap_file, self.heap())
        except OSError:
            pass

    def wait(self, us):
        """Sleep up to `us` microseconds; return early when a port has input. Queued
        transmit bytes keep flowing (paced) meanwhile."""
        clock = self.clock
        ports = self._ports
        now = clock.now()
        if self.heap_file and now >= self._heap_next:
            self._write_heap(now)
        end = now + us
        while True:
            now64 = now * 64
            nxt = end * 64
            for p in ports:
                if p.rlen:
                    p.pump(now64)
                    d = p.due64()
                    if d >= 0 and d < nxt:
                        nxt = d
            left = (nxt - now64) // 64
            got = False
            if left >= 1000:
                for _ in self._ipoll(left // 1000):
                    got = True
                    break
            else:
                for _ in self._ipoll(0):
                    got = True
                    break
                if not got and left > 0:
                    time.sleep_us(left)
            now = clock.now()
            if got or now >= end:
                now64 = now * 64
                for p in ports:
                    if p.rlen:
                        p.pump(now64)
                return

    def stats(self):
        return {"clock_wraps": self.clock.wraps,
                "ports": [(p.name, p.rx_bytes, p.tx_bytes, p.tx_dropped) for p in self._ports]}
