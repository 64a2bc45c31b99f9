"""Tests of firmware/store.py on the simulated disks of host_tools/sim/disk.py."""
import random
import struct
import tracemalloc

import pytest
from hypothesis import given, settings, HealthCheck
from hypothesis import strategies as st

from firmware import store as store_mod
from firmware.store import (Store, StoreError, JournalFull, J_RECORD, J_CHECKPOINT, BM_BITS,
                   IDX_SIZE, SB_CRC_OFF)
from firmware.wire import (S_UNKNOWN_VOLUME, S_OUT_OF_RANGE, S_BAD_LENGTH, S_JOURNAL_FULL,
                  S_IO_ERROR, S_BAD_STATE, S_NOT_READY, BLOCK_SIZE)
from host_tools.sim.disk import RamDisk, FaultyDisk, PowerCut, DiskWriteError


def blocks_needed(nvol, vol_blocks, slots):
    return Store.blocks_needed(nvol, vol_blocks, slots)


def fresh(nvol=2, vol_blocks=64, slots=8, extra=0, role=1):
    disk = RamDisk(blocks_needed(nvol, vol_blocks, slots) + extra)
    Store.format(disk, role, 3, 4, 7, nvol, vol_blocks, slots)
    return disk


def mounted(disk, verify=False):
    s = Store(disk, verify=verify)
    s.mount()
    return s


def payload(i):
    return bytes(((i * 7 + k) & 0xFF for k in range(BLOCK_SIZE)))


def sb_gen(disk, copy):
    return struct.unpack_from("<IHHQ", disk.data, copy * BLOCK_SIZE)[3]


# ---- format / superblock ---------------------------------------------------------

def test_format_mount_round_trip():
    disk = fresh(nvol=3, vol_blocks=5000, slots=16, extra=10)
    s = mounted(disk)
    sb = s.sb
    assert (sb.role, sb.node, sb.peer, sb.group) == (1, 3, 4, 7)
    assert (sb.nvol, sb.vol_blocks, sb.journal_slots) == (3, 5000, 16)
    assert sb.bm_blocks == 2          # 5000 bits > one bitmap block
    assert (sb.copy_state, sb.mode, sb.policy, sb.incarnation) == (0, 0, 0, 0)
    assert (sb.uip_n, sb.uip_t, sb.applied_n, sb.ckpt_n, sb.t_floor) == (0, 0, 0, 0, 0)
    assert sb.next_lseq == 1 and sb.suspend_reason == 0 and sb.j_head == 0
    assert s.j_depth() == 0 and s.j_free() == 16 and list(s.j_entries()) == []
    assert [s.bm_count(v) for v in range(3)] == [0, 0, 0]
    assert sb.dev_blocks == blocks_needed(3, 5000, 16)


def test_format_rejects_small_device_and_bad_args():
    disk = RamDisk(50)
    with pytest.raises(StoreError) as e:
        Store.format(disk, 1, 1, 2, 0, 1, 100, 8)
    assert e.value.code == S_OUT_OF_RANGE
    with pytest.raises(StoreError):
        Store.format(RamDisk(1000), 1, 1, 2, 0, 0, 10, 8)      # no volume
    with pytest.raises(StoreError):
        Store.format(RamDisk(1000), 1, 1, 2, 0, 1, 10, 1)      # 1-slot journal


def test_mount_unformatted_and_not_mounted():
    with pytest.raises(StoreError) as e:
        Store(RamDisk(100)).mount()
    assert e.value.code == S_IO_ERROR
    s = Store(RamDisk(100))
    with pytest.raises(StoreError) as e:
        s.j_depth()
    assert e.value.code == S_NOT_READY


def test_reformat_forgets_old_journal_and_bitmap():
    disk = fresh(slots=4)
    s = mounted(disk)
    s.j_append_record(1, 0, 1, 10, payload(1))
    s.bm_set(0, 3)
    s.commit(copy_state=2)
    s.commit(copy_state=2)
    Store.format(disk, 2, 3, 4, 7, 2, 64, 4)
    s = mounted(disk)
    assert list(s.j_entries()) == [] and s.bm_count(0) == 0
    assert s.sb.role == 2 and s.sb.copy_state == 0


def test_commit_alternates_and_newest_wins():
    disk = fresh()
    s = mounted(disk)
    g0 = s.sb.generation
    gens = []
    for i in range(1, 6):
        s.commit(uip_n=i, uip_t=(1 << 50) + i, t_floor=(1 << 63) + i)
        assert s.sb.generation == g0 + i
        gens.append((sb_gen(disk, 0), sb_gen(disk, 1)))
    # each commit wrote the other copy
    for (a0, a1), (b0, b1) in zip(gens, gens[1:]):
        assert (a0 != b0) != (a1 != b1)
    s2 = mounted(disk)
    assert s2.sb.as_dict() == s.sb.as_dict()
    assert s2.sb.uip_t == (1 << 50) + 5 and s2.sb.t_floor == (1 << 63) + 5
    # corrupt the newest copy: the previous state wins
    newest = 0 if sb_gen(disk, 0) > sb_gen(disk, 1) else 1
    disk.data[newest * BLOCK_SIZE + 40] ^= 0x01
    s3 = mounted(disk)
    assert s3.sb.uip_n == 4 and s3.sb.generation == s.sb.generation - 1
    # and the next commit overwrites the damaged copy, not the good one
    s3.commit(applied_n=9)
    s4 = mounted(disk)
    assert s4.sb.applied_n == 9 and s4.sb.uip_n == 4
    # both copies damaged: mount refuses
    disk.data[0 * BLOCK_SIZE + SB_CRC_OFF] ^= 0xFF
    disk.data[1 * BLOCK_SIZE + SB_CRC_OFF] ^= 0xFF
    with pytest.raises(StoreError):
        mounted(disk)


def test_commit_validation():
    s = mounted(fresh())
    g = s.sb.generation
    with pytest.raises(StoreError) as e:
        s.commit(bogus=1)
    assert e.value.code == S_BAD_STATE
    with pytest.raises(StoreError):
        s.commit(nvol=5)
    with pytest.raises(StoreError):
        s.commit(j_head=5)
    with pytest.raises(StoreError) as e:
        s.commit(role=256)
    assert e.value.code == S_OUT_OF_RANGE
    with pytest.raises(StoreError):
        s.commit(uip_n=-1)
    with pytest.raises(StoreError):
        s.commit(uip_t=1 << 64)
    assert s.sb.generation == g and s.sb.role == 1
    s.commit(role=2, peer=9)
    assert (s.sb.role, s.sb.peer) == (2, 9)


@pytest.mark.parametrize("seed", range(12))
def test_torn_superblock_write_falls_back(seed):
    inner = fresh()
    s = mounted(inner)
    s.commit(ckpt_n=1, ckpt_t=111)
    fd = FaultyDisk(inner, random.Random(seed))
    s = mounted(fd)
    fd.arm_power_cut(0, torn=True)
    with pytest.raises(PowerCut):
        s.commit(ckpt_n=2, ckpt_t=222)
    s2 = mounted(inner)
    assert (s2.sb.ckpt_n, s2.sb.ckpt_t) in ((1, 111), (2, 222))
    if fd.last_cut_prefix < SB_CRC_OFF + 4:
        assert (s2.sb.ckpt_n, s2.sb.ckpt_t) == (1, 111)
    s2.commit(ckpt_n=3)
    assert mounted(inner).sb.ckpt_n == 3


# ---- volumes ----------------------------------------------------------------------

def test_volume_io_and_range_errors():
    disk = fresh(nvol=2, vol_blocks=10)
    s = mounted(disk)
    s.write_block(1, 9, payload(5))
    s.write_block(0, 0, payload(6))
    buf = bytearray(BLOCK_SIZE)
    s.read_block(1, 9, buf)
    assert buf == payload(5)
    s.read_block(0, 0, memoryview(buf))
    assert buf == payload(6)
    for vol in (-1, 2, 255, "x"):
        with pytest.raises(StoreError) as e:
            s.write_block(vol, 0, payload(0))
        assert e.value.code == S_UNKNOWN_VOLUME
        with pytest.raises(StoreError) as e:
            s.read_block(vol, 0, buf)
        assert e.value.code == S_UNKNOWN_VOLUME
    for blk in (-1, 10, 1 << 40):
        with pytest.raises(StoreError) as e:
            s.read_block(0, blk, buf)
        assert e.value.code == S_OUT_OF_RANGE
        with pytest.raises(StoreError) as e:
            s.bm_set(0, blk)
        assert e.value.code == S_OUT_OF_RANGE
    with pytest.raises(StoreError) as e:
        s.write_block(0, 0, b"short")
    assert e.value.code == S_BAD_LENGTH
    with pytest.raises(StoreError) as e:
        s.read_block(0, 0, bytearray(100))
    assert e.value.code == S_BAD_LENGTH
    # the volumes sit apart from each other and from the journal
    s.read_block(1, 9, buf)
    assert buf == payload(5)


# ---- journal ----------------------------------------------------------------------

def test_journal_append_entries_read_trim():
    disk = fresh(slots=8)
    s = mounted(disk)
    j0 = s.j_append_record(10, 0, 3, 1000, payload(1))
    j1 = s.j_append_checkpoint(1, 1500)
    j2 = s.j_append_record(11, 1, 63, (1 << 40) + 1, memoryview(bytearray(payload(2))))
    assert (j0, j1, j2) == (0, 1, 2)
    want = [(0, J_RECORD, 10, 0, 3, 1000), (1, J_CHECKPOINT, 1, 0, 0, 1500),
            (2, J_RECORD, 11, 1, 63, (1 << 40) + 1)]
    assert list(s.j_entries()) == want
    assert s.j_depth() == 3 and s.j_free() == 5
    buf = bytearray(BLOCK_SIZE)
    s.j_read_data(2, buf)
    assert buf == payload(2)
    s.j_read_data(0, buf)
    assert buf == payload(1)
    with pytest.raises(StoreError) as e:
        s.j_read_data(1, buf)                        # a checkpoint has no data
    assert e.value.code == S_BAD_STATE
    with pytest.raises(StoreError) as e:
        s.j_read_data(3, buf)
    assert e.value.code == S_OUT_OF_RANGE
    assert list(mounted(disk).j_entries()) == want
    s.j_trim(2)
    assert list(s.j_entries()) == want[2:] and s.j_depth() == 1
    with pytest.raises(StoreError):
        s.j_read_data(0, buf)
    s.j_trim(1)                                      # backwards: no effect
    assert s.j_depth() == 1
    s.j_trim(100)                                    # beyond the tail: empties it
    assert s.j_depth() == 0 and s.j_next() == 3
    # trims are lazy: without a commit the entries come back after a reboot
    assert [e[0] for e in mounted(disk).j_entries()] == [0, 1, 2]
    s.commit()
    s2 = mounted(disk)
    assert list(s2.j_entries()) == [] and s2.j_next() == 3
    assert s2.j_append_checkpoint(2, 1) == 3


def test_journal_bad_input():
    s = mounted(fresh())
    with pytest.raises(StoreError) as e:
        s.j_append_record(1, 9, 0, 0, payload(0))
    assert e.value.code == S_UNKNOWN_VOLUME
    with pytest.raises(StoreError) as e:
        s.j_append_record(1, 0, 64, 0, payload(0))
    assert e.value.code == S_OUT_OF_RANGE
    with pytest.raises(StoreError) as e:
        s.j_append_record(1, 0, 0, 0, payload(0)[:100])
    assert e.value.code == S_BAD_LENGTH
    for lseq, t in ((-1, 0), (1 << 32, 0), (0, -1), (0, 1 << 64)):
        with pytest.raises(StoreError) as e:
            s.j_append_record(lseq, 0, 0, t, payload(0))
        assert e.value.code == S_OUT_OF_RANGE
    with pytest.raises(StoreError):
        s.j_append_checkpoint(1 << 32, 0)
    assert s.j_depth() == 0


def test_journal_full_and_wraparound():
    disk = fresh(slots=5)
    s = mounted(disk)
    for i in range(5):
        assert s.j_append_record(i, 0, i, i, payload(i)) == i
    with pytest.raises(JournalFull) as e:
        s.j_append_checkpoint(1, 1)
    assert isinstance(e.value, StoreError) and e.value.code == S_JOURNAL_FULL
    assert s.j_free() == 0
    # many laps with a trailing trim, remount at every step
    nxt = 5
    for lap in range(40):
        s.j_trim(nxt - 2)
        jseq = s.j_append_record(nxt, lap % 2, nxt % 64, 1000 + nxt, payload(nxt))
        assert jseq == nxt
        nxt += 1
        s2 = mounted(disk)
        got = [e[0] for e in s2.j_entries()]
        assert got and got[-1] == nxt - 1
        assert got == list(range(got[0], nxt))
        assert s2.j_depth() <= 5
        live = [e for e in s.j_entries()]
        assert [e for e in s2.j_entries() if e[0] >= live[0][0]] == live
        buf = bytearray(BLOCK_SIZE)
        s2.j_read_data(nxt - 1, buf)
        assert buf == payload(nxt - 1)
    # head commits happen about once per lap, not per append
    assert 0 < s.head_commits <= 40 // 2
    with pytest.raises(JournalFull):
        for i in range(10):
            s.j_append_checkpoint(i, i)


def test_journal_detects_corrupt_data_and_torn_header():
    disk = fresh(slots=6)
    s = mounted(disk)
    for i in range(4):
        s.j_append_record(i, 0, i, i, payload(i))
    # damage record 1's data block: mount keeps the entry, reading it fails loudly
    data_blk = s.sb.j_start + 2 * 1
    disk.data[data_blk * BLOCK_SIZE + 100] ^= 0x40
    s2 = mounted(disk)
    assert [e[0] for e in s2.j_entries()] == [0, 1, 2, 3]
    with pytest.raises(StoreError) as e:
        s2.j_read_data(1, bytearray(BLOCK_SIZE))
    assert e.value.code == S_IO_ERROR
    # damage record 2's header: the live run ends before it
    hdr_blk = s.sb.j_start + 2 * 2 + 1
    disk.data[hdr_blk * BLOCK_SIZE + 20] ^= 0x01
    s3 = mounted(disk)
    assert [e[0] for e in s3.j_entries()] == [0, 1]
    assert s3.j_append_checkpoint(5, 5) == 2


# ---- bitmaps ----------------------------------------------------------------------

def test_bitmap_durable_across_remount():
    disk = fresh(nvol=2, vol_blocks=9000, slots=4)   # 3 bitmap blocks per volume
    s = mounted(disk)
    bits0 = [0, 1, 7, 8, 4063, 4064, 4065, 8999]
    for b in bits0:
        s.bm_set(0, b)
    s.bm_set(0, 7)                                  # idempotent
    s.bm_set(1, 5000)
    assert s.bm_count(0) == len(bits0) and s.bm_count(1) == 1
    assert list(s.bm_iter(0)) == bits0
    assert s.bm_test(0, 4064) and not s.bm_test(0, 4066) and not s.bm_test(1, 0)
    s2 = mounted(disk)
    assert list(s2.bm_iter(0)) == bits0 and list(s2.bm_iter(1)) == [5000]
    assert s2.bm_count(0) == len(bits0)
    s2.bm_clear(0, 4064)
    s2.bm_clear(0, 4064)
    s2.bm_clear(0, 3)                               # not set: no-op
    s2.bm_clear_all(1)
    s3 = mounted(disk)
    assert list(s3.bm_iter(0)) == [b for b in bits0 if b != 4064]
    assert s3.bm_count(1) == 0 and list(s3.bm_iter(1)) == []
    s3.bm_clear_all(0)
    assert mounted(disk).bm_count(0) == 0
    assert s3.bm_repaired == 0


def test_bitmap_torn_block_is_conservative():
    disk = fresh(nvol=1, vol_blocks=5000, slots=4)
    s = mounted(disk)
    s.bm_set(0, 4100)
    disk.data[s.sb.bm_start * BLOCK_SIZE + 3] ^= 0x10  # damage the first bitmap block
    s2 = mounted(disk)
    assert s2.bm_repaired == 1
    assert s2.bm_count(0) == BM_BITS + 1            # whole first block set, second intact
    got = list(s2.bm_iter(0))
    assert got == list(range(BM_BITS)) + [4100]
    s3 = mounted(disk)                              # the repair was written back
    assert s3.bm_repaired == 0 and s3.bm_count(0) == BM_BITS + 1
    # a damaged last (partial) block only sets bits below vol_blocks
    disk.data[(s.sb.bm_start + 1) * BLOCK_SIZE] ^= 0x01
    s4 = mounted(disk)
    assert s4.bm_count(0) == 5000 and list(s4.bm_iter(0)) == list(range(5000))


# ---- device failures ----------------------------------------------------------------

def test_power_cut_propagates_unchanged():
    fd = FaultyDisk(fresh(), random.Random(1))
    s = mounted(fd)
    fd.arm_power_cut(0)
    with pytest.raises(PowerCut):
        s.j_append_record(1, 0, 0, 0, payload(0))
    with pytest.raises(PowerCut):                   # the device stays off
        s.read_block(0, 0, bytearray(BLOCK_SIZE))
    fd.power_on()
    assert mounted(fd).j_depth() == 0


def test_write_failures_detected():
    inner = fresh()
    fd = FaultyDisk(inner, random.Random(2))
    s = mounted(fd)
    fd.arm_write_failure(0, mode="status")
    with pytest.raises(StoreError) as e:
        s.write_block(0, 1, payload(1))
    assert e.value.code == S_IO_ERROR
    fd.arm_write_failure(0, mode="raise")
    with pytest.raises(DiskWriteError):
        s.write_block(0, 1, payload(1))
    # a silent drop goes unnoticed without verify ...
    fd.arm_write_failure(0, mode="silent")
    s.write_block(0, 1, payload(1))
    # ... and is caught with verify=True
    sv = mounted(fd, verify=True)
    fd.arm_write_failure(0, mode="silent")
    with pytest.raises(StoreError) as e:
        sv.write_block(0, 2, payload(2))
    assert e.value.code == S_IO_ERROR
    fd.arm_write_failure(1, mode="silent")          # the journal header write
    with pytest.raises(StoreError):
        sv.j_append_record(1, 0, 0, 0, payload(3))
    assert sv.j_depth() == 0
    g = sv.sb.generation
    fd.arm_write_failure(0, mode="silent")
    with pytest.raises(StoreError):
        sv.commit(uip_n=5)
    assert sv.sb.generation == g and sv.sb.uip_n == 0
    sv.commit(uip_n=6)
    assert mounted(inner).sb.uip_n == 6
    sv.write_block(0, 2, payload(2))
    buf = bytearray(BLOCK_SIZE)
    sv.read_block(0, 2, buf)
    assert buf == payload(2)


# ---- power cut at every block write of random scenarios ---------------------------------

NVOL, VOLB, SLOTS = 2, 40, 6


class Model:
    """What the test knows from the calls that returned."""

    def __init__(self, s):
        self.entries = {}           # jseq -> (entry tuple, data or None)
        self.head = s.j_first()
        self.tail = s.j_next()
        self.persisted_lb = s.sb.j_head
        self.sb = s.sb.as_dict()
        self.bits = {}              # (vol, blk) -> bool, as of the last returned op
        self.pending = None         # the op in flight when the power went


def run_op(s, m, op):
    kind = op[0]
    if kind == "rec":
        _, lseq, vol, blk, t, seed = op
        j = s.j_next()
        data = payload(seed)
        m.pending = ("rec", j, (j, J_RECORD, lseq, vol, blk, t), data)
        try:
            got = s.j_append_record(lseq, vol, blk, t, data)
        except JournalFull:
            m.pending = None
            return
        assert got == j
        m.entries[j] = ((j, J_RECORD, lseq, vol, blk, t), data)
    elif kind == "ckpt":
        _, n, t = op
        j = s.j_next()
        m.pending = ("ckpt", j, (j, J_CHECKPOINT, n, 0, 0, t), None)
        try:
            got = s.j_append_checkpoint(n, t)
        except JournalFull:
            m.pending = None
            return
        assert got == j
        m.entries[j] = ((j, J_CHECKPOINT, n, 0, 0, t), None)
    elif kind == "trim":
        upto = s.j_first() + op[1]
        m.pending = None
        s.j_trim(upto)
    elif kind == "commit":
        changes = op[1]
        m.pending = ("commit", changes)
        s.commit(**changes)
    elif kind in ("bset", "bclr"):
        _, vol, blk = op
        m.pending = (kind, vol, blk)
        if kind == "bset":
            s.bm_set(vol, blk)
        else:
            s.bm_clear(vol, blk)
        m.bits[(vol, blk)] = kind == "bset"
    m.pending = None
    m.head = s.j_first()
    m.tail = s.j_next()
    m.persisted_lb = s.sb.j_head
    m.sb = s.sb.as_dict()


def check_recovered(s2, m, s1):
    entries = list(s2.j_entries())
    jseqs = [e[0] for e in entries]
    first, nxt = s2.j_first(), s2.j_next()
    assert jseqs == list(range(first, nxt)), "jseq not consecutive"
    assert m.persisted_lb <= first <= m.head
    pend = m.pending if m.pending and m.pending[0] in ("rec", "ckpt") else None
    if pend is not None and nxt == m.tail + 1:
        assert pend[1] == m.tail
    else:
        assert nxt == m.tail, (nxt, m.tail)
    buf = bytearray(BLOCK_SIZE)
    for e in entries:
        if e[0] in m.entries:
            want, data = m.entries[e[0]]
        else:
            assert pend is not None and e[0] == pend[1], "invented entry %r" % (e,)
            want, data = pend[2], pend[3]
        assert e == want
        if data is not None:
            s2.j_read_data(e[0], buf)
            assert buf == data
    for j in range(m.head, m.tail):
        assert j in jseqs, "lost live entry %d" % j
    # the index is rebuilt identically for the slots both stores hold live
    for j in range(max(first, s1._head), min(nxt, s1._tail)):
        off = (j % SLOTS) * IDX_SIZE
        assert s2._idx[off:off + IDX_SIZE] == s1._idx[off:off + IDX_SIZE]
    # superblock: the last committed state, or the one in flight
    got = s2.sb.as_dict()
    got_cmp = dict(got)
    want_cmp = dict(m.sb)
    for d in (got_cmp, want_cmp):
        d.pop("generation")
        d.pop("j_head")
    if m.pending and m.pending[0] == "commit" and got_cmp != want_cmp:
        want_cmp.update(m.pending[1])
    assert got_cmp == want_cmp
    assert got["generation"] >= m.sb["generation"]
    # bitmaps: every bit whose last returned op set it is set; cleared ones stay
    # clear unless the block in flight was torn (then conservatively all set)
    torn_bm = s2.bm_repaired > 0
    if torn_bm:
        assert m.pending and m.pending[0] in ("bset", "bclr")
    for (vol, blk), val in m.bits.items():
        if m.pending and m.pending[0] in ("bset", "bclr") and m.pending[1:] == (vol, blk):
            continue
        if val:
            assert s2.bm_test(vol, blk)
        elif not torn_bm:
            assert not s2.bm_test(vol, blk)


def play(disk_img, ops, cut_at=None, torn=False, seed=0):
    inner = disk_img.clone()
    fd = FaultyDisk(inner, random.Random(seed))
    s = mounted(fd)
    m = Model(s)
    start = fd.writes
    if cut_at is not None:
        fd.arm_power_cut(cut_at, torn=torn)
    cut = False
    try:
        for op in ops:
            run_op(s, m, op)
    except PowerCut:
        cut = True
    return inner, fd, s, m, cut, fd.writes - start


op_st = st.one_of(
    st.tuples(st.just("rec"), st.integers(0, 2**32 - 1), st.integers(0, NVOL - 1),
              st.integers(0, VOLB - 1), st.integers(0, 2**64 - 1), st.integers(0, 255)),
    st.tuples(st.just("ckpt"), st.integers(0, 2**32 - 1), st.integers(0, 2**64 - 1)),
    st.tuples(st.just("trim"), st.integers(0, 4)),
    st.tuples(st.just("commit"), st.fixed_dictionaries(
        {}, optional={"uip_n": st.integers(0, 2**32 - 1), "uip_t": st.integers(0, 2**64 - 1),
                      "copy_state": st.integers(0, 5), "suspend_reason": st.integers(0, 2**32 - 1)})),
    st.tuples(st.sampled_from(["bset", "bclr"]), st.integers(0, NVOL - 1), st.integers(0, VOLB - 1)),
)

_BASE = None


def base_image():
    global _BASE
    if _BASE is None:
        _BASE = fresh(nvol=NVOL, vol_blocks=VOLB, slots=SLOTS)
    return _BASE


def crash_everywhere(ops, seed=0):
    img = base_image()
    _, _, s_clean, m_clean, cut, total = play(img, ops)
    assert not cut
    # a clean reboot recovers exactly the live state (trims may reappear)
    for k in range(total + 1):
        for torn in (False, True):
            inner, fd, s1, m, cut, _ = play(img, ops, cut_at=k, torn=torn, seed=seed * 1000 + k)
            assert cut == (k < total)
            s2 = mounted(inner)
            check_recovered(s2, m, s1)
            # the recovered store keeps working
            j = s2.j_next()
            if s2.j_free() == 0:
                s2.j_trim(j)
            assert s2.j_append_checkpoint(77, 77) == j
            s3 = mounted(inner)
            assert s3.j_next() == j + 1 and s3.j_entry(j)[1:] == (J_CHECKPOINT, 77, 0, 0, 77)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(op_st, min_size=4, max_size=40), st.integers(0, 1000))
def test_power_cut_at_every_write_random(ops, seed):
    crash_everywhere(ops, seed)


def test_power_cut_at_every_write_laps():
    # a fixed scenario that laps the 6-slot ring several times with lagging trims,
    # so that appends must persist the head before reusing slots
    ops = []
    for i in range(30):
        ops.append(("rec", i, i % NVOL, i % VOLB, (1 << 40) + i, i))
        if i % 3 == 2:
            ops.append(("ckpt", i // 3, (1 << 40) + i))
        if i % 2:
            ops.append(("trim", 2))
        if i % 7 == 6:
            ops.append(("commit", {"ckpt_n": i}))
        if i % 5 == 0:
            ops.append(("bset", i % NVOL, i % VOLB))
        if i % 10 == 9:
            ops.append(("bclr", (i - 9) % NVOL, (i - 9) % VOLB))
    crash_everywhere(ops, seed=99)


# ---- memory -----------------------------------------------------------------------

def test_index_memory_is_compact():
    def mount_bytes(slots):
        disk = fresh(nvol=1, vol_blocks=16, slots=slots)
        s = mounted(disk)
        for i in range(slots):
            s.j_append_record(i, 0, i % 16, (1 << 40) + i, payload(i & 0xFF))
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            s2 = mounted(disk)
            after = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        assert s2.j_depth() == slots
        return after - before
    # the slope over the slot count: fixed buffers (bitmap, scratch, intent, image) drop out
    per_slot = (mount_bytes(2000) - mount_bytes(8)) / (2000 - 8)
    # one 16-byte index record per slot
    assert per_slot < 17, per_slot
    assert IDX_SIZE == 16


def test_a_time_beyond_48_bits_is_read_back_from_the_header_block():
    # the RAM index keeps t in 48 bits; a larger t (no clock gets there) stays exact
    disk = fresh(nvol=1, vol_blocks=16, slots=8)
    s = mounted(disk)
    big = (1 << 63) + 12345
    edge = (0xFFFF << 32) - 1               # the largest t the index holds itself
    j1 = s.j_append_record(1, 0, 3, big, payload(1))
    j2 = s.j_append_checkpoint(7, edge)
    j3 = s.j_append_checkpoint(8, 1 << 64 - 1)
    for st_ in (s, mounted(disk)):
        assert [e[5] for e in st_.j_entries()] == [big, edge, 1 << 64 - 1]
        buf = bytearray(512)
        st_.j_read_data(j1, buf)
        assert bytes(buf) == payload(1)
    assert (j1, j2, j3) == (0, 1, 2)


def test_a_record_whose_header_block_rots_is_an_io_error_when_read():
    # the data CRC now comes from the header block: a damaged header is caught
    disk = fresh(nvol=1, vol_blocks=16, slots=8)
    s = mounted(disk)
    j = s.j_append_record(1, 0, 3, 5, payload(1))
    hdr = s.sb.j_start + 2 * (j % 8) + 1
    disk.data[hdr * BLOCK_SIZE + 20] ^= 0x40
    with pytest.raises(StoreError) as e:
        s.j_read_data(j, bytearray(512))
    assert e.value.code == S_IO_ERROR


def test_module_constants():
    assert J_RECORD != J_CHECKPOINT
    assert issubclass(JournalFull, StoreError)
    assert store_mod.BM_BITS == 4064


# ---- the simulated disks themselves ---------------------------------------------------

def test_ramdisk_image_file_round_trip(tmp_path):
    disk = fresh(slots=4)
    s = mounted(disk)
    s.j_append_record(5, 1, 2, 3, payload(9))
    s.bm_set(1, 7)
    path = tmp_path / "board.img"
    disk.to_file(str(path))
    back = RamDisk.from_file(str(path))
    assert back.nblocks == disk.nblocks and back.data == disk.data
    s2 = mounted(back)
    assert list(s2.j_entries()) == [(0, J_RECORD, 5, 1, 2, 3)] and s2.bm_test(1, 7)
    with pytest.raises(ValueError):
        disk.readblocks(disk.nblocks, bytearray(BLOCK_SIZE))
    with pytest.raises(ValueError):
        disk.writeblocks(0, b"x" * 100)


def test_faulty_disk_is_deterministic_and_counts():
    def run(seed):
        inner = RamDisk(8)
        fd = FaultyDisk(inner, random.Random(seed))
        fd.writeblocks(0, b"\x01" * BLOCK_SIZE * 2)       # two block writes
        fd.readblocks(0, bytearray(BLOCK_SIZE * 2))
        assert (fd.writes, fd.reads, fd.write_calls, fd.read_calls) == (2, 2, 1, 1)
        fd.arm_power_cut(1, torn=True)
        with pytest.raises(PowerCut):
            fd.writeblocks(2, b"\x02" * BLOCK_SIZE * 3)   # block 2 written, block 3 torn
        assert fd.dead and fd.last_cut_block == 3
        with pytest.raises(PowerCut):
            fd.ioctl(4, 0)
        fd.power_on()
        assert fd.ioctl(4, 0) == 8
        return bytes(inner.data), fd.last_cut_prefix
    a, b = run(5), run(5)
    assert a == b
    img, k = a
    assert img[2 * BLOCK_SIZE:3 * BLOCK_SIZE] == b"\x02" * BLOCK_SIZE
    blk3 = img[3 * BLOCK_SIZE:4 * BLOCK_SIZE]
    assert blk3 == b"\x02" * k + b"\x00" * (BLOCK_SIZE - k)
    assert img[4 * BLOCK_SIZE:] == bytes(4 * BLOCK_SIZE)
    # a clean cut writes nothing of the victim
    inner = RamDisk(4)
    fd = FaultyDisk(inner, random.Random(0))
    fd.arm_power_cut(0)
    with pytest.raises(PowerCut):
        fd.writeblocks(1, b"\x03" * BLOCK_SIZE)
    assert inner.data == bytes(4 * BLOCK_SIZE)


# ---- one header buffer for the journal, the write intent and the preserved image ----------

def test_header_blocks_keep_their_zero_tails_with_one_shared_header_buffer():
    """The three header kinds are built in one 512-byte buffer (heap diet): each on-card header
    block still holds only its own fields, the rest of the block zero, whatever was built in the
    buffer before it."""
    disk = RamDisk(Store.blocks_needed(1, 16, 4, 16))
    Store.format(disk, 2, 3, 4, 7, 1, 16, 4, img_slots=16)
    st = mounted(disk)
    assert st._xbuf is st._hbuf and st._ihbuf is st._hbuf
    st.j_append_record(1, 0, 2, 1 << 40, payload(1))      # journal header: 38 bytes
    st.x_write(0, 3, payload(2))                          # intent header: 24 bytes
    st.img_start(1, 5)
    st.j_append_record(2, 0, 4, (1 << 40) + 1, payload(3))
    assert st.img_write(0, 5, payload(4), bytearray(BLOCK_SIZE))   # image header: 24 bytes
    st.j_append_record(3, 0, 6, (1 << 40) + 2, payload(5))
    st.x_write(0, 7, payload(6))
    st.write_block(0, 8, payload(7))                      # clears the live intent
    sb = st.sb

    def block(n):
        return bytes(disk.data[n * BLOCK_SIZE:(n + 1) * BLOCK_SIZE])

    for s in range(3):                                    # journal headers: bytes 38.. zero
        b = block(sb.j_start + 2 * s + 1)
        assert b[:4] != bytes(4) and b[38:] == bytes(BLOCK_SIZE - 38)
    for k in (0, 1):                                      # intent blocks: one cleared, one data
        b = block(sb.x_start + k)
        assert b in (bytes(BLOCK_SIZE), payload(6))
    b = block(sb.img_start + 1)                           # the image slot's header
    assert b[:4] != bytes(4) and b[24:] == bytes(BLOCK_SIZE - 24)
    st2 = mounted(disk)                                   # and the store reads them all back
    assert st2.j_depth() == 3 and st2.img_used() == 1 and st2.x_redo(bytearray(BLOCK_SIZE)) is None


def _commit_before(s, **changes):
    """Store.commit as it was before the speed work (every field read back from sb, checked
    and published): the reference the faster one must match."""
    if s._idx is None:
        raise StoreError(S_NOT_READY, "store is not mounted")
    sb = s.sb
    for name in changes:
        if name not in store_mod._SB_FIELDS:
            raise StoreError(S_BAD_STATE, "unknown superblock field %r" % (name,))
        if name in store_mod._SB_FIXED:
            raise StoreError(S_BAD_STATE, "superblock field %r is not changeable" % (name,))
    values = []
    for i, name in enumerate(store_mod._SB_FIELDS):
        if name == "j_head":
            v = s._head
        elif name in changes:
            v = changes[name]
        else:
            v = getattr(sb, name)
        if not isinstance(v, int) or v < 0 or v > store_mod._max_of(store_mod._SB_TYPES[i]):
            raise StoreError(S_OUT_OF_RANGE, "superblock field %s=%r out of range" % (name, v))
        values.append(v)
    gen = sb.generation + 1
    other = s._cur ^ 1
    s._mv[SB_CRC_OFF + 4:] = store_mod._ZERO_MV[SB_CRC_OFF + 4:]
    store_mod._pack_sb(s._buf, gen, values)
    s._wr(other, s._buf)
    s._cur = other
    sb.generation = gen
    for i, name in enumerate(store_mod._SB_FIELDS):
        setattr(sb, name, values[i])


def _random_changes(rng):
    names = list(store_mod._SB_FIELDS) + ["bogus", "generation"]
    changes = {}
    for _ in range(rng.choice((0, 1, 1, 2, 3, 4, 8))):
        name = rng.choice(names)
        if name in store_mod._SB_FIELDS and rng.random() < 0.8:
            name = rng.choice([n for n in store_mod._SB_FIELDS if n not in store_mod._SB_FIXED])
        top = store_mod._max_of(store_mod._SB_TYPES[store_mod._SB_FIELDS.index(name)]) \
            if name in store_mod._SB_FIELDS else 0xFF
        changes[name] = rng.choice((0, 1, rng.randrange(top + 1), top, top, top + 1, -1, True,
                                    False, 1.0, None, "1", 1 << 70)
                                   if rng.random() < 0.3 else (rng.randrange(top + 1),))
    return changes


@pytest.mark.parametrize("seed", range(6))
def test_commit_matches_the_reference_on_random_change_sets(seed):
    """The faster commit (values kept, only changed fields checked and published) gives the
    same errors, the same disk and the same superblock as the one it replaced, whatever the
    change set (unknown or fixed names, values out of range or not ints, several bad ones)."""
    rng = random.Random(seed)
    disks = [fresh(slots=6), fresh(slots=6)]
    stores = [mounted(d) for d in disks]
    ref = stores[1]
    ref.commit = lambda **changes: _commit_before(ref, **changes)   # its head commits too
    for step in range(400):
        if rng.random() < 0.3:
            # move the journal head (a commit persists it) and wrap the ring
            trim = stores[0].j_free() == 0 or rng.random() < 0.5
            keep = rng.randrange(stores[0].j_depth() + 1)
            for s in stores:
                if trim:
                    s.j_trim(s.j_next() - keep)
                if s.j_free():
                    s.j_append_checkpoint(step, step)
        changes = _random_changes(rng)
        got = []
        for s in stores:
            try:
                s.commit(**changes)
                got.append(None)
            except StoreError as e:
                got.append((type(e), e.code, str(e)))
        assert got[0] == got[1], (step, changes)
        assert disks[0].data == disks[1].data, (step, changes)
        a, b = stores[0].sb.as_dict(), stores[1].sb.as_dict()
        assert a == b and [type(v) for v in a.values()] == [type(v) for v in b.values()], (step, changes)
        assert stores[0]._cur == stores[1]._cur
    # and what was published is what a mount reads back
    again = mounted(disks[0])
    assert again.sb.as_dict() == stores[0].sb.as_dict()
    stores[0].commit(uip_n=1)
    assert mounted(disks[0]).sb.as_dict() == stores[0].sb.as_dict()
