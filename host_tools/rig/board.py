"""The emulated board: a machine-like HAL for CPython that runs the unmodified firmware.

    python -m host_tools.rig.board --config board.json

One OS process is one board. It loads firmware/main.py exactly as a real board's
boot.py does and calls ``main.run(hal)`` with an ``EmulatedHal``:

- ``ports()`` -> [host, bus, peer], each a ``PtyPort`` on a pseudo-terminal:
    * host: this process creates the pty (``os.openpty``), keeps the master, puts the
      slave in raw mode and publishes the slave's device path as a symlink named by
      ``host_link`` (refreshed atomically at every boot, so the path a host tool
      opens with pyserial never changes across restarts);
    * bus and peer: the hub (host_tools/rig/hub.py) owns those ptys and hands out the
      slave paths (``bus_tty``, ``peer_tty``); the board opens them like a UART
      device node and flushes whatever was queued while it was down.
  Every port paces its transmitter: a byte reaches the other end only once its
  10 bit times (8N1) at the port's baud rate have elapsed after the previous one, so
  a port never sends faster than baud/10 bytes per second. The firmware writes whole
  frames, and a frame's bytes go out together once its last byte's line time has passed:
  a frame costs the sender, the hub and every receiver one wake-up (in 1 ms grains of line
  time, as before, a copy-stream frame of 4 KB at 115200 baud cost each of them 90, and the
  stream's wake-ups delayed every other process of the rig), and no receiver could act on
  a frame before its last byte anyway (the hub sees when it started: its arrival minus its
  line time). Queued bytes are also sent from read_into (the firmware's loop polls the
  ports every pass, also while it spins on a held reply instead of sleeping in wait()).
  Bytes that the far end cannot take (nobody reading, buffer full) are dropped, as a UART
  would. (PtyPort still paces in grains when not given frames.)
- ``block_device()`` -> ``FileBlockDevice``: the SD card as an image file, read and
  written with ``os.pread``/``os.pwrite`` (no user-space buffering), so a kill -9
  loses nothing already written. Optional ``disk_delay_us`` emulates the write
  latency of an SD card.
- ``ticks_us()``: 30-bit wrapping microsecond ticks, as a board's (firmware/ticks.py),
  of a clock with an optional offset and drift (distinct clocks per board); ``wait(us)``: select() on the ports' fds until input
  arrives, a transmitter has bytes due, or the time is up.

Config file (JSON): every firmware ``config.Config`` field, plus these HAL keys:
    name          board name for logs ("p0", "s3", ...)
    image         path of the SD card image file (formatted by the rig, or at boot)
    host_link     path of the symlink to create for the host port's pty
    bus_tty       path of the bus port device (a hub pty slave)
    peer_tty      path of the peer port device (a hub pty slave)
    host_baud     pacing of the host port (a USB CDC port on a real board; default 1000000)
    state_file    optional: JSON written at boot {pid, host_tty, started}
    disk_delay_us optional: sleep this long in every block write (SD write latency)
    clock_offset_us, clock_drift_ppm   optional: this board's clock (default 0, 0)
"""
import argparse
import json
import os
import select
import sys
import termios
import time
import tty

from firmware.ticks import TICKS_MASK

BLOCK_SIZE = 512

HAL_KEYS = ("name", "image", "host_link", "bus_tty", "peer_tty", "host_baud", "state_file",
            "disk_delay_us", "clock_offset_us", "clock_drift_ppm")


# pacing: wake the transmitter at most this often (bytes are released in chunks of
# at least one byte, at most what this many microseconds of line time carries)
_TX_GRAIN_US = 1000


class FileBlockDevice:
    """MicroPython block device protocol on an image file."""

    def __init__(self, path, delay_us=0):
        self.path = path
        self.fd = os.open(path, os.O_RDWR)
        size = os.fstat(self.fd).st_size
        self.nblocks = size // BLOCK_SIZE
        self.delay = delay_us / 1e6
        self.reads = 0
        self.writes = 0

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def readblocks(self, n, buf, offset=0):
        ln = len(buf)
        pos = n * BLOCK_SIZE + offset
        if n < 0 or pos + ln > self.nblocks * BLOCK_SIZE:
            raise ValueError("read beyond the device: block %d" % n)
        got = os.preadv(self.fd, [buf], pos)
        if got != ln:
            raise OSError("short read at block %d: %d of %d bytes" % (n, got, ln))
        self.reads += 1
        return 0

    def writeblocks(self, n, buf, offset=0):
        ln = len(buf)
        pos = n * BLOCK_SIZE + offset
        if n < 0 or pos + ln > self.nblocks * BLOCK_SIZE:
            raise ValueError("write beyond the device: block %d" % n)
        if self.delay:
            time.sleep(self.delay)
        mv = memoryview(buf)
        done = 0
        while done < ln:
            done += os.pwrite(self.fd, mv[done:], pos + done)
        self.writes += 1
        return 0

    def ioctl(self, op, arg):
        if op == 4:
            return self.nblocks
        if op == 5:
            return BLOCK_SIZE
        return 0


def create_image(path, nblocks):
    """A zero-filled (sparse) image file of nblocks blocks."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.ftruncate(fd, nblocks * BLOCK_SIZE)
    finally:
        os.close(fd)


class Clock:
    def __init__(self, offset_us=0, drift_ppm=0):
        self.t0 = time.monotonic_ns() // 1000
        self.offset = int(offset_us)
        self.ppm = drift_ppm

    def us(self):
        el = time.monotonic_ns() // 1000 - self.t0
        if self.ppm:
            el += el * self.ppm // 1000000
        return el + self.offset


class PtyPort:
    """One UART-like port on a file descriptor: non-blocking reads, paced writes."""

    def __init__(self, fd, baud, clock, name="", grain_us=_TX_GRAIN_US, frames=False):
        self.fd = fd
        self.name = name
        self.clock = clock
        self.byte_us = 10000000.0 / baud
        self.grain = max(1, int(grain_us / self.byte_us))
        self.q = bytearray()
        # frames: whole frames go out at once, when the last byte's time has passed; ends
        # holds the end of every queued frame, as an offset into q
        self.frames = frames
        self.ends = []
        self.t0 = 0.0              # when the head byte of q started on the line
        self.line_free = 0.0       # when the line finished its last byte
        os.set_blocking(fd, False)
        self.rx_bytes = 0
        self.tx_bytes = 0
        self.tx_dropped = 0

    # -- machine.UART-like interface used by main.py ------------------------------
    def read_into(self, buf):
        if self.q:
            self.pump(self.clock.us())
        try:
            n = os.readv(self.fd, [buf])
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError:            # EIO: the other end is gone for now
            return 0
        self.rx_bytes += n
        return n

    def write(self, frame):
        now = self.clock.us()
        if not self.q:
            self.t0 = now if now > self.line_free else self.line_free
        self.q += frame
        if self.frames:
            self.ends.append(len(self.q))
        self.pump(now)
        return len(frame)

    # -- pacing ------------------------------------------------------------------------
    def pump(self, now):
        q = self.q
        if not q:
            return
        k = int((now - self.t0) / self.byte_us + 1e-6)
        if k <= 0:
            return
        if k > len(q):
            k = len(q)
        ends = self.ends
        if self.frames:
            j = 0                          # the frames whose last byte is due
            for e in ends:
                if e > k:
                    break
                j = e
            if not j:
                return
            k = j
        try:
            n = os.write(self.fd, q[:k])
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError:
            n = 0
        if n < k:
            self.tx_dropped += k - n       # nobody takes them: lost on the line
        self.tx_bytes += n
        del q[:k]
        if self.frames:
            self.ends = [e - k for e in ends if e > k]
        self.t0 += k * self.byte_us
        self.line_free = self.t0

    def due(self):
        """Clock time at which the next chunk of queued bytes is on the wire, or None."""
        if not self.q:
            return None
        if self.frames:
            return self.t0 + self.byte_us * self.ends[0]
        return self.t0 + self.byte_us * min(len(self.q), self.grain)


def _open_tty(path):
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        tty.setraw(fd)
    except termios.error:
        pass
    termios.tcflush(fd, termios.TCIFLUSH)      # what queued up while this board was down
    return fd


def _publish_link(target, link):
    tmp = "%s.tmp%d" % (link, os.getpid())
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    os.symlink(target, tmp)
    os.replace(tmp, link)


def _write_json_atomic(path, obj):
    tmp = "%s.tmp%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
    os.replace(tmp, path)


class EmulatedHal:
    """The HAL interface firmware/main.py expects, on ptys, an image file and the OS clock."""

    def __init__(self, conf):
        conf = dict(conf)
        hal = {k: conf.pop(k) for k in HAL_KEYS if k in conf}
        self.fw_config = conf
        self.name = hal.get("name", "board")
        self.clock = Clock(hal.get("clock_offset_us", 0), hal.get("clock_drift_ppm", 0))
        self.bdev = FileBlockDevice(hal["image"], hal.get("disk_delay_us", 0))
        # host port: our own pty; the slave stays open here too, so the master never
        # sees a hang-up when a host tool closes the port
        m, s = os.openpty()
        tty.setraw(s)
        self._host_slave = s
        self.host_tty = os.ttyname(s)
        host = PtyPort(m, hal.get("host_baud", 1000000), self.clock, "host", frames=True)
        bus = PtyPort(_open_tty(hal["bus_tty"]), conf.get("bus_baud", 115200), self.clock, "bus",
                      frames=True)
        peer = PtyPort(_open_tty(hal["peer_tty"]), conf.get("peer_baud", 115200), self.clock, "peer",
                       frames=True)
        self._ports = [host, bus, peer]
        self._fds = [p.fd for p in self._ports]
        if hal.get("host_link"):
            _publish_link(self.host_tty, hal["host_link"])
        if hal.get("state_file"):
            _write_json_atomic(hal["state_file"], {"pid": os.getpid(), "host_tty": self.host_tty,
                                                   "started": time.time()})

    # -- HAL interface -------------------------------------------------------------------
    def config(self):
        return dict(self.fw_config)

    def block_device(self):
        return self.bdev

    def ports(self):
        return self._ports

    def ticks_us(self):
        return self.clock.us() & TICKS_MASK

    def log(self, msg):
        sys.stderr.write("%.3f %s: %s\n" % (time.time(), self.name, msg))
        sys.stderr.flush()

    def wait(self, us):
        """Sleep up to `us` microseconds; return early when a port has input.
        Queued transmit bytes keep flowing (paced) meanwhile."""
        clock = self.clock
        now = clock.us()
        end = now + us
        ports = self._ports
        while True:
            nxt = end
            for p in ports:
                if p.q:
                    p.pump(now)
                    d = p.due()
                    if d is not None and d < nxt:
                        nxt = d
            left = nxt - now
            if left < 0:
                left = 0
            r, _, _ = select.select(self._fds, (), (), left / 1e6)
            now = clock.us()
            if r or now >= end:
                for p in ports:
                    if p.q:
                        p.pump(now)
                return


def punctual_timers():
    """Ask Linux to end this process's sleeps when they are due: by default a sleep may
    overrun its timeout by up to 50 us of "timer slack", on every paced byte grain and every
    timed wake of the rig. Nothing happens elsewhere (no prctl)."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(29, 1, 0, 0, 0)         # PR_SET_TIMERSLACK, 1 ns
    except (OSError, AttributeError):
        pass


def load_config(path):
    with open(path) as f:
        return json.load(f)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m host_tools.rig.board",
                                 description="Run the firmware as an emulated board on ptys.")
    ap.add_argument("--config", required=True, help="board config JSON")
    args = ap.parse_args(argv)
    punctual_timers()
    hal = EmulatedHal(load_config(args.config))
    hal.log("up: host port %s, image %s" % (hal.host_tty, hal.bdev.path))
    from firmware import main as firmware_main            # firmware/main.py, unmodified
    firmware_main.run(hal)
    return 0


if __name__ == "__main__":
    sys.exit(main())
