"""The simulator's engine on its own: scheduler, seed tree, clocks, serial link, site
bus, and the board harness with test doubles in place of the firmware."""
import random
import zlib

import pytest

from host_tools.sim.scheduler import Scheduler, SchedulerError
from host_tools.sim.rng import (SeedTree, FaultOptions, FAULT_CLASSES, derive_seed,
                                parse_faults)
from host_tools.sim.clock import LocalClock
from host_tools.sim.link import (Channel, SerialLink, air_us, bytes_done_by,
                                 first_byte_ending_at_or_after)
from host_tools.sim.bus import Bus
from host_tools.sim.board import SimBoard, SimError, PORT_HOST, PORT_BUS, PORT_PEER


# ---------------------------------------------------------------------------
# scheduler

def test_scheduler_orders_by_time_then_insertion():
    s = Scheduler()
    out = []
    s.schedule(30, out.append, "c")
    s.schedule(10, out.append, "a1")
    s.schedule(20, out.append, "b")
    s.schedule(10, out.append, "a2")
    s.schedule(10, out.append, "a3")
    assert s.run() == 5
    assert out == ["a1", "a2", "a3", "b", "c"]
    assert s.now == 30


def test_scheduler_cancel_run_until_and_max_events():
    s = Scheduler()
    out = []
    h = s.schedule(5, out.append, "x")
    s.schedule(7, out.append, "y")
    s.schedule(50, out.append, "z")
    s.cancel(h)
    s.cancel(None)
    assert s.pending() == 2
    assert s.run_until(20) == 1
    assert out == ["y"] and s.now == 20
    # scheduling in the past runs "now", never moves time back
    s.schedule(3, out.append, "past")
    assert s.peek() == 20
    assert s.run(max_events=1) == 1 and out[-1] == "past" and s.now == 20
    assert s.run_until(49) == 0 and s.now == 49
    assert s.run() == 1 and out[-1] == "z" and s.now == 50
    assert s.peek() is None


def test_scheduler_events_scheduled_by_events_and_stop():
    s = Scheduler()
    out = []

    def chain(k):
        out.append((s.now, k))
        if k < 5:
            s.after(10, chain, k + 1)
        if k == 3:
            s.stop()

    s.schedule(0, chain, 0)
    s.run()
    assert out == [(0, 0), (10, 1), (20, 2), (30, 3)]
    s.run()
    assert out[-1] == (50, 5)


def test_scheduler_trace_digest():
    def build(seed):
        s = Scheduler(trace=True)
        r = random.Random(seed)

        def ev(k):
            if k < 200:
                s.after(r.randint(0, 100), ev, k + 1)
        for i in range(5):
            s.schedule(r.randint(0, 50), ev, i * 10)
        s.run()
        return s.digest()

    assert build(1) == build(1)
    assert build(1) != build(2)
    with pytest.raises(SchedulerError):
        Scheduler().digest()


# ---------------------------------------------------------------------------
# seed tree and fault options

def test_seed_tree_streams_are_stable_and_independent():
    t = SeedTree(42)
    a1 = [t.stream("a").random() for _ in range(3)]
    # creating other streams first does not change stream "a"
    t2 = SeedTree(42)
    t2.stream("b").random()
    t2.stream("c")
    a2 = [t2.stream("a").random() for _ in range(3)]
    assert a1 == a2
    assert t.stream("a").random() != t.stream("b").random()
    assert SeedTree(43).stream("a").random() != t.stream("a").random()
    assert t.child("x").stream("a").random() != t.stream("a").random()
    assert derive_seed(1, "a", "b") == derive_seed(1, "a", "b")
    assert derive_seed(1, "a", "b") != derive_seed(1, "ab")
    assert 0 <= derive_seed(7, "z") < 2 ** 64


def test_parse_faults():
    assert parse_faults("none") == {"disaster"}
    assert parse_faults("none", disaster=False) == frozenset()
    assert parse_faults("all") == set(FAULT_CLASSES)
    assert parse_faults("loss, corrupt") == {"loss", "corrupt", "disaster"}
    assert parse_faults("loss+jitter", disaster=False) == {"loss", "jitter"}
    with pytest.raises(ValueError):
        parse_faults("loss,flood")


def test_fault_options_from_seed():
    fo = FaultOptions.from_seed(5, "all", pairs=3, duration_us=10000000)
    assert fo.to_dict() == FaultOptions.from_seed(5, "all", pairs=3, duration_us=10000000).to_dict()
    assert fo.to_dict() != FaultOptions.from_seed(6, "all", pairs=3, duration_us=10000000).to_dict()
    assert 0 < fo.peer_frame_loss < 1 and 0 < fo.peer_ber < 1 and fo.peer_jitter_us >= 0
    assert fo.power_cuts and fo.crashes and fo.disaster_at is not None
    assert 0 < fo.disaster_at < 10000000
    for at, board, after, torn, down in fo.power_cuts:
        assert 0 <= at < 10000000 and board in fo.boards and after >= 0 and down > 0
    for win in fo.peer_outages.values():
        for s, e in win:
            assert 0 <= s < e
    assert any(v != 0 for v in fo.drift_ppm.values())
    assert "seed 5" in fo.describe()

    quiet = FaultOptions.from_seed(5, frozenset(), pairs=3, duration_us=10000000)
    assert quiet.peer_frame_loss == 0 and quiet.peer_ber == 0 and quiet.peer_jitter_us == 0
    assert not quiet.power_cuts and not quiet.crashes and quiet.disaster_at is None
    assert all(v == 0 for v in quiet.drift_ppm.values())
    assert all(not w for w in quiet.peer_outages.values())
    # clock offsets do not depend on the classes
    assert quiet.clock_offset_us == fo.clock_offset_us

    # one class draws the same options whatever else is enabled
    only_loss = FaultOptions.from_seed(5, {"loss"}, pairs=3, duration_us=10000000)
    assert only_loss.peer_frame_loss == fo.peer_frame_loss
    assert only_loss.peer_range_loss == fo.peer_range_loss
    assert only_loss.peer_ber == 0 and only_loss.disaster_at is None


# ---------------------------------------------------------------------------
# clocks

def test_clock_drift_math():
    c = LocalClock(0.0, offset_us=1000)
    assert c.local_us(0) == 1000 and c.local_us(123456) == 124456
    fast = LocalClock(100.0, offset_us=0)       # +100 ppm: 100 us more per second
    assert fast.local_us(1000000) == 1000100
    assert fast.local_us(10000000) == 10001000
    slow = LocalClock(-250.5, offset_us=7)
    assert slow.local_us(2000000) == 7 + (2000000 * (10 ** 9 - 250500)) // 10 ** 9
    assert slow.drift_ppm == -250.5


def test_clock_inverse_and_monotonic():
    r = random.Random(3)
    for ppm in (0.0, 37.5, -37.5, 999.0, -999.0, 123456.0):
        c = LocalClock(ppm, offset_us=r.randrange(1 << 28), v0_us=r.randrange(1000))
        prev = c.local_us(c.v0)
        v = c.v0
        for _ in range(2000):
            v += r.choice((1, 1, 2, 7, 1000, 12345))
            cur = c.local_us(v)
            assert cur >= prev
            prev = cur
        for _ in range(500):
            target = c.offset + r.randrange(10 ** 8)
            tv = c.to_virtual(target)
            assert c.local_us(tv) >= target
            if tv > c.v0:
                assert c.local_us(tv - 1) < target
        assert c.to_virtual(c.offset - 5) == c.v0


def test_clock_restart_and_set_drift():
    c = LocalClock(50.0, offset_us=100)
    assert c.local_us(1000000) == 100 + 1000050
    c.restart(2000000, offset_us=5)
    assert c.restarts == 1
    assert c.local_us(2000000) == 5
    assert c.local_us(3000000) == 5 + 1000050
    before = c.local_us(4000000)
    c.set_drift(4000000, -20.0)
    assert c.local_us(4000000) == before
    assert c.local_us(5000000) == before + 999980


# ---------------------------------------------------------------------------
# serial link

def _collect():
    got = []

    def deliver(data, _s=None):
        got.append(data)
    return got, deliver


def test_byte_time_helpers_match_brute_force():
    for baud in (9600, 115200, 1000000, 921600, 300000):
        T = [air_us(k, baud) for k in range(400)]
        for dt in range(0, 2100, 3):
            assert bytes_done_by(dt, baud) == max(k for k in range(400) if T[k] <= dt)
            want = min(i for i in range(399) if T[i + 1] >= dt)
            assert first_byte_ending_at_or_after(dt, baud) == want


def test_link_pacing_exact():
    for baud in (9600, 115200, 1000000):
        s = Scheduler()
        arrivals = []
        ch = Channel(s, baud, random.Random(1), latency_us=0, chunk_max=0)
        ch.deliver = lambda d: arrivals.append((s.now, len(d)))
        n = 1000
        end = ch.send(bytes(n))
        assert end == air_us(n, baud)
        assert end * baud >= n * 10 * 10 ** 6          # never faster than the line
        assert end * baud < n * 10 * 10 ** 6 + baud    # and within one microsecond
        s.run()
        assert arrivals == [(end, n)]
        assert ch.busy_us == end


def test_link_sender_cannot_exceed_line_rate_and_chunks_are_paced():
    baud = 115200
    s = Scheduler()
    got = []
    ch = Channel(s, baud, random.Random(9), latency_us=5000, chunk_max=37)
    ch.deliver = lambda d: got.append((s.now, d))
    frames = [bytes([i % 256]) * (50 + 13 * i) for i in range(20)]
    ends = [ch.send(f) for f in frames]         # all at t=0: they queue on the UART
    total = sum(len(f) for f in frames)
    assert ends[-1] == sum(air_us(len(f), baud) for f in frames)
    assert ends[-1] * baud >= total * 10 * 10 ** 6
    s.run()
    assert b"".join(d for _, d in got) == b"".join(frames)
    # the k-th byte cannot arrive before k byte times + latency
    k = 0
    for t, d in got:
        k += len(d)
        assert t >= 5000 + (k * 10 * 10 ** 6) // baud
    assert max(len(d) for _, d in got) <= 37
    assert ch.bytes_delivered == total and ch.bytes_lost == 0


def test_link_jitter_never_reorders():
    s = Scheduler()
    got = []
    ch = Channel(s, 115200, random.Random(4), latency_us=2000, jitter_us=30000, chunk_max=16)
    ch.deliver = lambda d: got.append((s.now, d))
    sent = []
    r = random.Random(5)
    t = 0
    for i in range(300):
        t += r.randint(0, 3000)
        data = bytes((i * 7 + j) % 256 for j in range(r.randint(1, 60)))
        sent.append(data)
        s.schedule(t, ch.send, data)
    s.run()
    times = [x for x, _ in got]
    assert times == sorted(times)
    assert b"".join(d for _, d in got) == b"".join(sent)


def test_link_frame_loss_rate_plausible():
    s = Scheduler()
    got = []
    p = 0.1
    ch = Channel(s, 10 ** 6, random.Random(11), frame_loss=p, chunk_max=0)
    ch.deliver = got.append
    n = 4000
    for i in range(n):
        ch.send(i.to_bytes(4, "little"))
    s.run()
    dropped = ch.frames_dropped
    # binomial(4000, 0.1): mean 400, sd 19
    assert 300 < dropped < 500
    assert len(got) == n - dropped
    assert ch.bytes_lost == 4 * dropped
    survivors = [int.from_bytes(d, "little") for d in got]
    assert survivors == sorted(survivors)


def test_link_range_loss():
    s = Scheduler()
    got = []
    ch = Channel(s, 10 ** 6, random.Random(12), range_loss=0.2, chunk_max=0)
    ch.deliver = got.append
    n = 2000
    for i in range(n):
        ch.send(bytes(100))
    s.run()
    assert 300 < ch.ranges_dropped < 500
    assert ch.bytes_delivered + ch.bytes_lost == 100 * n
    assert ch.bytes_lost > 0
    assert sum(len(d) for d in got) == ch.bytes_delivered


def test_link_bit_errors_rate_plausible():
    s = Scheduler()
    got = []
    ber = 1e-4
    ch = Channel(s, 10 ** 7, random.Random(13), ber=ber, chunk_max=0)
    ch.deliver = got.append
    payload = bytes(range(256)) * 4          # 1024 bytes
    frames = 500                             # 4.1e6 bits: expect ~410 flips (sd ~20)
    for _ in range(frames):
        ch.send(payload)
    s.run()
    flips = sum(bin(a ^ b).count("1") for d in got for a, b in zip(d, payload))
    assert flips == ch.bits_flipped
    assert 320 < flips < 500
    bad = sum(1 for d in got if zlib.crc32(d) != zlib.crc32(payload))
    assert bad > 0 and bad < frames


def test_link_outage_windows():
    baud = 100000                               # 100 us per byte
    s = Scheduler()
    got = []
    ch = Channel(s, baud, random.Random(14), outages=[(10000, 20000), (50000, 50050)], chunk_max=0)
    ch.deliver = lambda d: got.append((s.now, d))
    data = bytes(i % 251 for i in range(1000))  # 100 ms on the line
    ch.send(data)
    s.run()
    # byte i ends at (i+1)*100 us: bytes ending in [10000, 20000) are i = 99..198 (100
    # bytes); [50000, 50050): byte 499 only
    assert ch.outage_bytes == 101
    joined = b"".join(d for _, d in got)
    assert joined == data[:99] + data[199:499] + data[500:]
    assert ch.bytes_lost == 101


def test_link_cut_and_restore():
    baud = 100000
    s = Scheduler()
    link = SerialLink(s, baud, random.Random(15), latency_us=1000, chunk_max=10)
    at_b, at_a, a_times = [], [], []
    link.attach(1, at_b.append)
    link.attach(0, lambda d: (at_a.append(d), a_times.append(s.now)))
    link.send(0, bytes(100))        # 10 ms on the line, from t=0
    link.send(1, bytes(50))
    s.run_until(4550)               # 45 bytes a->b have left (byte 44 ends at 4500)
    link.cut(0)                     # side 0 dies
    s.run()
    assert sum(map(len, at_b)) == 45
    assert max(a_times) <= 4550     # side 0 hears nothing while down
    heard = sum(map(len, at_a))
    assert 0 < heard < 50 and link.ba.bytes_lost == 50 - heard
    assert link.ab.bytes_lost == 55
    # after restore both directions work again
    link.restore(0)
    link.send(0, b"hello")
    link.send(1, b"world")
    s.run()
    assert b"".join(at_b).endswith(b"hello") and b"".join(at_a)[heard:] == b"world"
    st = link.stats()
    assert st["a>b"]["bytes_sent"] == 105 and st["b>a"]["bytes_sent"] == 55


# ---------------------------------------------------------------------------
# site bus

def _bus(s, baud=100000, seed=1, stations=(1, 2, 3, 4), **kw):
    bus = Bus(s, baud, random.Random(seed), **kw)
    rx = {}
    for sid in stations:
        rx[sid] = []
        bus.attach(sid, lambda d, _sid=sid: rx[_sid].append((s.now, d)))
    return bus, rx


def test_bus_non_overlapping_frames_reach_every_other_station_intact():
    s = Scheduler()
    bus, rx = _bus(s)
    frames = {1: b"A" * 30, 2: b"B" * 20, 3: b"C" * 40}
    t = 0
    for sid, f in frames.items():
        s.schedule(t, bus.send, sid, f)
        t += air_us(len(f), 100000)             # back to back, no overlap
    s.run()
    assert bus.collisions == 0
    for sid in rx:
        want = [f for src, f in frames.items() if src != sid]
        assert [d for _, d in rx[sid]] == want
    assert rx[4][0][0] == air_us(30, 100000)
    assert bus.busy_us == bus.air_us == t
    st = bus.station_stats()
    assert st[1]["bytes_tx"] == 30 and st[4]["frames_rx"] == 3


def test_bus_overlap_garbles_both_frames_and_counts():
    s = Scheduler()
    bus, rx = _bus(s)
    f1 = bytes(range(100))
    f2 = bytes(range(100, 200))
    s.schedule(0, bus.send, 1, f1)              # 0..10000 us
    s.schedule(9000, bus.send, 2, f2)           # 9000..19000 us: overlaps the last 10 bytes
    s.run()
    assert bus.collisions == 1 and bus.frames_collided == 2
    got3 = [d for _, d in rx[3]]
    assert len(got3) == 2
    g1, g2 = got3
    assert g1 != f1 and g2 != f2
    assert zlib.crc32(g1) != zlib.crc32(f1) and zlib.crc32(g2) != zlib.crc32(f2)
    # only the overlapping bytes are garbled: f1's last 10, f2's first 10
    assert g1[:90] == f1[:90] and all(a != b for a, b in zip(g1[90:], f1[90:]))
    assert g2[10:] == f2[10:] and all(a != b for a, b in zip(g2[:10], f2[:10]))
    # station 1 hears the (garbled) frame of station 2 and not its own
    assert [d for _, d in rx[1]] == [g2]
    assert bus.overlap_us == 1000 and bus.busy_us == 19000


def test_bus_collision_counts_each_overlapping_pair():
    s = Scheduler()
    bus, rx = _bus(s)
    s.schedule(0, bus.send, 1, bytes(50))
    s.schedule(100, bus.send, 2, bytes(50))
    s.schedule(200, bus.send, 3, bytes(50))
    s.schedule(20000, bus.send, 4, bytes(50))   # clear air
    s.run()
    assert bus.collisions == 3 and bus.frames_collided == 3
    assert [d for _, d in rx[1]][-1] == bytes(50)


def test_bus_same_station_queues_without_colliding():
    s = Scheduler()
    bus, rx = _bus(s)
    e1 = bus.send(1, b"x" * 10)
    e2 = bus.send(1, b"y" * 10)
    assert e2 == 2 * e1
    s.run()
    assert bus.collisions == 0
    assert [d for _, d in rx[2]] == [b"x" * 10, b"y" * 10]
    assert [t for t, _ in rx[2]] == [e1, e2]


def test_bus_station_down_cut_and_late_joiner():
    s = Scheduler()
    bus, rx = _bus(s)
    bus.send(1, bytes(100))                     # 0..10000
    s.schedule(5050, bus.set_up, 1, False)      # dies after 50 bytes
    s.schedule(0, bus.set_up, 3, False)
    s.schedule(2000, bus.set_up, 3, True)       # 3 comes up mid-frame: misses it
    s.run()
    assert [len(d) for _, d in rx[2]] == [50]
    assert rx[3] == []
    assert bus.bytes_cut == 50
    assert bus.send(1, b"zz") == s.now and bus.bytes_cut == 52     # down: nothing sent
    bus.set_up(1, True)
    bus.send(1, b"ok")
    s.run()
    assert rx[3][-1][1] == b"ok"


def test_bus_noise_and_chunked_delivery():
    s = Scheduler()
    bus, rx = _bus(s, baud=1000000, ber=1e-3, burst_rate=0.2, chunk_max=7)
    payload = bytes(200)
    n = 300
    t = 0
    for i in range(n):
        s.schedule(t, bus.send, 1 + i % 2, payload)
        t += air_us(200, 1000000) + 10
    s.run()
    assert bus.collisions == 0
    got = b"".join(d for _, d in rx[3])
    assert len(got) == n * 200
    flipped = sum(bin(b).count("1") for b in got)
    assert flipped >= bus.bits_flipped > 0
    assert 300 <= bus.bits_flipped <= 700         # 480,000 bits at 1e-3
    assert 30 < bus.noise_bursts < 95             # 300 frames at 0.2
    assert max(len(d) for _, d in rx[3]) <= 7


# ---------------------------------------------------------------------------
# determinism of a whole engine run (test doubles as stations)

def _engine_run(seed, faults="all"):
    fo = FaultOptions.from_seed(seed, parse_faults(faults), pairs=2, duration_us=2000000)
    tree = SeedTree(seed)
    s = Scheduler(trace=True)
    bus = Bus(s, 115200, tree.stream("bus"), ber=fo.bus_ber, burst_rate=fo.bus_burst_rate)
    link = SerialLink(s, 115200, tree.stream("link"), latency_us=fo.peer_latency_us,
                      jitter_us=fo.peer_jitter_us, frame_loss=fo.peer_frame_loss,
                      range_loss=fo.peer_range_loss, ber=fo.peer_ber,
                      outages=fo.peer_outages[0], chunk_max=64)
    clocks = {n: LocalClock(fo.drift_ppm[n], fo.clock_offset_us[n]) for n in ("p0", "p1")}
    for sid in (1, 2, 3):
        bus.attach(sid, lambda d, _sid=sid: s.note("bus", _sid, d))
    link.attach(0, lambda d: s.note("a", d))
    link.attach(1, lambda d: s.note("b", d))

    def talker(name, r, k):
        if k > 150:
            return
        local = clocks[name].local_us(s.now)
        data = bytes(r.randrange(256) for _ in range(r.randint(1, 80))) + local.to_bytes(8, "little")
        if r.random() < 0.5:
            bus.send(r.choice((1, 2, 3)), data)
        else:
            link.send(r.randrange(2), data)
        s.schedule(clocks[name].to_virtual(local + r.randint(100, 20000)), talker, name, r, k + 1)

    for name in clocks:
        s.schedule(0, talker, name, tree.stream("talker/" + name), 0)
    s.run()
    return s.digest(), bus.stats(), link.stats()


def test_same_seed_same_trace_different_seed_differs():
    d1, b1, l1 = _engine_run(21)
    d2, b2, l2 = _engine_run(21)
    assert d1 == d2 and b1 == b2 and l1 == l2
    d3, _, _ = _engine_run(22)
    assert d3 != d1
    assert _engine_run(21, "none")[0] != d1


# ---------------------------------------------------------------------------
# board harness with test doubles (no firmware needed)

class FakeDeframer:
    """Frames are [len][port-tag][payload...]; anything else counts as garbage."""

    def __init__(self):
        self.buf = bytearray()
        self.bad_magic = self.bad_version = self.bad_hcheck = 0
        self.bad_length = self.bad_crc = self.overflow = 0
        self.abandoned = 0
        self.discarded = 0          # bytes thrown away, as the real deframer counts them
        self.frames = 0

    def abandon(self):
        return False

    def feed(self, chunk):
        self.buf += chunk

    def next(self):
        while self.buf:
            n = self.buf[0]
            if n == 0:
                self.bad_magic += 1
                self.discarded += 1
                del self.buf[0]
                continue
            if len(self.buf) < 1 + n:
                return False
            body = bytes(self.buf[1:1 + n])
            del self.buf[:1 + n]
            self.mtype, self.flags, self.src, self.dst, self.group = body[0], 0, 9, 0, 0
            self.seq, self.ack, self.plen = 0, 0, n - 1
            self.payload = memoryview(body[1:])
            self.frames += 1
            return True
        return False


class FakeStore:
    mounts = 0

    def __init__(self, disk):
        self.disk = disk

    def mount(self):
        FakeStore.mounts += 1
        if self.disk.get("broken"):
            raise ValueError("no superblock")


class PowerLoss(Exception):
    pass


class FakeNode:
    """Echoes every frame back on the port it came from, ticks every `period` local us,
    and counts; raises PowerLoss when the disk says so."""

    def __init__(self, cfg, store):
        self.store = store
        self.period = cfg.period
        self.out = []
        self.seen = []
        self.ticks = []
        self.garbage = 0
        self.next_deadline = None

    def boot(self, now):
        self.booted_at = now
        self.next_deadline = now + self.period

    def on_frame(self, now, port, mtype, flags, src, dst, group, seq, ack, payload):
        if self.store.disk.get("cut"):
            raise PowerLoss()
        self.seen.append((now, port, mtype, bytes(payload)))
        self.out.append((port, bytes([1 + len(payload), mtype]) + bytes(payload)))

    def on_garbage(self, now, port, count):
        self.garbage += count

    def tick(self, now):
        self.ticks.append(now)
        self.next_deadline = now + self.period

    def take_out(self):
        o, self.out = self.out, []
        return o

    def stats(self, now=0):
        return {"seen": len(self.seen), "ticks": len(self.ticks)}


class Cfg:
    node = 1
    group = 0

    def __init__(self, period):
        self.period = period


def _board(s, period=10000, drift=0.0, disk=None):
    b = SimBoard(s, "t0", Cfg(period), disk if disk is not None else {}, LocalClock(drift, 500),
                 random.Random(1), powercut_exc=PowerLoss, node_factory=FakeNode,
                 store_factory=FakeStore, deframer_factory=FakeDeframer)
    return b


def test_board_ticks_follow_the_local_clock():
    s = Scheduler()
    b = _board(s, period=10000, drift=1000.0)       # fast clock: +0.1 %
    s.schedule(0, b.power_on)
    s.run_until(1000000)
    node = b.node
    assert node.booted_at == 500
    # local deadlines every 10000 local us; the clock runs 0.1 % fast
    assert node.ticks[:3] == [10500, 20500, 30500]
    assert len(node.ticks) == 100                   # local 1,001,500 at virtual 1 s
    for t in node.ticks:
        v = b.clock.to_virtual(t)
        assert b.clock.local_us(v) == t


def test_board_routes_frames_and_garbage():
    s = Scheduler()
    bus = Bus(s, 100000, random.Random(2))
    other = []
    bus.attach(2, lambda d: other.append(d))
    link = SerialLink(s, 100000, random.Random(3), latency_us=100, chunk_max=3)
    peer_got = []
    link.attach(1, peer_got.append)
    b = _board(s)
    b.attach_bus(bus, 1)
    b.attach_peer(link, 0)
    s.schedule(0, b.power_on)
    s.schedule(10, bus.send, 2, bytes([3, 0x42, 7, 8]))
    s.schedule(10, link.send, 1, bytes([0, 0, 2, 0x43, 9]))    # two garbage bytes first
    s.run_until(100000)
    node = b.node
    # bus frame: 4 bytes from t=10 -> 410; peer frame: 5 bytes + 100 us latency -> 610
    assert [(p, m, pl) for _, p, m, pl in node.seen] == [(PORT_BUS, 0x42, b"\x07\x08"),
                                                        (PORT_PEER, 0x43, b"\x09")]
    assert [b.clock.to_virtual(t) for t, _, _, _ in node.seen] == [410, 610]
    assert node.garbage == 2
    assert other == [bytes([3, 0x42, 7, 8])]                     # echoed on the bus
    assert b"".join(peer_got) == bytes([2, 0x43, 9])              # echoed on the peer link
    assert b.frames_in == [0, 1, 1] and b.frames_out == [0, 1, 1]


def test_board_crash_reboot_and_power_cut():
    s = Scheduler()
    link = SerialLink(s, 100000, random.Random(3), latency_us=100)
    peer_got = []
    link.attach(1, peer_got.append)
    disk = {}
    b = _board(s, disk=disk)
    b.attach_peer(link, 0)
    s.schedule(0, b.power_on)
    s.schedule(1000, b.crash, 50000)
    s.schedule(2000, link.send, 1, bytes([2, 0x50, 1]))          # lost: board down
    s.run_until(40000)
    assert not b.alive and b.crashes == 1 and b.node is None
    assert b.last_stats == {"seen": 0, "ticks": 0}
    s.run_until(60000)
    assert b.alive and b.reboots == 1 and b.incarnation == 2
    assert b.clock.restarts == 1 and b.clock.v0 == 51000
    s.schedule(s.now + 10, link.send, 1, bytes([2, 0x51, 2]))
    s.run_until(70000)
    assert [m for _, _, m, _ in b.node.seen] == [0x51]
    # power loss raised from inside the node is a crash at that instant
    disk["cut"] = True
    b._pc_pending = (b.incarnation, 30000)
    t_cut = s.now + 10
    s.schedule(t_cut, link.send, 1, bytes([2, 0x52, 3]))
    s.run_until(80000)
    assert not b.alive and b.power_cuts == 1
    assert b.history[-1][1] == "powercut" and b.history[-1][2] == 30000
    disk["cut"] = False
    s.run_until(200000)
    assert b.alive and b.incarnation == 3
    # a board that cannot mount stays down and says so
    disk["broken"] = True
    b.crash(10)
    s.run_until(300000)
    assert not b.alive and b.mount_failures == 1
    b.destroy()
    assert b.power_on() is False


def test_board_detects_deadline_stuck_in_the_past():
    class Stuck(FakeNode):
        def tick(self, now):
            self.next_deadline = now - 5

    s = Scheduler()
    b = SimBoard(s, "t1", Cfg(10), {}, LocalClock(0.0, 0), random.Random(1),
                 powercut_exc=PowerLoss, node_factory=Stuck, store_factory=FakeStore,
                 deframer_factory=FakeDeframer)
    s.schedule(0, b.power_on)
    with pytest.raises(SimError):
        s.run_until(10 ** 9)


# ---------------------------------------------------------------------------
# the whole world, with the real firmware core (skipped while it cannot be imported)

class TinyWorkload:
    """A fixed list of writes, two outstanding at a time, polled every 10 ms."""

    def __init__(self, pairs, n):
        self.todo = [(i + 1, i % pairs, 0, i % 64, bytes([i % 256]) * 512) for i in range(n)]
        self.busy = set()
        self.results = {}
        self.now = 0

    @property
    def done(self):
        return not self.todo and not self.busy

    def start(self, now):
        self.now = now

    def poll(self, now):
        self.now = now
        out = []
        while self.todo and len(self.busy) < 2:
            req = self.todo.pop(0)
            self.busy.add(req[0])
            out.append(req)
        return out

    def complete(self, wid, now, ok):
        self.busy.discard(wid)
        self.results[wid] = (now, ok)

    def next_wakeup(self):
        return self.now + 10000 if self.todo else None


def _world_run(seed, faults):
    try:
        from host_tools.sim.world import World
        from firmware import node  # noqa: F401
        from firmware import codec  # noqa: F401
        from firmware import deframer  # noqa: F401
    except ImportError as e:                     # pragma: no cover
        pytest.skip("firmware core not importable: %s" % e)
    wl = TinyWorkload(2, 60)
    w = World(seed=seed, faults=faults, workload=wl, pairs=2, duration_us=3000000, trace=True,
              workload_start_us=500000)
    w.run()
    return w, wl


def test_world_same_seed_same_digest():
    w1, wl1 = _world_run(3, "loss,corrupt,jitter,crash,drift,collision")
    w2, wl2 = _world_run(3, "loss,corrupt,jitter,crash,drift,collision")
    assert w1.digest() == w2.digest()
    assert wl1.results == wl2.results
    assert w1.stats()["events"] == w2.stats()["events"]
    w3, _ = _world_run(4, "loss,corrupt,jitter,crash,drift,collision")
    assert w3.digest() != w1.digest()
    st = w1.stats()
    assert st["errors"] == []
    d = st["workload"]
    assert d["issued"] == d["completed"] + d["failed"] + len(wl1.busy)
    assert d["abandoned"] <= len(wl1.busy)
    assert d["issued"] > 0
