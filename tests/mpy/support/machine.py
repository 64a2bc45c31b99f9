# Stand-in for the rp2 port's `machine` module: the part boards/rp2/rp2_hal.py uses
# (Pin, UART, SPI), with the rp2's pin-function rules, built on tests/mpy/support/rig.py.
# Objects belong to the board the rig is building (rig.board), so one MicroPython
# interpreter can hold several boards.
import rig

# legal pins per peripheral unit on the RP2040 (datasheet, GPIO function table)
_UART_TX = {0: (0, 12, 16, 28), 1: (4, 8, 20, 24)}
_UART_RX = {0: (1, 13, 17, 29), 1: (5, 9, 21, 25)}
_SPI_SCK = {0: (2, 6, 18, 22), 1: (10, 14, 26)}
_SPI_MOSI = {0: (3, 7, 19, 23), 1: (11, 15, 27)}
_SPI_MISO = {0: (0, 4, 16, 20), 1: (8, 12, 24, 28)}
_BUF_MAX = 32766


def _pin_id(p):
    if isinstance(p, Pin):
        return p.id
    return p


class Pin:
    IN = 0
    OUT = 1
    OPEN_DRAIN = 2
    ALT = 3
    PULL_UP = 1
    PULL_DOWN = 2
    ALT_SPI = 1
    ALT_UART = 2
    IRQ_FALLING = 4
    IRQ_RISING = 8

    def __init__(self, id, mode=-1, pull=-1, *, value=None, alt=-1):
        r = rig.current()
        if not (isinstance(id, int) and 0 <= id <= 29) and id not in ("LED",):
            raise ValueError("invalid pin")
        self.id = id
        self.board = r.board
        self._st = r.pins_state(r.board, id)
        if mode != -1 or pull != -1 or value is not None:
            self.init(mode, pull, value=value)

    def init(self, mode=-1, pull=-1, *, value=None, alt=-1):
        st = self._st
        if mode != -1:
            st.mode = mode
            if mode == Pin.OUT and self.board == rig.current().board:
                rig.current().use_pin(self.id, "GPIO output")
        if pull != -1:
            st.pull = pull
        if value is not None:
            st.drive(value)

    def value(self, v=None):
        if v is None:
            return self._st.read()
        self._st.drive(v)
        return None

    def __call__(self, v=None):
        return self.value(v)

    def on(self):
        self._st.drive(1)

    def off(self):
        self._st.drive(0)

    def high(self):
        self._st.drive(1)

    def low(self):
        self._st.drive(0)

    def toggle(self):
        self._st.drive(0 if self._st.level else 1)


class UART:
    INV_TX = 1
    INV_RX = 2

    def __init__(self, id, baudrate=9600, bits=8, parity=None, stop=1, *, tx=None, rx=None,
                 txbuf=256, rxbuf=256, timeout=0, timeout_char=0, invert=0, flow=0):
        r = rig.current()
        if id not in (0, 1):
            raise ValueError("UART(%r) doesn't exist" % (id,))
        tx = _pin_id(tx)
        rx = _pin_id(rx)
        if tx is not None and tx not in _UART_TX[id]:
            raise ValueError("bad TX pin")
        if rx is not None and rx not in _UART_RX[id]:
            raise ValueError("bad RX pin")
        if not 0 < txbuf <= _BUF_MAX or not 0 < rxbuf <= _BUF_MAX:
            raise ValueError("txbuf/rxbuf out of range")
        if (r.board, id) in r.uarts:
            r.problems.append("board %s: UART(%d) constructed twice (one writer per UART)" % (r.board, id))
        for p, what in ((tx, "UART%d TX" % id), (rx, "UART%d RX" % id)):
            if p is not None:
                r.use_pin(p, what)
        self.rig = r
        self.key = (r.board, id)
        self.baudrate = baudrate
        self.char_ns = 10 * 1000000000 // baudrate
        self.txbuf = txbuf
        self.rxbuf = rxbuf
        self.timeout = timeout
        # the rp2 port allocates both rings on the MicroPython heap: mirror that
        self._tx_ring = bytearray(txbuf)
        self._rx_ring = bytearray(rxbuf)
        self._rmv = memoryview(self._rx_ring)
        self._head = 0               # next byte to read in _rx_ring
        self._count = 0              # bytes in _rx_ring
        self._tx_tail = 0            # where the next written byte goes in _tx_ring
        self.pending = []            # [first stop bit ns, char ns, source, offset, length, taken]:
                                     # bytes in flight to this UART, read from the sender's TX ring
                                     # (source: its UART) or from a copy (source: bytes)
        self.tx_done = 0             # ns when the last queued character has left
        self.overflow = 0
        self.blocked_us = 0
        self.sent = 0
        self.received = 0
        r.uarts[self.key] = self

    # -- receive -----------------------------------------------------------------------
    def _settle(self):
        now = self.rig.now_ns()
        pend = self.pending
        while pend:
            p = pend[0]
            t0, cn, src, off, length, taken = p
            if now < t0:
                break
            arrived = (now - t0) // cn + 1
            if arrived > length:
                arrived = length
            new = arrived - taken
            if new > 0:
                room = self.rxbuf - self._count
                take = new if new <= room else room
                if take > 0:
                    if isinstance(src, bytes):
                        self._put(memoryview(src)[off + taken:off + taken + take])
                    else:
                        src._tx_read(off + taken, take, self._put)
                    self.received += take
                self.overflow += new - take
                p[5] = arrived
            if arrived < length:
                break
            pend.pop(0)

    def _put(self, mv):
        # append to the RX ring (the caller made sure it fits)
        size = self.rxbuf
        tail = (self._head + self._count) % size
        n = len(mv)
        first = size - tail if size - tail < n else n
        self._rmv[tail:tail + first] = mv[0:first]
        if first < n:
            self._rmv[0:n - first] = mv[first:n]
        self._count += n

    def _tx_read(self, off, n, put):
        # hand n bytes of the TX ring from offset off (mod txbuf) to put(memoryview)
        size = self.txbuf
        off %= size
        first = size - off if size - off < n else n
        mv = memoryview(self._tx_ring)
        put(mv[off:off + first])
        if first < n:
            put(mv[0:n - first])

    def _get(self, buf, n):
        size = self.rxbuf
        h = self._head
        first = size - h if size - h < n else n
        buf[0:first] = self._rmv[h:h + first]
        if first < n:
            buf[first:n] = self._rmv[0:n - first]
        self._head = (h + n) % size
        self._count -= n

    def any(self):
        self._settle()
        return self._count

    def readinto(self, buf, nbytes=None):
        self._settle()
        n = len(buf) if nbytes is None else nbytes
        if n > self._count:
            n = self._count
        if n == 0:
            return None
        self._get(buf, n)
        return n

    def read(self, nbytes=None):
        self._settle()
        n = self._count if nbytes is None else min(nbytes, self._count)
        if n == 0:
            return None
        b = bytearray(n)
        self._get(b, n)
        return bytes(b)

    # -- transmit ----------------------------------------------------------------------
    def write(self, buf):
        # the bytes are copied into the TX ring, as the real write does: the caller's object
        # is not kept (it would count as the board's heap while the bytes are in flight)
        r = self.rig
        data = buf
        now = r.now_ns()
        cn = self.char_ns
        backlog = 0
        if self.tx_done > now:
            backlog = (self.tx_done - now + cn - 1) // cn
        free = self.txbuf - backlog
        if len(data) > free:
            # the real write busy-waits until the ring has room: time passes
            wait_us = ((len(data) - free) * cn) // 1000 + 1
            self.blocked_us += wait_us
            r.time.sleep_us(wait_us)
            now = r.now_ns()
        start = self.tx_done if self.tx_done > now else now
        self.tx_done = start + len(data) * cn
        self.sent += len(data)
        de = r.drivers.get(self.key)
        if de is not None and not r.pin_level(self.key[0], de):
            r.problems.append("board %s: %d bytes written to the bus UART with DE low"
                              % (self.key[0], len(data)))
            return len(data)         # the transceiver's driver is off: nothing on the wire
        n = len(data)
        if n <= self.txbuf:
            # every byte this overwrites has left the line: let the receivers take it first
            for dst in r.routes.get(self.key, ()):
                u = r.uarts.get(dst)
                if u is not None:
                    u._settle()
            off = self._tx_tail
            size = self.txbuf
            first = size - off if size - off < n else n
            mv = memoryview(data)
            self._tx_ring[off:off + first] = mv[0:first]
            if first < n:
                self._tx_ring[0:n - first] = mv[first:n]
            self._tx_tail = (off + n) % size
            r.transmit(self.key, self, off, n, start, cn)
        else:                        # larger than the ring (a tiny txbuf override): a copy
            r.transmit(self.key, bytes(data), 0, n, start, cn)
        return n

    def flush(self):
        # returns when the FIFO is empty: the last character is still being shifted out
        r = self.rig
        last = self.tx_done - self.char_ns
        now = r.now_ns()
        if last > now:
            r.time.sleep_us((last - now + 999) // 1000)

    def txdone(self):
        return self.tx_done <= self.rig.now_ns()

    def deinit(self):
        self.rig.uarts.pop(self.key, None)


class SPI:
    MSB = 0
    LSB = 1

    def __init__(self, id, baudrate=1000000, *, polarity=0, phase=0, bits=8, firstbit=0,
                 sck=None, mosi=None, miso=None):
        r = rig.current()
        if id not in (0, 1):
            raise ValueError("SPI(%r) doesn't exist" % (id,))
        for p, legal, what in ((sck, _SPI_SCK, "SCK"), (mosi, _SPI_MOSI, "MOSI"), (miso, _SPI_MISO, "MISO")):
            p = _pin_id(p)
            if p is not None:
                if p not in legal[id]:
                    raise ValueError("bad %s pin" % what)
                r.use_pin(p, "SPI%d %s" % (id, what))
        self.board = r.board
        self.baudrate = baudrate

    def init(self, baudrate=1000000, *, polarity=0, phase=0, bits=8, firstbit=0):
        self.baudrate = baudrate

    def read(self, nbytes, write=0):
        return bytes([0xFF]) * nbytes

    def readinto(self, buf, write=0):
        for i in range(len(buf)):
            buf[i] = 0xFF

    def write(self, buf):
        return None

    def write_readinto(self, wbuf, rbuf):
        self.readinto(rbuf)


def reset():
    raise SystemExit("machine.reset()")


def unique_id():
    return b"\xe6\x61\x41\x03\xe7\xa5\x2f\x2b"
