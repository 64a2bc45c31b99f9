"""Write intents (issue #13 item 3): a block written outside the journal is sealed first, so a
power cut can neither leave it torn on the primary, nor changed but unmarked, and no resync or
failback copies a torn block. Store.x_write / x_redo (firmware/store.py, "write intent")."""
import random

import pytest

from corenet import Net, block_of
from firmware.store import Store
from firmware.wire import *  # noqa: F401,F403
from host_tools.sim.disk import FaultyDisk, RamDisk, PowerCut

OLD, MID, NEW = block_of("old"), block_of("mid"), block_of("new")
# the block writes of one marked write on a store whose block is not yet marked:
# intent data, intent header, bitmap block, volume block
MARKED_WRITE_STEPS = 4


def _store(seed=1):
    disk = FaultyDisk(RamDisk(Store.blocks_needed(1, 64, 16)), random.Random(seed))
    Store.format(disk, ROLE_PRIMARY, 1, 101, 0, 1, 64, 16)
    st = Store(disk)
    st.mount()
    return disk, st


def _remount(disk):
    disk.power_on()
    st = Store(disk)
    st.mount()
    return st


def _read(st, blk):
    buf = bytearray(BLOCK_SIZE)
    st.read_block(0, blk, buf)
    return bytes(buf)


def test_a_marked_write_costs_two_block_writes_more_than_before():
    disk, st = _store()
    st.write_block(0, 5, OLD)
    st.bm_set(0, 5)
    w0 = disk.writes
    st.x_write(0, 6, MID)                 # block 6 not yet marked: + bitmap block
    assert disk.writes - w0 == 4
    w0 = disk.writes
    st.x_write(0, 6, NEW)                 # marked already: data, header, volume
    assert disk.writes - w0 == 3
    w0 = disk.writes
    st.write_block(0, 7, OLD)             # the first other write clears the intent once
    st.write_block(0, 8, OLD)
    assert disk.writes - w0 == 3


@pytest.mark.parametrize("torn", (False, True))
@pytest.mark.parametrize("step", range(MARKED_WRITE_STEPS))
def test_a_marked_write_cut_at_any_block_write_is_whole_and_marked_after_the_boot(step, torn):
    disk, st = _store(seed=step * 2 + torn)
    st.x_write(0, 5, MID)                 # acknowledged: a whole, marked block
    st.write_block(0, 9, OLD)             # (clears the intent)
    st.bm_clear(0, 5)                     # copied since (a resync cleared the mark)
    disk.arm_power_cut(step, torn=torn)
    with pytest.raises(PowerCut):
        st.x_write(0, 5, NEW)
    st = _remount(disk)
    got = st.x_redo(bytearray(BLOCK_SIZE))
    data = _read(st, 5)
    assert data in (MID, NEW), "torn block kept"
    if data == NEW:
        # the block changed: it must be marked, or no resync copies it
        assert st.bm_test(0, 5)
    if step == 3:
        # the power failed at the volume write: the sealed copy was whole, the block is
        # rewritten from it and reported
        assert got == (0, 5, True) and data == NEW
        assert st.x_repaired == 1 and st.x_redone == 1
    if step == 0 or step == 1 and not torn:
        assert got is None and data == MID and st.x_repaired == 0   # the seal never completed
    if step == 1 and torn:
        # a header torn past its 24 meaningful bytes is whole (the rest is zeros)
        assert got is None and data == MID or got == (0, 5, True) and data == NEW
    # settled: a second boot finds nothing to redo
    st = _remount(disk)
    assert st.x_redo(bytearray(BLOCK_SIZE)) is None


def test_a_stale_intent_never_rewrites_a_block_written_since():
    # the chosen rule: any volume write outside x_write clears a live intent first
    disk, st = _store()
    st.x_write(0, 5, MID)
    st.write_block(0, 5, NEW)             # a journaled write (or a copy, an apply) since
    st = _remount(disk)
    assert st.x_redo(bytearray(BLOCK_SIZE)) is None
    assert _read(st, 5) == NEW
    # a write elsewhere clears it too: the intent (block 5) must not come back later
    st.x_write(0, 5, MID)
    st.write_block(0, 6, OLD)
    st.write_block(0, 5, NEW)
    st = _remount(disk)
    assert st.x_redo(bytearray(BLOCK_SIZE)) is None and _read(st, 5) == NEW


def _self_checked(tag):
    """A block that ends with the CRC-32 of the rest (as the workload's payloads, and many
    on-disk formats, do): every such block has the same CRC-32 (the CRC residue)."""
    import binascii
    import struct
    body = block_of(tag)[:BLOCK_SIZE - 4]
    return body + struct.pack("<I", binascii.crc32(body))


@pytest.mark.parametrize("torn", (False, True))
def test_a_new_intent_cut_after_its_data_never_redoes_the_old_one_with_the_new_data(torn):
    # found by: arcopy sim --ops failback --seed 176 --faults all (a misplaced block):
    # blocks with the same CRC-32 must not fool the seal
    a, b = _self_checked("aaa"), _self_checked("bbb")
    import binascii
    assert binascii.crc32(a) == binascii.crc32(b)
    disk, st = _store(seed=3)
    st.x_write(0, 11, a)
    disk.arm_power_cut(1, torn=torn)        # the new intent's data is written, then the cut
    with pytest.raises(PowerCut):
        st.x_write(0, 8, b)
    st = _remount(disk)
    st.x_redo(bytearray(BLOCK_SIZE))
    assert _read(st, 11) == a, "block 11 rewritten with another block's data"
    assert _read(st, 8) != b or st.bm_test(0, 8)


def test_format_leaves_no_intent_of_an_earlier_life():
    disk, st = _store()
    st.x_write(0, 5, MID)                     # seq 1: header in the second block
    st.x_write(0, 6, NEW)                     # seq 2: header in the first block
    Store.format(disk, ROLE_PRIMARY, 1, 101, 0, 1, 64, 16)
    st = _remount(disk)
    assert st.x_redo(bytearray(BLOCK_SIZE)) is None


def test_an_intent_whose_volume_write_completed_is_settled_without_a_mark():
    disk, st = _store()
    st.x_write(0, 5, MID)
    st.bm_clear(0, 5)                     # copied and joined since: no mark wanted
    st = _remount(disk)
    assert st.x_redo(bytearray(BLOCK_SIZE)) == (0, 5, False)
    assert not st.bm_test(0, 5) and st.x_repaired == 0 and _read(st, 5) == MID


# -- through the pair -------------------------------------------------------------------------

@pytest.mark.parametrize("step", range(3))       # block 5 is marked: data, header, volume
def test_a_write_torn_on_a_suspended_primary_is_repaired_and_reported_not_copied(step):
    net = Net(pairs=1, faulty=True)
    net.advance(1000000)
    p, s = net.prim(1), net.sec(1)
    assert net.command(p, C_SUSPEND) == S_OK
    assert net.write(p, 0, 5, MID) == S_OK
    assert net.write(p, 0, 6, MID) == S_OK          # the intent now names block 6
    p.disk.arm_power_cut(step, torn=True)
    p.disk.rng.seed(step)
    with pytest.raises(Exception):
        net.write(p, 0, 5, NEW)                      # never acknowledged
    net.kill(p)
    net.reboot(p)
    st = p.node.stats()
    assert _read(p.store, 5) in (MID, NEW)            # whole on the primary
    if step == 2:                                     # (block 5 is marked: no bitmap write)
        assert st["torn_repaired"] == 1 and _read(p.store, 5) == NEW
    net.advance(500000)
    assert net.command(p, C_RESUME) == S_OK
    net.advance(3000000)
    assert s.store.sb.copy_state == CS_DUPLEX
    assert _read(s.store, 5) == _read(p.store, 5), "the secondary differs from its primary"


def test_a_marked_write_before_the_join_never_comes_back_over_a_journaled_one():
    net = Net(pairs=1, faulty=True)
    net.advance(1000000)
    p, s = net.prim(1), net.sec(1)
    assert net.command(p, C_SUSPEND) == S_OK
    assert net.write(p, 0, 5, MID) == S_OK           # an intent for block 5
    assert net.command(p, C_RESUME) == S_OK
    net.advance(3000000)
    assert p.store.sb.copy_state == CS_DUPLEX
    assert net.write(p, 0, 5, NEW) == S_OK           # journaled, acknowledged, trimmed
    net.advance(2000000)
    assert p.store.j_depth() <= 2
    net.kill(p)
    net.reboot(p)
    assert _read(p.store, 5) == NEW
    assert p.node.stats()["torn_repaired"] == 0


def test_a_write_torn_on_a_failed_over_secondary_is_repaired_and_marked():
    net = Net(pairs=1, faulty=True)
    net.advance(1000000)
    p, s = net.prim(1), net.sec(1)
    assert net.write(p, 0, 5, OLD) == S_OK
    net.advance(2000000)
    net.disaster()
    net.advance(2000000)
    assert set(net.failover().values()) == {S_OK}
    assert net.write(s, 0, 6, MID) == S_OK
    s.disk.arm_power_cut(3, torn=True)               # data, header, bitmap; then the volume
    s.disk.rng.seed(3)
    with pytest.raises(Exception):
        net.write(s, 0, 5, NEW)
    net.kill(s)
    net.reboot(s)
    assert _read(s.store, 5) == NEW and s.store.bm_test(0, 5)
    assert s.node.stats()["torn_repaired"] == 1


def test_a_fenced_primary_keeps_a_write_taken_after_the_fence_across_a_reboot():
    # a fenced pair keeps its journal (records the failover did not carry); its boot used to
    # redo them over blocks written since (fence_writes off): records are redone in DUPLEX only
    net = Net(pairs=1, fence_writes=False)
    net.advance(1000000)
    p, s = net.prim(1), net.sec(1)
    net.hold(("peer", p.id))
    assert net.write(p, 0, 5, MID) == S_OK            # journaled, never shipped
    assert set(net.failover().values()) == {S_OK}
    net.release(("peer", p.id))
    net.advance(1000000)
    assert p.store.sb.copy_state == CS_SUSPENDED and p.store.sb.suspend_reason == R_PEER_FAILED_OVER
    assert p.store.j_depth() >= 1
    assert net.write(p, 0, 5, NEW) == S_OK            # taken after the fence, marked
    net.kill(p)
    net.reboot(p)
    assert _read(p.store, 5) == NEW
