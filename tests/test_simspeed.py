# The simulator's and the firmware's fast paths behave exactly as the code they replaced.
"""Differential tests of the performance work (issue #16): the rewritten Deframer.next, PortRx
and the range checks of codec against reference copies of the code before it, plus the engine's
shortcuts (host-port reply decoding, FaultyDisk's one-block write, the link's chunk draws)."""
import binascii
import random

import pytest
from hypothesis import given, settings, strategies as st

from firmware import codec, wire
from firmware.deframer import Deframer
from firmware.portrx import PortRx
from firmware.wire import MAGIC0, MAGIC1, VERSION, HDR_SIZE, OVERHEAD, HCHECK_OFF
from protocol import hostcodec
from host_tools.sim import link as link_mod
from host_tools.sim.disk import RamDisk, FaultyDisk, BLOCK_SIZE
from host_tools.sim.scheduler import Scheduler


# ---- reference: the deframer and port receiver as they were before the rewrite ----------------
class RefDeframer(Deframer):
    """Deframer.next as it was (a header copy per pass of the loop, one pass per stage)."""

    def _load(self, n):
        s = self._s
        try:
            s[0:] = self._in
            s[n:] = b""
        except BufferError:
            s = self._s = bytearray(self.capacity)
            s[0:] = self._in
            s[n:] = b""
        return s

    def next(self):
        b = self._in
        while True:
            n = len(b)
            need = self._need
            if need:
                if n < need:
                    return False
                s = self._load(need)
                ok = binascii.crc32(s) == codec.RES
                self._need = 0
                if not ok:
                    self.bad_crc += 1
                    b[0:2] = b""
                    continue
                b[0:need] = b""
                self.frame = s
                self.mtype, self.flags, self.src, self.dst, self.group = s[3], s[4], s[5], s[6], s[7]
                self.seq = s[8] | (s[9] << 8)
                self.ack = s[10] | (s[11] << 8)
                self.plen = need - OVERHEAD
                self.frames += 1
                return True
            if n < 2:
                if n == 1 and b[0] != MAGIC0:
                    b[0:] = b""
                    self.bad_magic += 1
                return False
            if b[0] != MAGIC0 or b[1] != MAGIC1:
                i = b.find(b"\xA5\x5C", 1)
                if i < 0:
                    i = n - 1 if b[n - 1] == MAGIC0 else n
                b[0:i] = b""
                self.bad_magic += i
                continue
            if n < HDR_SIZE:
                return False
            s = self._load(HDR_SIZE)
            if not binascii.crc32(s, codec.HCHECK_INIT) < 0x10000:
                self.bad_hcheck += 1
                b[0:2] = b""
                continue
            if s[2] != VERSION:
                self.bad_version += 1
                b[0:2] = b""
                continue
            plen = s[HCHECK_OFF - 2] | (s[HCHECK_OFF - 1] << 8)
            if plen > self.max_payload:
                self.bad_length += 1
                b[0:2] = b""
                continue
            self._need = plen + OVERHEAD


class RefPortRx(PortRx):
    """PortRx as it was: the garbage count from the deframer's counters, a call per frame."""

    def data(self, now, chunk):
        if self.last_rx is not None and now - self.last_rx > 100000:
            self._quiet(now)
        self.last_rx = now
        self.d.feed(chunk)
        self._drain(now)

    def _report(self, now):
        d = self.d
        e = (d.bad_magic + d.overflow
             + 2 * (d.bad_version + d.bad_hcheck + d.bad_length + d.bad_crc + d.abandoned))
        if e != self.garbage:
            self.node.on_garbage(now, self.port, e - self.garbage)
            self.garbage = e


COUNTERS = ("frames", "bad_magic", "bad_version", "bad_hcheck", "bad_length", "bad_crc", "overflow",
            "abandoned")


def _frame(k, plen):
    body = bytes((k * 7 + i) & 0xFF for i in range(plen))
    return hostcodec.encode(wire.T_WRITE_BATCH if plen > 12 else wire.T_CHECKPOINT, 1, 2, body,
                            seq=k, ack=k ^ 0x55)


def _bad_version(k):
    f = bytearray(_frame(k, 12))
    f[2] = 9
    f[14:16] = (binascii.crc32(bytes(f[:14])) & 0xFFFF).to_bytes(2, "little")
    return bytes(f)


PIECE = st.one_of(
    st.builds(_frame, st.integers(0, 999), st.integers(0, 300)),
    st.builds(lambda f, i, x: f[:i % len(f)] + bytes([f[i % len(f)] ^ x]) + f[i % len(f) + 1:],
              st.builds(_frame, st.integers(0, 999), st.integers(0, 300)), st.integers(0, 400),
              st.integers(1, 255)),                                        # damaged frame
    st.builds(lambda f, k: f[:k], st.builds(_frame, st.integers(0, 99), st.integers(0, 300)),
              st.integers(1, 40)),                                         # cut short
    st.builds(_bad_version, st.integers(0, 99)),
    st.binary(max_size=40),                                                # noise
    st.just(b"\xA5"), st.just(b"\xA5\x5C"),
)


def _feed_both(new, ref, chunk):
    """Feed a chunk to the new and the reference deframer; every frame they yield, alike."""
    assert new.feed(chunk) == ref.feed(chunk)
    while True:
        a, b = new.next(), ref.next()
        assert a == b
        if not a:
            break
        assert bytes(new.frame) == bytes(ref.frame)
        assert (new.mtype, new.flags, new.src, new.dst, new.group, new.seq, new.ack, new.plen) == \
            (ref.mtype, ref.flags, ref.src, ref.dst, ref.group, ref.seq, ref.ack, ref.plen)
        assert bytes(new.payload) == bytes(ref.payload)


@settings(max_examples=120, deadline=None)
@given(pieces=st.lists(PIECE, max_size=12), cut=st.integers(1, 600),
       abandon_every=st.integers(0, 5), max_payload=st.sampled_from([64, 256, wire.MAX_PAYLOAD]))
def test_deframer_matches_the_reference(pieces, cut, abandon_every, max_payload):
    stream = b"".join(pieces)
    new = Deframer(max_payload, slack=128)
    ref = RefDeframer(max_payload, slack=128)
    k = 0
    for pos in range(0, len(stream), cut):
        chunk = stream[pos:pos + cut]
        _feed_both(new, ref, chunk)
        k += 1
        if abandon_every and k % abandon_every == 0:
            assert new.abandon() == ref.abandon()
        assert new.pending == ref.pending
        assert [getattr(new, c) for c in COUNTERS] == [getattr(ref, c) for c in COUNTERS]
        assert new.discarded == (new.bad_magic + new.overflow + 2 * (
            new.bad_version + new.bad_hcheck + new.bad_length + new.bad_crc + new.abandoned))


class _Node:
    def __init__(self):
        self.calls = []

    def on_frame(self, now, port, mtype, flags, src, dst, group, seq, ack, payload):
        self.calls.append(("frame", now, port, mtype, flags, src, dst, group, seq, ack, bytes(payload)))

    def on_garbage(self, now, port, n):
        self.calls.append(("garbage", now, port, n))


@settings(max_examples=80, deadline=None)
@given(pieces=st.lists(PIECE, max_size=10), cut=st.integers(1, 300),
       gaps=st.lists(st.integers(0, 250000), min_size=1, max_size=8))
def test_portrx_matches_the_reference(pieces, cut, gaps):
    stream = b"".join(pieces)
    nn, rn = _Node(), _Node()
    new = PortRx(nn, 2, Deframer(wire.MAX_PAYLOAD, slack=512))
    ref = RefPortRx(rn, 2, RefDeframer(wire.MAX_PAYLOAD, slack=512))
    now = 0
    for i, pos in enumerate(range(0, len(stream), cut)):
        now += gaps[i % len(gaps)]
        new.data(now, stream[pos:pos + cut])
        ref.data(now, stream[pos:pos + cut])
        new.idle(now + 50000)
        ref.idle(now + 50000)
    new.idle(now + 10 ** 6)
    ref.idle(now + 10 ** 6)
    assert nn.calls == rn.calls
    assert new.frames == ref.frames and new.garbage == ref.garbage


# ---- codec: the one-test range checks accept and refuse exactly what the field checks did --------
def _ref_frame_check(mtype, flags, src, dst, group, seq, ack, plen):
    for v, what, hi in ((mtype, "frame.type", 255), (flags, "frame.flags", 255), (src, "frame.src", 255),
                        (dst, "frame.dst", 255), (group, "frame.group", 255), (seq, "frame.seq", 0xFFFF),
                        (ack, "frame.ack", 0xFFFF), (plen, "frame.length", wire.MAX_PAYLOAD)):
        if not isinstance(v, int) or v < 0 or v > hi:
            return what
    return None


FIELD = st.one_of(st.integers(-3, 300), st.integers(0, 0x10002), st.sampled_from([1.0, None, True, 1 << 40]))


@settings(max_examples=120, deadline=None)
@given(f=st.tuples(FIELD, FIELD, FIELD, FIELD, FIELD, FIELD, FIELD, st.one_of(FIELD, st.integers(0, 4200))))
def test_build_frame_checks_match_the_field_checks(f):
    want = _ref_frame_check(*f)
    buf = bytearray(wire.MAX_FRAME + 4)
    if want is None:
        n = codec.build_frame(buf, *f)
        assert hostcodec.decode(bytes(buf[:n]))[:7] == tuple(f[:7])
    else:
        with pytest.raises(ValueError, match=want.replace(".", r"\.")):
            codec.build_frame(buf, *f)


@pytest.mark.parametrize("call, what", [
    (lambda b: codec.pack_record(b, 0, 256, 0, 0, bytes(512)), r"record\.vol"),
    (lambda b: codec.pack_record(b, 0, 0, -1, 0, bytes(512)), r"record\.block"),
    (lambda b: codec.pack_record(b, 0, 0, 0, 1 << 32, bytes(512)), r"record\.dt"),
    (lambda b: codec.pack_record(b, 0, 0, 0, 0, bytes(8)), r"record\.data"),
    (lambda b: codec.pack_record(b, 0, 0, 0, 0, bytes(512)), r"record: needs"),
    (lambda b: codec.pack_record(b, 0, 1.0, 0, 0, bytes(512)), r"record\.vol"),
    (lambda b: codec.pack_batch_head(b, 0, 1, -1, 0), r"write_batch\.lseq"),
    (lambda b: codec.pack_batch_head(b, 0, 1, 0, 1 << 64), r"write_batch\.t"),
    (lambda b: codec.pack_batch_head(b, 0, 8, 0, 0), r"write_batch\.count"),
    (lambda b: codec.pack_batch_head(b, 60, 1, 0, 0), r"write_batch: needs"),
    (lambda b: codec.pack_ack(b, 0, -1), r"ack\.lseq"),
    (lambda b: codec.pack_ack(b, 62, 1), r"ack: needs"),
    (lambda b: codec.pack_clock_sync(b, 0, -1, 0), r"clock_sync\.t"),
    (lambda b: codec.pack_clock_sync(b, 0, 0, 1 << 32), r"clock_sync\.round"),
    (lambda b: codec.pack_clock_sync(b, 60, 0, 0), r"clock_sync: needs"),
    (lambda b: codec.pack_release(b, 0, 1 << 32, 0), r"release\.n"),
    (lambda b: codec.pack_held(b, 0, 0, None), r"held\.t"),
    (lambda b: codec.pack_marker(b, -1, 0, 0), r"marker: needs"),
    (lambda b: codec.pack_h_reply(b, 0, 256), r"h_reply\.status"),
    (lambda b: codec.pack_h_reply(b, 63, 0, b"xy"), r"h_reply: needs"),
])
def test_packers_still_name_the_bad_field(call, what):
    with pytest.raises(ValueError, match=what):
        call(bytearray(64))


def test_unpack_of_a_whole_payload_and_of_a_region_agree():
    buf = bytearray(40)
    codec.pack_checkpoint(buf, 4, 7, 1 << 40)
    assert codec.unpack_checkpoint(bytes(buf[4:4 + codec.SZ_CHECKPOINT])) == (7, 1 << 40)
    assert codec.unpack_checkpoint(buf, 4, 4 + codec.SZ_CHECKPOINT) == (7, 1 << 40)
    with pytest.raises(ValueError, match="expected"):
        codec.unpack_checkpoint(bytes(codec.SZ_CHECKPOINT + 1))
    with pytest.raises(ValueError, match="bad region"):
        codec.unpack_checkpoint(bytes(codec.SZ_CHECKPOINT), 0.0)


# ---- third round (firmware per-frame path): reference copies of the code it replaced -------------
import struct                                                               # noqa: E402

from firmware.busmac import BusMac                                          # noqa: E402
from firmware.portrx import QUIET_US                                        # noqa: E402
from firmware.ticks import TICKS_MASK, ticks_add, ticks_age, ticks_diff     # noqa: E402


class RefPortRx2(RefPortRx):
    """PortRx.data as it was before the third round (ticks_diff called, and next() called once
    more per chunk to find the buffer empty; the garbage from RefDeframer's counters)."""

    def data(self, now, chunk):
        last = self.last_rx
        if last is not None and ticks_diff(now, last) > QUIET_US:
            self._quiet(now)
        self.last_rx = now
        d = self.d
        d.feed(chunk)
        while d.next():
            self._report(now)
            self.frames += 1
            self.node.on_frame(now, self.port, d.mtype, d.flags, d.src, d.dst, d.group, d.seq, d.ack,
                               d.payload)


class RefBusMac:
    """firmware/busmac.py's BusMac as it was before the election wait was cached."""

    def __init__(self, me, members, slot_us, cycle_us, member_timeout_us):
        self.me = me
        self.members = members
        self.slot_us = slot_us
        self.cycle_us = cycle_us + (me % 8) * 97
        self.member_timeout_us = member_timeout_us
        self.heard = {}
        self.master = 0
        self.boot_us = None
        self.last_beacon = None
        self.next_cycle = 0
        self.slot_open = None
        self.cycle = 0
        self.elections = 0
        self.became_master = 0
        self.ready = False

    def _rank(self, now):
        r = 0
        for m in self.members:
            if m >= self.me:
                break
            if m != self.master:
                t = self.heard.get(m)
                if t is None:
                    t = self.boot_us
                d = (now - t) & TICKS_MASK
                if d < self.member_timeout_us or d >= 0x20000000:
                    r += 1
        return r

    def _slot_index(self):
        i = 0
        for m in self.members:
            if m == self.master:
                continue
            if m == self.me:
                return i
            i += 1
        return -1

    def boot(self, now):
        self.boot_us = now
        self.last_beacon = now
        self.master = 0
        self.slot_open = None

    def on_heard(self, now, src):
        if src != self.me and src in self.members:
            self.heard[src] = now

    def on_beacon(self, now, src, cycle):
        if src == self.me or src not in self.members:
            return
        if self.master == self.me:
            if src < self.me:
                self.master = src
            else:
                return
        elif self.master and src > self.master and ticks_diff(now, self.last_beacon) < 2 * self.cycle_us:
            return
        self.master = src
        self.cycle = cycle
        self.last_beacon = now
        if self.me < src and self.ready and self._rank(now) == 0 \
                and ticks_diff(now, self.boot_us) >= self.member_timeout_us:
            self.master = self.me
            self.elections += 1
            self.became_master = now
            self.slot_open = None
            self.next_cycle = ticks_add(now, (len(self.members) - 1) * self.slot_us + self.slot_us // 2)
            return
        idx = self._slot_index()
        self.slot_open = ticks_add(now, idx * self.slot_us) if idx >= 0 else None

    def poll(self, now):
        if self.master == self.me:
            if ticks_diff(now, self.next_cycle) >= 0:
                self.cycle = (self.cycle + 1) & 0xFFFFFFFF
                self.next_cycle = ticks_add(now, self.cycle_us + self._jitter())
                return 1
            return 0
        if self.slot_open is not None and ticks_diff(now, self.slot_open) >= 0:
            late = ticks_diff(now, self.slot_open)
            self.slot_open = None
            if late <= self.slot_us // 2:
                return 2
            return 0
        silent = ticks_diff(now, self.last_beacon)
        if silent >= self._election_wait(now):
            if self.master:
                self.heard.pop(self.master, None)
            self.master = self.me
            self.elections += 1
            self.became_master = now
            self.next_cycle = now
            return self.poll(now)
        return 0

    def _election_wait(self, now):
        rank = self._rank(now)
        w = (3 + rank) * self.cycle_us
        if ticks_diff(now, self.boot_us) < self.member_timeout_us:
            b = self.member_timeout_us + rank * self.cycle_us
            if b > w:
                w = b
        return w

    def _jitter(self):
        x = (self.cycle * 2654435761 + self.me * 40503) & 0xFFFFFF
        return (x >> 4) % self.slot_us

    def deadline(self, now):
        if self.master == self.me:
            return self.next_cycle
        d = ticks_add(self.last_beacon, self._election_wait(now))
        s = self.slot_open
        if s is not None and ticks_diff(s, d) < 0:
            d = s
        return d

    def age(self, now):
        self.boot_us = ticks_age(now, self.boot_us)
        self.last_beacon = ticks_age(now, self.last_beacon)
        self.became_master = ticks_age(now, self.became_master)
        if self.master != self.me:
            self.next_cycle = ticks_age(now, self.next_cycle)
        for m in self.heard:
            self.heard[m] = ticks_age(now, self.heard[m])


_MAC_STATE = ("me", "members", "slot_us", "cycle_us", "member_timeout_us", "heard", "master", "boot_us",
              "last_beacon", "next_cycle", "slot_open", "cycle", "elections", "became_master", "ready")


def _mac_state(m):
    return [getattr(m, k) for k in _MAC_STATE]


def _mac_run(seed, steps=1500):
    """Random bus events on a cached and a reference MAC: every result and all state agree."""
    rng = random.Random(seed)
    members = tuple(sorted(rng.sample(range(1, 12), rng.randint(1, 6))))
    me = rng.choice(members)
    slot = rng.choice([1000, 2500, 7000])
    cycle = rng.choice([5000, 20000, 50000])
    tmo = rng.choice([1, 3000, 8 * cycle, (1 << 28) - 1, 0, -5, 1 << 29, (1 << 29) + 7])
    new = BusMac(me, members, slot, cycle, tmo)
    ref = RefBusMac(me, members, slot, cycle, tmo)
    now = rng.choice([0, 12345, TICKS_MASK - 3 * cycle, (1 << 29) - 100])
    new.boot(now)
    ref.boot(now)
    for _ in range(steps):
        r = rng.random()
        if r < 0.75:
            now = (now + rng.choice([0, 1, rng.randint(0, 2 * slot), rng.randint(0, 4 * cycle),
                                     rng.randint(0, abs(tmo) + 2)])) & TICKS_MASK
        elif r < 0.85:
            now = (now + rng.randint(0, TICKS_MASK)) & TICKS_MASK        # far ahead (or behind)
        elif r < 0.9:
            now = (now - rng.randint(0, 3 * cycle)) & TICKS_MASK          # back in time
        op = rng.random()
        if op < 0.3:
            src = rng.choice(members + (0, 99))
            new.on_heard(now, src)
            ref.on_heard(now, src)
        elif op < 0.45:
            src = rng.choice(members + (99,))
            c = rng.randint(0, 1000)
            new.on_beacon(now, src, c)
            ref.on_beacon(now, src, c)
        elif op < 0.65:
            assert new.poll(now) == ref.poll(now)
        elif op < 0.67:
            new.age(now)
            ref.age(now)
        elif op < 0.68:
            new.boot(now)
            ref.boot(now)
        elif op < 0.70:
            new.master = ref.master = rng.choice(members + (0,))           # a direct write
        elif op < 0.72:
            new.ready = ref.ready = rng.random() < 0.5
        elif op < 0.75:
            t = rng.randint(0, TICKS_MASK)                                 # a deadline anywhere
            assert new.deadline(t) == ref.deadline(t)
            assert new._election_wait(t) == ref._election_wait(t)
        assert new.deadline(now) == ref.deadline(now)
        assert new._rank(now) == ref._rank(now)
        assert _mac_state(new) == _mac_state(ref)


@pytest.mark.parametrize("seed", range(40))
def test_busmac_cached_election_wait_matches_the_reference(seed):
    _mac_run(seed)


@pytest.mark.parametrize("seed", range(12))
def test_busmac_cache_holds_exactly_to_each_change_of_aliveness(seed):
    """A wait cached at any point (a kept time behind or ahead of it) and asked for at every
    tick where a lower id's or the boot window's aliveness changes, and one either side."""
    rng = random.Random(seed)
    tmo = (1, 777, 70000, 160000)[seed % 4]    # above 3 cycles (60 ms) the boot window counts
    members = (1, 2, 3, 5, 8)
    b0 = rng.randint(0, TICKS_MASK)
    new, ref = BusMac(8, members, 2000, 20000, tmo), RefBusMac(8, members, 2000, 20000, tmo)
    new.boot(b0)
    ref.boot(b0)
    for m in ((1, 3, 5), (1, 2, 3, 5))[seed // 4 % 2]:    # all heard: only the boot window uses b0
        t = rng.randint(0, TICKS_MASK)
        new.on_heard(t, m)
        ref.on_heard(t, m)
    new.master = ref.master = rng.choice([0, 1, 2])
    points = set()
    for t in [b0] + list(ref.heard.values()):
        for base in (t, t + tmo, t + (1 << 29), t - 5):
            points.update((base + k) & TICKS_MASK for k in (-1, 0, 1))
    points = sorted(points)
    cache = ("_w", "_w_rank", "_w_boot", "_w_master", "_w_at", "_w_for")
    for x0 in points:
        new._w_for = 0
        assert new.deadline(x0) == ref.deadline(x0)
        kept = [getattr(new, k) for k in cache]
        for x in points:
            for k, v in zip(cache, kept):
                setattr(new, k, v)             # as cached at x0
            assert new.deadline(x) == ref.deadline(x), (x0, x)


def test_busmac_caches_the_election_wait_between_events():
    m = BusMac(3, (1, 2, 3, 4), 2000, 20000, 160000)
    m.boot(1000)
    m.on_beacon(2000, 1, 1)
    calls = []
    real = m._wait_at
    m._wait_at = lambda now: (calls.append(now), real(now))
    for t in range(2000, 100000, 500):
        m.deadline(t)
    assert len(calls) == 1                         # member 2 and the boot window: alive to 161000
    m.on_heard(100000, 2)                          # a lower id: updated in place
    assert m.deadline(100001) == RefBusMac.deadline(m, 100001)
    assert len(calls) == 1


def _ref_build_frame(buf, mtype, flags, src, dst, group, seq, ack, plen):
    h = struct.pack(wire.HDR_FMT, MAGIC0, MAGIC1, VERSION, mtype, flags, src, dst, group, seq, ack, plen)
    struct.pack_into(wire.HDR_FMT + "H", buf, 0, MAGIC0, MAGIC1, VERSION, mtype, flags, src, dst, group,
                     seq, ack, plen, binascii.crc32(h) & 0xFFFF)
    n = HDR_SIZE + plen
    struct.pack_into("<I", buf, n, binascii.crc32(bytes(buf[:n])))
    return n + 4


@settings(max_examples=150, deadline=None)
@given(h=st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255), st.integers(0, 255),
                   st.integers(0, 255), st.integers(0, 0xFFFF), st.integers(0, 0xFFFF)),
       payload=st.binary(max_size=wire.MAX_PAYLOAD), junk=st.binary(min_size=64, max_size=64),
       view=st.booleans(), through=st.booleans())
def test_build_frame_bytes_match_the_reference(h, payload, junk, view, through):
    size = HDR_SIZE + len(payload) + 4 + len(junk) % 9
    a, b = bytearray(junk * (size // 64 + 1))[:size], bytearray(junk * (size // 64 + 1))[:size]
    a[HDR_SIZE:HDR_SIZE + len(payload)] = payload
    b[HDR_SIZE:HDR_SIZE + len(payload)] = payload
    n = codec.build_frame(memoryview(a) if view else a, *h, len(payload),
                          memoryview(a) if through else None)     # the CRC through a view, or the scratch
    assert n == _ref_build_frame(b, *h, len(payload))
    assert a == b


@pytest.mark.parametrize("name", ["copy_active", "clock_sync", "checkpoint", "held", "update_complete",
                                  "ack", "h_write", "marker", "release", "reset_uip"])
def test_unpackers_take_and_refuse_what_exact_did(name):
    size = getattr(codec, "SZ_" + name.upper())
    fmt = getattr(wire, "P_" + name.upper())
    unpack = getattr(codec, "unpack_" + name)

    def ref(mv, off=0, end=None):
        codec._exact(mv, off, end, size, name)
        return struct.unpack_from(fmt, mv, off)

    data = bytes((7 + i) & 0xFF for i in range(size + 6))
    for mv, off, end in ((data[:size], 0, None), (data[:size], False, None), (data, 3, 3 + size),
                         (data[:size], 0, size), (memoryview(data)[:size], 0, None),
                         (data[:size + 1], 0, None), (data[:size - 1], 0, None), (data[:size], 0.0, None),
                         (data[:size], None, None), (data, 2, None), (data[:size], 0, size + 1),
                         (data[:size], 1, None)):
        try:
            want = ref(mv, off, end)
        except ValueError as e:
            want = str(e)
        try:
            got = unpack(mv, off, end)
        except ValueError as e:
            got = str(e)
        if name == "h_write" and not isinstance(got, str):
            o = off + size - BLOCK_SIZE
            assert bytes(got[2]) == bytes(mv[o:o + BLOCK_SIZE])
            got = got[:2]
        assert got == want, (mv, off, end)


def test_h_reply_with_and_without_a_body():
    a = bytearray(b"\xEE" * 40)
    assert codec.pack_h_reply(a, 16, 3) == 17 and a[16] == 3 and a[17:] == b"\xEE" * 23
    assert codec.pack_h_reply(a, 16, 0, b"xyz") == 20 and a[16:20] == b"\0xyz"


def _resealed(k, plen, version, hcheck_ok):
    """A frame with a good CRC whose version or header check is wrong (or not)."""
    f = bytearray(_frame(k, plen))
    f[2] = version
    hc = binascii.crc32(bytes(f[:14])) & 0xFFFF
    f[14:16] = (hc if hcheck_ok else hc ^ 1).to_bytes(2, "little")
    n = len(f) - 4
    f[n:] = binascii.crc32(bytes(f[:n])).to_bytes(4, "little")
    return bytes(f)


WHOLE = st.one_of(PIECE, st.builds(_resealed, st.integers(0, 99), st.integers(0, 300),
                                   st.sampled_from([VERSION, VERSION + 1, 0]), st.booleans()))


@settings(max_examples=150, deadline=None)
@given(pieces=st.lists(WHOLE, max_size=14), max_payload=st.sampled_from([64, 256, wire.MAX_PAYLOAD]),
       join=st.lists(st.integers(1, 3), min_size=1, max_size=5))
def test_deframer_matches_the_reference_fed_a_piece_at_a_time(pieces, max_payload, join):
    """Chunks that are exactly one candidate frame (the single-copy path), whole or damaged,
    and sometimes two or three pieces in one chunk."""
    new = Deframer(max_payload, slack=128)
    ref = RefDeframer(max_payload, slack=128)
    i = k = 0
    while i < len(pieces):
        j = join[k % len(join)]
        chunk = b"".join(pieces[i:i + (j if k % 3 == 2 else 1)])
        i += j if k % 3 == 2 else 1
        k += 1
        _feed_both(new, ref, chunk)
        assert bytes(new.buf) == bytes(ref._in) and new.pending == ref.pending
        assert [getattr(new, c) for c in COUNTERS] == [getattr(ref, c) for c in COUNTERS]
        assert new.discarded == (new.bad_magic + new.overflow + 2 * (
            new.bad_version + new.bad_hcheck + new.bad_length + new.bad_crc + new.abandoned))


@settings(max_examples=80, deadline=None)
@given(pieces=st.lists(WHOLE, max_size=10),
       gaps=st.lists(st.one_of(st.integers(0, 250000),
                               st.sampled_from([QUIET_US, QUIET_US + 1, -1, -QUIET_US - 5, 1 << 29,
                                                (1 << 29) + QUIET_US])), min_size=1, max_size=8),
       start=st.sampled_from([0, TICKS_MASK - 120000, (1 << 29) - 50000]))
def test_portrx_matches_the_reference_a_piece_at_a_time_across_the_wrap(pieces, gaps, start):
    nn, rn = _Node(), _Node()
    new = PortRx(nn, 1, Deframer(wire.MAX_BUS_PAYLOAD, slack=512))
    ref = RefPortRx2(rn, 1, RefDeframer(wire.MAX_BUS_PAYLOAD, slack=512))
    now = start
    for i, p in enumerate(pieces):
        now = (now + gaps[i % len(gaps)]) & TICKS_MASK
        new.data(now, p)
        ref.data(now, p)
        new.idle((now + 50000) & TICKS_MASK)
        ref.idle((now + 50000) & TICKS_MASK)
    assert nn.calls == rn.calls
    assert new.frames == ref.frames and new.garbage == ref.garbage


# ---- engine shortcuts -------------------------------------------------------------------------
def test_random_randint_is_randbelow_as_the_link_draws_it():
    for seed in range(5):
        a, b = random.Random(seed), random.Random(seed)
        below = link_mod._below(b)
        for n in (1, 2, 7, 256, 512, 30001):
            assert [a.randint(1, n) for _ in range(50)] == [1 + below(n) for _ in range(50)]
            assert [a.randint(0, n) for _ in range(50)] == [below(n + 1) for _ in range(50)]


def test_link_draws_through_randint_for_other_generators():
    class Counting(random.Random):
        calls = 0

        def randint(self, a, b):
            Counting.calls += 1
            return super().randint(a, b)

    f = link_mod._below(Counting(3))
    assert all(0 <= f(5) < 5 for _ in range(20)) and Counting.calls == 20


def _host_world():
    from host_tools.sim.world import HostPort

    class Board:
        name = "b"

        class cfg:
            node = 1
            group = 0

        def receive(self, port, frame):
            pass
    s = Scheduler()
    return s, HostPort(s, Board(), latency_us=10, timeout_us=1000)


def _reply(tag, status):
    return hostcodec.encode(wire.T_H_REPLY, 1, wire.HOST_ID, bytes([status, 9]), seq=tag, flags=wire.F_REPLY)


def test_host_port_takes_replies_whole_split_joined_and_after_garbage():
    s, hp = _host_world()
    got = []
    tags = [hp.request(wire.T_H_STATUS, b"", lambda now, st, mt, pl: got.append((st, pl)))
            for _ in range(5)]
    r = [_reply(t, k) for k, t in enumerate(tags)]
    hp._arrive(r[0])                      # whole frame: the fast path
    hp._arrive(r[1][:7])                  # split: through the deframer
    hp._arrive(r[1][7:] + r[2])           # the rest of one and a whole other, joined
    hp._arrive(b"\x00junk" + r[3])        # garbage first
    hp._arrive(r[4])
    hp._arrive(_reply(999, 0))            # nobody asked
    assert got == [(k, bytes([k, 9])) for k in range(5)]
    assert hp.replies == 5 and hp.unmatched == 1 and hp.outstanding() == 0
    s.run()
    assert hp.timeouts == 0


def test_faulty_disk_one_block_write_counts_and_checks_the_range():
    fd = FaultyDisk(RamDisk(4), random.Random(1))
    fd.writeblocks(3, bytes([7]) * BLOCK_SIZE)
    fd.writeblocks(0, bytes([8]) * (2 * BLOCK_SIZE))
    assert fd.writes == 3 and fd.write_calls == 2
    assert fd.inner.block(3) == bytes([7]) * BLOCK_SIZE and fd.inner.block(1) == bytes([8]) * BLOCK_SIZE
    for n in (4, -1):
        with pytest.raises(ValueError, match="outside device"):
            fd.writeblocks(n, bytes(BLOCK_SIZE))
    assert fd.writes == 3 and fd.write_calls == 4
    fd.arm_power_cut(0)
    from host_tools.sim.disk import PowerCut
    with pytest.raises(PowerCut):
        fd.writeblocks(2, bytes(BLOCK_SIZE))
    assert fd.dead and fd.writes == 3


def test_scheduler_leaves_an_event_that_is_not_due_in_its_place():
    s = Scheduler()
    seen = []
    for k, at in enumerate((50, 10, 50, 30, 50)):
        s.schedule(at, seen.append, k)
    assert s.run_until(20) == 1 and s.now == 20
    assert s.run_until(40) == 1 and s.now == 40
    s.run()
    assert seen == [1, 3, 0, 2, 4]


# ---- second round: timers, the host port's write path, the workload's draws --------------------
def _timer_run(seed, use_timer):
    """A random mix of events, timeouts (some with another delay), cancels, stop() and run_until
    windows; -> what ran, when, and the scheduler's counters."""
    r = random.Random(seed)
    s = Scheduler(trace=True)
    seen = []
    handles = []

    def ev(k):
        seen.append((s.now, k))
        for _ in range(r.randrange(3)):
            what = r.random()
            k2 = r.randrange(10 ** 6)
            if what < 0.4:
                handles.append(s.after(r.choice((0, 1, 5, 40, 300)), ev, k2))
            elif what < 0.8:
                d = r.choice((1000, 1000, 1000, 250, 0))    # mostly one delay: in order
                handles.append((s.timer if use_timer else s.after)(d, ev, k2))
            elif handles:
                s.cancel(handles[r.randrange(len(handles))])
        if r.random() < 0.02:
            s.stop()

    for k in range(20):
        s.schedule(r.randrange(100), ev, -k)
    t = 0
    while t < 20000:
        t += r.choice((1, 50, 999, 1000, 3000))
        s.run_until(t)
        if r.random() < 0.1:
            assert s.peek() is None or s.peek() > s.now
    n = s.pending()
    s.run(max_events=400)
    return seen, s.events, s.now, n, s.pending(), s.digest()


@pytest.mark.parametrize("seed", range(12))
def test_scheduler_timer_runs_events_exactly_as_after(seed):
    assert _timer_run(seed, True) == _timer_run(seed, False)


def test_scheduler_timer_keeps_cancelled_timeouts_out_of_the_heap():
    s = Scheduler()
    hs = [s.timer(1000, print) for _ in range(50)]
    for h in hs:
        s.cancel(h)
    assert len(s._heap) == 0 and s.pending() == 0
    assert s.peek() is None and s.run() == 0 and not s._cancelled


def test_host_port_write_request_is_the_request_frame():
    import struct
    s, hp = _host_world()
    sent = []
    hp.board.receive = lambda port, frame: sent.append(frame)
    r = random.Random(5)
    timed_out = []
    cb = lambda now, st, mt, pl: timed_out.append(st)       # noqa: E731
    for _ in range(20):
        vol, blk = r.randrange(256), r.randrange(1 << 32)
        data = bytes(r.randrange(256) for _ in range(BLOCK_SIZE))
        t1 = hp.request(wire.T_H_WRITE, struct.pack(wire.P_H_WRITE, vol, blk) + data, cb)
        t2 = hp.request_write(wire.T_H_WRITE, wire.P_H_WRITE, vol, blk, memoryview(data), cb)
        s.run_until(s.now + 20)
        assert t2 == t1 % 65535 + 1 and sent[-2][:8] == sent[-1][:8]
        assert sent[-2] == hostcodec.encode(wire.T_H_WRITE, wire.HOST_ID, 1,
                                            sent[-2][HDR_SIZE:-4], seq=t1)
        assert sent[-1] == hostcodec.encode(wire.T_H_WRITE, wire.HOST_ID, 1,
                                            sent[-2][HDR_SIZE:-4], seq=t2)
    assert hp.requests == 40 and hp.outstanding() == 40
    s.run()
    assert hp.timeouts == 40 and timed_out == [None] * 40


def test_workload_random_addresses_are_randrange_draws():
    # Workload._pick draws a random write's address with rng._randbelow(n), the draw
    # rng.randrange(n) makes
    for seed in range(5):
        a, b = random.Random(seed), random.Random(seed)
        for n in (1, 2, 3, 4, 128, 256, 1000):
            assert [a.randrange(n) for _ in range(40)] == [b._randbelow(n) for _ in range(40)]


def test_log_entry_keywords_and_dict_keep_the_field_order():
    from host_tools.check.workload import LogEntry, WorkloadLog
    e = LogEntry(**{f: k for k, f in enumerate(LogEntry.FIELDS)})
    assert list(e.to_dict()) == list(LogEntry.FIELDS)
    assert list(e.to_dict().values()) == list(range(len(LogEntry.FIELDS)))
    assert LogEntry().to_dict() == dict.fromkeys(LogEntry.FIELDS)
    log = WorkloadLog(writer=3)
    log.issue(1, 0, 0, 5, 10, bver=0)
    log.issue(2, 0, 0, 5, 20)
    log.issue(3, 0, 0, 5, 30, bver=7)
    log.issue(4, 0, 0, 5, 40, bver=2)
    log.issue(5, 0, 0, 5, 50)
    assert [e.bver for e in log] == [0, 1, 7, 2, 8] and [e.issue_seq for e in log] == [1, 2, 3, 4, 5]
    assert log.get(5).writer == 3 and log.get(5).to_dict()["complete_us"] is None


def test_scheduler_counts_events_by_handler_without_changing_the_run():
    from functools import partial

    class H:
        def tick(self, x):
            pass

    def run(count):
        s = Scheduler(trace=True, count=count)
        h = H()
        s.schedule(5, h.tick, 1)
        s.after(3, partial(h.tick, 2))
        c = s.schedule(4, h.tick, 3)
        s.cancel(c)                    # cancelled events are not counted
        s.timer(7, print, "never")
        s.cancel(s._serial - 1)
        s.schedule(9, len, "ab")
        s.run()
        return s
    on, off = run(True), run(False)
    assert on.counts == {"test_scheduler_counts_events_by_handler_without_changing_the_run.<locals>.H.tick": 2,
                         "len": 1}
    assert off.counts is None
    assert on.digest() == off.digest() and on.events == off.events == 3


# ---- round 4 (sim): the workload's inlined address draws, the checker's direct log reading ----
class _PlainRandom(random.Random):
    """A Random subclass: Workload._pick then draws through rng.randrange (the reference)."""


@pytest.mark.parametrize("seed,pairs,vols,blocks", [(0, 4, 1, 128), (1, 3, 2, 100), (2, 1, 1, 1),
                                                     (3, 5, 3, 257), (4, 2, 1, 256)])
def test_workload_inlined_address_draws_are_randrange_draws(seed, pairs, vols, blocks):
    # Workload._pick inlines rng._randbelow (getrandbits of n.bit_length() bits, redrawn while
    # >= n) for a plain random.Random: the same addresses, the same generator state after
    from host_tools.check.workload import Workload, drive_virtual

    def run(ref):
        wl = Workload("random", pairs=pairs, vols=vols, blocks=blocks, rate=None,
                      duration_us=2000000, concurrency=6, seed=seed)
        if ref:
            wl.rng = _PlainRandom(seed)
        log = drive_virtual(wl, lambda r: 1000 + r.block % 7)
        return [e.to_dict() for e in log], wl.rng.random()

    fast, ref = run(False), run(True)
    assert len(fast[0]) > 100 and fast == ref


def test_checker_reads_log_entries_as_their_dicts():
    # verdict.judge hands the checker the log's entries (no to_dict copies) and checker._load_log
    # reads a LogEntry directly: the same report and verdict as from the log's dict
    from host_tools.check import checker, verdict, payload
    from host_tools.check.workload import Workload, drive_virtual
    wl = Workload("ims", pairs=3, vols=1, blocks=64, rate=None, duration_us=300000,
                  concurrency=5, seed=9)
    log = drive_virtual(wl, lambda r: None if r.id in (400, 401) else 500 + r.id % 5,
                        until_us=250000)
    # images: each pair's volume holds the writes issued up to a cut, pair 2 missing
    imgs = {}
    for e in log:
        if e.pair != 2 and e.issue_us < 120000 + 30000 * e.pair:
            vol = imgs.setdefault(e.pair, {}).setdefault(e.vol, bytearray(64 * 512))
            vol[e.block * 512:(e.block + 1) * 512] = log.payload(e.id)
    log.get(3).writer = None           # an entry without a writer takes the log's
    d = log.to_dict()
    reps = []
    for pairs in ([0, 1, 2], [0, 1], [1]):
        a_rep, a_v = verdict.judge(log, imgs, pairs, no_image=[2], disaster_us=250000,
                                   cut_at_us=200000)
        b_rep, b_v = verdict.judge(d, imgs, pairs, no_image=[2], disaster_us=250000,
                                   cut_at_us=200000)
        assert a_rep.to_dict() == b_rep.to_dict() and a_v == b_v
        reps.append((a_rep, a_v))
    rep, v = reps[0]
    assert rep.writes_total > 50 and rep.lost_acked > 0 and rep.writes_inflight > 0
    assert not v["ok"] and v["liveness"]["no_image"] == 1
    assert checker.check(log, imgs).to_dict() == checker.check(d, imgs).to_dict()
    assert payload.decode(log.payload(5)).serial == 5

