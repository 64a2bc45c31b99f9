# The board's time arithmetic allocates nothing past 2**30 us and across the ticks wrap (issue #14).
#
# A primary and its secondary run firmware/main.py's Board over a small in-memory HAL (RAM
# block devices, ports that are byte queues, a virtual clock), each alone on its site bus (so
# each is its site's master: beacons, checkpoints, releases). The board clock is the HAL's
# ticks_us() (firmware/ticks.py's Clock), over a raw 30-bit counter as on the rp2 port: the
# board's clock starts 4 s below 2**30 us (where a monotonic count would leave small ints and
# the ticks wrap), the raw counter 8 s below its own wrap, so the run crosses both.
# Three phases: (A) the clock below 2**30, (B) past 2**30 (the board's ticks wrapped), (C) past
# the raw counter's wrap. In every phase:
#   - every idle pass of the main loop (no input, no deadline due: ports polled, the loop's
#     deadline test, the wait, the heap sample time) runs under micropython.heap_lock();
#   - the bytes allocated (gc.mem_alloc() growth, no collection in between) are measured per
#     idle pass, per loop pass that ticks (beacons, checkpoints, releases, keepalives) and
#     per host write (received, journaled, batched and sent, received by the secondary,
#     journaled, acknowledged, the ACK taken by the primary, the reply).
# The allocations per tick and per host write may not grow past 2**30 beyond WRITE_BUDGET
# (the sequence-time stamps: see docs/ARCHITECTURE.md, "Clock arithmetic"). Under CPython
# (no heap lock, no mem_alloc) the same scenario runs as a functional test.
import gc
import sys

from firmware import wire
from firmware.main import Board
from firmware.store import Store

try:
    import micropython
except ImportError:
    micropython = None

MP = sys.implementation.name == "micropython" and hasattr(gc, "mem_alloc")
BIT30 = 1 << 30
MASK = BIT30 - 1
HALF = BIT30 >> 1
START = BIT30 - 4000000           # the board clock starts 4 s below 2**30
RAW_START = BIT30 - 8000000       # the raw counter wraps 4 s after 2**30 us (board clock)
WRITES = 12                       # host writes measured per phase
# What may still allocate past 2**30 (docs/ARCHITECTURE.md, "Clock arithmetic"): the
# sequence times themselves once the group's time is past 2**30, 32 bytes each here (a
# stamp, a beacon's time, the master's catch-up test, a checkpoint's T, the times a
# frame carries as they are unpacked). Budgets: 6 such ints per ticking pass on average,
# 8 per host write, in bytes. Before firmware/ticks.py a ticking pass spent ~420-490 bytes
# more past 2**30, a host write ~1700 more, an idle pass 80 (0 now, under heap_lock).
BIG = 32
TICK_BUDGET = 6 * BIG
WRITE_BUDGET = 8 * BIG


class VClock:
    """The virtual time: `us` since the start; the raw counter wraps at 2**30 like the rp2's."""

    def __init__(self):
        self.us = 0
        self.raw = RAW_START

    def ticks_us(self):
        return self.raw

    def ticks_diff(self, a, b):
        d = (a - b) & MASK
        return d - MASK - 1 if d >= HALF else d

    def sleep_us(self, us):
        if us > 0:
            self.us += us
            r = self.raw - MASK - 1 + us      # (raw + us) mod 2**30 in small ints
            self.raw = r + MASK + 1 if r < 0 else r


VT = VClock()


class RamDev:
    def __init__(self, blocks):
        self.data = bytearray(blocks * 512)
        self.mv = memoryview(self.data)
        self.n = blocks

    def readblocks(self, n, buf, offset=0):
        p = n * 512 + offset
        buf[:] = self.mv[p:p + len(buf)]

    def writeblocks(self, n, buf, offset=0):
        p = n * 512 + offset
        self.mv[p:p + len(buf)] = buf

    def ioctl(self, op, arg):
        if op == 4:
            return self.n
        if op == 5:
            return 512
        return 0


class Port:
    """A byte queue in (what the board reads) and a sink out (where its frames go)."""

    def __init__(self):
        self.inq = bytearray(65536)
        self.head = 0
        self.tail = 0
        self.sink = None             # the Port whose input our writes feed (None: kept in out)
        self.out = []

    def pending(self):
        return self.tail > self.head

    def push(self, data):
        n = len(data)
        if self.tail + n > len(self.inq):
            rest = self.tail - self.head
            self.inq[:rest] = self.inq[self.head:self.tail]
            self.head = 0
            self.tail = rest
        self.inq[self.tail:self.tail + n] = data
        self.tail += n

    def read_into(self, buf):
        n = self.tail - self.head
        if n <= 0:
            return 0
        if n > len(buf):
            n = len(buf)
        buf[:n] = memoryview(self.inq)[self.head:self.head + n]
        self.head += n
        return n

    def write(self, frame):
        if self.sink is not None:
            self.sink.push(frame)
        else:
            self.out.append(frame)


class Hal:
    def __init__(self, conf, clock):
        self.conf = conf
        self.clock = clock
        self.dev = RamDev(2 + 1 + 2 * 256 + 2 + 2 * 128 + 128 + 16)
        self.p = (Port(), Port(), Port())
        self.logs = []

    def config(self):
        return self.conf

    def block_device(self):
        return self.dev

    def ports(self):
        return self.p

    def ticks_us(self):
        # the board clock as the HALs hand it to main.py (firmware/ticks.py's ticks();
        # before that module, rp2_hal.MonoClock's monotonic now())
        c = self.clock
        return c.ticks() if hasattr(c, "ticks") else c.now()

    def wait(self, us):
        WANT[0] = us if us < WANT[0] else WANT[0]

    def log(self, msg):
        self.logs.append(msg)


WANT = [0]


def make_clock():
    """The board clock the HALs use, over the virtual counter."""
    try:
        from firmware.ticks import Clock
        return Clock(VT, START)
    except ImportError:
        sys.path.insert(0, "boards/rp2")
        import rp2_hal
        return rp2_hal.MonoClock(VT, START)


BASE = {"bus_baud": 115200, "peer_baud": 115200, "nvol": 1, "vol_blocks": 128,
        "journal_slots": 256, "autostart": True, "ckpt_interval_us": 200000}
P_CONF = dict(BASE, node=1, role=1, peer=101, site_nodes=[1])
S_CONF = dict(BASE, node=101, role=2, peer=1, site_nodes=[101])


def build():
    hals = (Hal(P_CONF, make_clock()), Hal(S_CONF, make_clock()))
    hals[0].p[2].sink = hals[1].p[2]
    hals[1].p[2].sink = hals[0].p[2]
    boards = []
    for h in hals:
        b = Board(h)
        b.node.boot(h.ticks_us())
        b.flush()
        b.sample_heap(h.ticks_us())
        boards.append(b)
    return hals, boards


def due(h, b):
    """Would the next loop pass tick? (the harness's own check, outside any heap lock)"""
    d = b.node.next_deadline
    t = h.ticks_us()
    if d is None:
        return False
    try:
        from firmware.ticks import ticks_diff
    except ImportError:              # the monotonic clock before firmware/ticks.py
        return t >= d
    return ticks_diff(t, d) >= 0


class Stats:
    def __init__(self, name):
        self.name = name
        self.idle = 0            # idle passes under heap lock
        self.idle_failed = 0     # ... that raised MemoryError
        self.idle_bytes = 0      # bytes allocated by idle passes (unlocked sample)
        self.idle_sampled = 0
        self.tick = 0
        self.tick_bytes = 0
        self.writes = 0
        self.write_bytes = 0


def mem():
    return gc.mem_alloc() if MP else 0


def one_pass(h, b, st, lock):
    """One Board.step(); an idle pass runs under heap_lock (lock) or is measured."""
    quiet = not (h.p[0].pending() or h.p[1].pending() or h.p[2].pending())
    tick = quiet and due(h, b)
    idle = quiet and not tick
    if idle and lock and micropython:
        st.idle += 1
        micropython.heap_lock()
        try:
            b.step()
        except MemoryError:
            st.idle_failed += 1
        finally:
            micropython.heap_unlock()
        return
    m0 = mem()
    b.step()
    m1 = mem()
    if m1 < m0:
        return                   # a collection ran: no figure
    if idle:
        st.idle_sampled += 1
        st.idle_bytes += m1 - m0
    elif tick:
        st.tick += 1
        st.tick_bytes += m1 - m0


def advance():
    w = WANT[0]
    if w > 2000:
        w = 2000
    if w < 20:
        w = 20
    VT.sleep_us(w)
    WANT[0] = 1 << 29


def run_for(hals, boards, st, us, lock=True):
    end = VT.us + us
    k = 0
    while VT.us < end:
        for i in (0, 1):
            # every 4th idle pass is measured (unlocked) rather than locked
            one_pass(hals[i], boards[i], st, lock and (k & 3) != 0)
        advance()
        k += 1


def settle(hals, boards, limit=20000):
    """Run until no port has input and the primary's journal is acknowledged."""
    for _ in range(limit):
        for i in (0, 1):
            boards[i].step()
        advance()
        if not any(p.pending() for h in hals for p in h.p) and boards[0].store.j_depth() == 0:
            return
    raise AssertionError("did not settle")


def writes(hals, boards, st, frames, base_tag):
    """WRITES host writes, each taken to the secondary's ACK; bytes measured per write."""
    hP = hals[0]
    for k in range(WRITES):
        f = frames[k]
        m0 = mem()
        hP.p[0].push(f)
        got = False
        for _ in range(4000):
            for i in (0, 1):
                boards[i].step()
            advance()
            if not got and hP.p[0].out:
                got = True
            if got and not any(p.pending() for h in hals for p in h.p) and boards[0].node.role.acked_lseq >= boards[0].node.role.next_lseq - 1:
                break
        else:
            raise AssertionError("write %d: no reply or no ACK" % k)
        m1 = mem()
        reply = hP.p[0].out.pop()
        assert reply[wire.HDR_SIZE] == wire.S_OK, "write %d: status %d" % (k, reply[wire.HDR_SIZE])
        if m1 >= m0:
            st.writes += 1
            st.write_bytes += m1 - m0
        hP.p[0].out.clear()


def status(boards):
    out = []
    for b in boards:
        s = b.store.sb
        out.append((s.copy_state, s.applied_n))
    return out


def wait_duplex(hals, boards, st):
    for _ in range(400):
        run_for(hals, boards, st, 50000, lock=False)
        if boards[0].store.sb.copy_state == wire.CS_DUPLEX and boards[1].store.sb.copy_state == wire.CS_DUPLEX \
                and boards[0].node.role.ready(boards[0].hal.ticks_us()):
            return
    raise AssertionError("no duplex: %r" % (status(boards),))


def report(st):
    def per(a, n):
        return "%.1f" % (a / n) if n else "n/a"
    print("t_ticks %s: idle passes locked %d (MemoryError %d), bytes/idle pass %s (%d sampled), "
          "bytes/ticking pass %s (%d), bytes/host write %s (%d)"
          % (st.name, st.idle, st.idle_failed, per(st.idle_bytes, st.idle_sampled), st.idle_sampled,
             per(st.tick_bytes, st.tick), st.tick, per(st.write_bytes, st.writes), st.writes))


def member_beacons():
    """A primary that follows its bus master's time (a member: beacons in, commit wait),
    the group's time far past 2**30: bytes per beacon (unpacked as Node._bus does, then
    Primary.on_beacon; every beacon echoes the member's clock report sent 9 ms before, a
    round trip) and per commit-wait check."""
    from firmware import codec
    from firmware.primary import CUT_GRID as GRID
    h = Hal(dict(P_CONF, node=2, peer=102, site_nodes=[1, 2]), make_clock())
    b = Board(h)
    b.node.boot(h.ticks_us())
    r = b.node.role
    b.node.mac.master = 1            # following node 1 (as its beacons would have made it)
    r.heard_ckpt = True              # and it knows the group's checkpoint: ready to stamp
    buf = bytearray(codec.SZ_CLOCK_SYNC)
    t0 = (1 << 40) + 12345
    r.on_beacon(h.ticks_us(), 1, t0, True, 8, 0, -1)
    n = 50
    beacon = wait = 0
    for k in range(1, n + 1):
        VT.sleep_us(1000)
        tag = h.ticks_us()           # the member sends its clock report (member_slot)
        r.rt_tag = tag
        r.rt_dst = 1
        VT.sleep_us(9000)
        now = h.ticks_us()
        # the master read it 100 us after its last byte; the beacon ends at t0 + k * 10000
        codec.pack_clock_sync(buf, 0, t0 + k * 10000, k, 2, tag, 9000 - r.rep_air - 100)
        m0 = mem()
        t, cyc, peer, tg, hold = codec.unpack_clock_sync(buf)
        r.on_beacon(now, 1, t, False, 8, tg, hold if peer == 2 else -1)
        beacon += mem() - m0
        # a write that waits: stamped just past the grid point above the lower end
        # (firmware/primary.py header: the cut grid)
        lo = r.seq_time(now) - r.clock_err(now)
        s = lo + (-lo) % GRID + 1
        m1 = mem()
        d = r.commit_delay(now, s)
        m2 = mem()
        wait += m2 - m1
    err = r.clock_err(now)
    ahead = r.seq_time(now) - (t0 + n * 10000)
    print("t_ticks member: the group's time past 2**40: bytes per beacon (unpack + on_beacon) %.1f, "
          "per commit-wait check %.1f; clock_err %d us, seq_time - master's %d us"
          % (beacon / n, wait / n, err, ahead))
    assert 0 <= ahead <= err and err < 2000, (ahead, err)
    assert 0 < d <= GRID + 100, d
    return beacon / n, wait / n


def main():
    from protocol import hostcodec
    hals, boards = build()
    frames = []
    for k in range(3 * WRITES):
        data = bytes([(k * 7 + i) & 0xFF for i in range(512)])
        frames.append(hostcodec.encode(wire.T_H_WRITE, wire.HOST_ID, 1,
                                       bytes([0]) + (k % 100).to_bytes(4, "little") + data, seq=k + 1))
    A = Stats("A below 2**30")
    wait_duplex(hals, boards, A)
    run_for(hals, boards, A, 300000)
    writes(hals, boards, Stats("warm-up"), frames[-WRITES:], 1)    # first-use allocations
    run_for(hals, boards, A, 300000)
    writes(hals, boards, A, frames[:WRITES], 1)
    run_for(hals, boards, A, 300000)
    applied_a = boards[1].store.sb.applied_n
    # run to 2**30 + 5 s on the board clock: idle loop, under the heap lock
    B = Stats("B past 2**30")
    run_for(hals, boards, A, (BIT30 - START) - VT.us)
    run_for(hals, boards, B, 500000)
    writes(hals, boards, B, frames[WRITES:2 * WRITES], 1 + WRITES)
    run_for(hals, boards, B, 500000)
    applied_b = boards[1].store.sb.applied_n
    # past the raw counter's wrap (30 s after 2**30 on the board clock)
    C = Stats("C past the wrap")
    run_for(hals, boards, B, (BIT30 - RAW_START) + 1000000 - VT.us)
    run_for(hals, boards, C, 500000)
    writes(hals, boards, C, frames[2 * WRITES:], 1 + 2 * WRITES)
    run_for(hals, boards, C, 500000)
    applied_c = boards[1].store.sb.applied_n
    for s in (A, B, C):
        report(s)
    per_beacon, per_wait = member_beacons()
    print("t_ticks: virtual %d s; checkpoints applied at the secondary: %d, %d, %d"
          % (VT.us // 1000000, applied_a, applied_b, applied_c))
    assert VT.us > BIT30 - RAW_START, "the run did not pass the wrap"
    assert applied_a < applied_b < applied_c, "checkpoints stopped being applied"
    assert boards[0].store.sb.copy_state == wire.CS_DUPLEX, "the pair left duplex"
    if MP:
        for s in (A, B, C):
            assert s.idle > 100, "%s: too few idle passes (%d)" % (s.name, s.idle)
            assert s.idle_failed == 0, "%s: %d idle passes allocated under heap_lock" % (s.name, s.idle_failed)
        for s in (B, C):
            assert s.idle_bytes == 0, "%s: idle passes allocated %d bytes" % (s.name, s.idle_bytes)
            assert s.tick_bytes / s.tick <= A.tick_bytes / A.tick + TICK_BUDGET, \
                "%s: %.1f bytes per ticking pass, %.1f below 2**30" % (s.name, s.tick_bytes / s.tick, A.tick_bytes / A.tick)
            assert s.write_bytes / s.writes <= A.write_bytes / A.writes + WRITE_BUDGET, \
                "%s: %.1f bytes per host write, %.1f below 2**30" % (s.name, s.write_bytes / s.writes, A.write_bytes / A.writes)
        # a beacon: its time unpacked (the int and the 5-tuple) and two big-int operations
        # in on_beacon (t - offset, the new offset); a commit-wait check: one (stamp - offset)
        assert per_beacon <= 80 + 2 * BIG, "%.1f bytes per member beacon" % per_beacon
        assert per_wait <= BIG, "%.1f bytes per commit-wait check" % per_wait
    print("ALL OK")


main()
