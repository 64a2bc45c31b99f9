# A bench without hardware, for running boards/rp2/rp2_hal.py under MicroPython (and CPython).
#
# The stand-in `machine` and `sdcard` modules next to this file build their objects
# through the current Rig: which board is being built (rig.board), the virtual clock,
# the wires between UARTs, the memory SD cards, and a list of problems the stand-ins
# noticed (a bus byte sent with the transceiver's driver off, DE released before the
# last stop bit left, an illegal pin, a pin used twice). Tests assert that list is empty.
#
# Time is virtual: VirtualTime.now (microseconds) only moves when someone sleeps or
# the test driver advances it; ticks_us() wraps at 2**30 like the rp2 port's.
#
# UART model: a byte takes 10 bit times (8N1). Each UART has a TX ring of txbuf bytes
# that drains at the line rate; a write that does not fit "blocks" (the clock moves on,
# and blocked_us counts it, as the real write would busy-wait). Received bytes land in
# an RX ring of rxbuf bytes when their stop bit arrives; bytes arriving to a full ring
# are lost and counted in `overflow`. flush() returns when the last character has
# moved from the FIFO into the shift register, one character time before the line is
# idle, which is what the rp2 port's flush() does.

TICKS_PERIOD = 1 << 30
CURRENT = None


def current():
    if CURRENT is None:
        raise RuntimeError("no Rig: create rig.Rig(...) before building hardware")
    return CURRENT


class VirtualTime:
    """ticks_us/ticks_ms/ticks_diff/sleep_us/sleep_ms over a virtual microsecond clock."""

    def __init__(self, start_raw=0):
        self.now = 0
        self.raw0 = start_raw

    def ticks_us(self):
        return (self.raw0 + self.now) % TICKS_PERIOD

    def ticks_ms(self):
        return ((self.raw0 + self.now) // 1000) % TICKS_PERIOD

    def ticks_diff(self, a, b):
        d = (a - b) % TICKS_PERIOD
        if d >= TICKS_PERIOD // 2:
            d -= TICKS_PERIOD
        return d

    def sleep_us(self, us):
        if us > 0:
            self.now += us

    def sleep_ms(self, ms):
        self.sleep_us(ms * 1000)


class MemCard:
    """An SD card's blocks in RAM, with fault injection for the write path."""

    def __init__(self, blocks):
        self.blocks = blocks
        self.data = bytearray(blocks * 512)
        self.mv = memoryview(self.data)
        self.writes = 0
        self.reads = 0
        self.reject_next = 0         # this many next block writes are silently dropped
        self.reject_always = False   # every write silently dropped
        self.raise_next = 0          # this many next writes raise OSError(EIO)


class HostPipe:
    """USB CDC stand-in: the board's stdin/stdout buffers and the PC's end.

    Both directions live in storage allocated once, when the pipe is made: on a Pico the
    bytes a PC has sent and the board has not read wait in the USB stack's static buffers
    and on the PC, never on the MicroPython heap, so the heap figures of tests/mpy/t_boot.py
    must not count them as the board's. `cap`: bytes each direction can hold."""

    def __init__(self, cap=24576):
        self.cap = cap
        self.inq = bytearray(cap)
        self.pos = 0                 # next byte the board reads
        self.end = 0                 # bytes the PC has sent: inq[pos:end] waits
        self.out = bytearray(cap)
        self.outv = memoryview(self.out)
        self.olen = 0

    # board side (sys.stdin.buffer / sys.stdout.buffer semantics)
    def ready(self):
        return self.pos < self.end

    def readinto(self, buf):
        n = len(buf)
        if self.end - self.pos < n:
            raise AssertionError("stdin.buffer.readinto(%d) would block" % n)
        if n == 1:                   # the HAL's per-byte read: no garbage per byte
            buf[0] = self.inq[self.pos]
        else:
            buf[0:n] = memoryview(self.inq)[self.pos:self.pos + n]
        self.pos += n
        if self.pos == self.end:
            self.pos = self.end = 0
        return n

    def write(self, data):
        n = len(data)
        o = self.olen
        if o + n > self.cap:
            raise AssertionError("host pipe: the PC did not read %d bytes" % (o + n))
        self.outv[o:o + n] = data
        self.olen = o + n
        return n

    # PC side
    def send(self, data):
        n = len(data)
        if self.end + n > self.cap:
            left = self.end - self.pos           # rare: move what waits to the front
            self.inq[0:left] = self.inq[self.pos:self.end]
            self.pos = 0
            self.end = left
            if left + n > self.cap:
                raise AssertionError("host pipe: the board did not read %d bytes" % (left + n))
        self.inq[self.end:self.end + n] = data
        self.end += n

    def take(self):
        """What the board wrote since the last take: a view, valid until the board writes again."""
        n = self.olen
        self.olen = 0
        return self.outv[0:n]


class Idler:
    """idle(us) for a HAL under the test driver: remembers how long the board wanted to sleep."""

    def __init__(self):
        self.want = 0
        self.calls = 0

    def __call__(self, us):
        self.want = us
        self.calls += 1


class Rig:
    def __init__(self, time, cards=None):
        global CURRENT
        CURRENT = self
        self.time = time
        self.board = None                # board whose hardware is being built now
        self.uarts = {}                  # (board, uart id) -> UART stand-in
        self.pins = {}                   # (board, pin id) -> PinState
        self.cards = dict(cards or {})   # board -> MemCard
        self.routes = {}                 # (board, uart id) -> [(board, uart id), ...]
        self.drivers = {}                # (board, uart id) -> DE pin id (bus transceiver)
        self.uses = {}                   # (board, pin id) -> function name
        self.problems = []

    # -- wiring ------------------------------------------------------------------------
    def link(self, a, b):
        """Point-to-point full duplex: a's TX to b's RX and back. a, b: (board, uart id)."""
        self.routes[a] = [b]
        self.routes[b] = [a]

    def bus(self, members):
        """Half-duplex multi-drop bus: members are (board, uart id, DE pin id)."""
        for m in members:
            key = (m[0], m[1])
            self.drivers[key] = m[2]
            self.routes[key] = [(o[0], o[1]) for o in members if o is not m]

    def card(self, board, blocks):
        self.cards[board] = MemCard(blocks)
        return self.cards[board]

    def use_pin(self, pin_id, what):
        key = (self.board, pin_id)
        prev = self.uses.get(key)
        if prev is not None and prev != what:
            self.problems.append("board %s: GP%s used as %s and as %s" % (self.board, pin_id, prev, what))
        self.uses[key] = what

    def pin_level(self, board, pin_id):
        st = self.pins.get((board, pin_id))
        return 0 if st is None else st.level

    def force(self, board, pin_id, level):
        """Drive an input pin from outside (a jumper to GND: level 0; None: released)."""
        self.pins_state(board, pin_id).forced = level

    def pins_state(self, board, pin_id):
        key = (board, pin_id)
        st = self.pins.get(key)
        if st is None:
            st = PinState(self, key)
            self.pins[key] = st
        return st

    # -- time --------------------------------------------------------------------------
    def now_ns(self):
        return self.time.now * 1000

    def next_arrival_us(self):
        """Virtual time (us) when the first write in flight has fully arrived; None when
        nothing is in flight."""
        best = None
        for u in self.uarts.values():
            for p in u.pending:
                t = p[0] + (p[4] - 1) * p[1]
                if best is None or t < best:
                    best = t
        return None if best is None else best // 1000 + 1

    def transmit(self, src, source, off, n, start_ns, char_ns):
        """n bytes leave UART src from start_ns: they are at `source` (the sending UART, whose
        TX ring holds them from offset off, or a bytes copy) until each receiver takes them."""
        for dst in self.routes.get(src, ()):
            u = self.uarts.get(dst)
            if u is not None:
                u.pending.append([start_ns + char_ns, char_ns, source, off, n, 0])

    def totals(self):
        over = 0
        blocked = 0
        for u in self.uarts.values():
            over += u.overflow
            blocked += u.blocked_us
        return over, blocked


class PinState:
    def __init__(self, rig, key):
        self.rig = rig
        self.key = key
        self.mode = -1
        self.pull = -1
        self.level = 0
        self.forced = None
        self.changes = 0

    def read(self):
        if self.forced is not None:
            return self.forced
        if self.mode == 1:           # output: reads back what it drives
            return self.level
        return 1 if self.pull == 1 else 0

    def drive(self, v):
        v = 1 if v else 0
        if v == self.level:
            return
        self.level = v
        self.changes += 1
        if v == 0:
            # releasing a transceiver's DE: the line must already be idle
            for ukey, de in self.rig.drivers.items():
                if ukey[0] == self.key[0] and de == self.key[1]:
                    u = self.rig.uarts.get(ukey)
                    if u is not None and u.tx_done > self.rig.now_ns():
                        self.rig.problems.append(
                            "board %s: DE released %d ns before the last stop bit left"
                            % (ukey[0], u.tx_done - self.rig.now_ns()))
