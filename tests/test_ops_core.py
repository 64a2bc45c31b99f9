"""Day-two operations in the replication core: initial copy, suspend/resume with the
change bitmap, auto-suspend on a full journal, pacing, failback (issue #8).

Driven through tests/corenet.py (real Node objects, real codec and deframers, RAM disks).
Every test ends by comparing the volumes of both sides (or the recovered image)."""
from corenet import Net, block_of
from firmware.wire import (BLOCK_SIZE, CS_DUPLEX, CS_PENDING, CS_RESIGNED, CS_SUSPENDED,
                           C_DIRTY_LIST, C_FAILBACK, C_FAILOVER, C_MARK_DIRTY, C_RESUME,
                           C_START_COPY, C_STOP_COPY, C_SUSPEND, ROLE_PRIMARY, ROLE_SECONDARY,
                           R_JOURNAL_FULL, R_OPERATOR, S_BAD_COMMAND, S_BAD_STATE, S_WRONG_ROLE,
                           S_JOURNAL_FULL, S_OK, S_OUT_OF_RANGE, S_READ_ONLY, S_UNKNOWN_VOLUME,
                           T_H_COMMAND, T_H_WRITE)
from firmware import codec
from protocol import hostcodec

FIELDS = codec.STATUS_FIELDS


def st(net, board):
    return dict(zip(FIELDS, net.status(board)))


def volume(board, vol=0):
    buf = bytearray(BLOCK_SIZE)
    out = []
    for b in range(board.store.sb.vol_blocks):
        board.store.read_block(vol, b, buf)
        out.append(bytes(buf))
    return out


def wait_state(net, board, state, limit_us=20000000):
    waited = 0
    while board.store.sb.copy_state != state and waited < limit_us:
        net.advance(50000)
        waited += 50000
    assert board.store.sb.copy_state == state, (board.id, board.store.sb.copy_state, state)


def quiesce(net, us=3000000):
    """Let every journal drain and a few rounds release what was written."""
    net.advance(us)


def assert_mirrored(net, pair):
    assert volume(net.prim(pair)) == volume(net.sec(pair))


def copy_records_sent(board):
    return board.node.role.copied


# -- initial copy ------------------------------------------------------------------------

def test_initial_copy_moves_every_written_block_then_joins_and_counts():
    net = Net(pairs=2, autostart=False)
    net.advance(1000000)
    p1 = net.prim(1)
    # a volume with existing data, written before the pair exists (simplex marks them)
    for b in (3, 4, 9, 9, 40):
        assert net.write(p1, 0, b, block_of("old%d" % b)) == S_OK
    assert st(net, p1)["dirty_blocks"] == 4
    assert net.command(p1, C_START_COPY) == S_OK
    assert net.command(net.prim(2), C_START_COPY) == S_OK
    assert p1.store.sb.copy_state == CS_PENDING
    s = st(net, p1)
    assert s["copy_state"] == CS_PENDING and s["copy_total"] == 4 and s["copy_done"] == 0
    # host writes continue during the copy (and mark their block)
    assert net.write(p1, 0, 5, block_of("during")) == S_OK
    assert st(net, p1)["copy_total"] == 5
    wait_state(net, p1, CS_DUPLEX)
    wait_state(net, net.sec(1), CS_DUPLEX)
    s = st(net, p1)
    assert s["copy_done"] == s["copy_total"] == 5 and s["dirty_blocks"] == 0
    assert net.sec(1).node.role.joins == 1
    # after the join, writes are the ordered stream and the pair takes part in releases
    for i in range(5):
        assert net.write(p1, 0, 10 + i, block_of("after%d" % i)) == S_OK
    quiesce(net)
    assert_mirrored(net, 1)
    assert net.sec(1).store.sb.applied_n > 0
    assert net.sec(1).store.sb.applied_n == net.sec(2).store.sb.applied_n


def test_full_copy_marks_every_block():
    net = Net(pairs=1, autostart=False, vol_blocks=48)
    net.advance(1000000)
    p = net.prim(1)
    assert net.command(p, C_START_COPY, 1) == S_OK
    assert st(net, p)["copy_total"] == 48
    wait_state(net, net.sec(1), CS_DUPLEX)
    assert copy_records_sent(p) == 48 and net.sec(1).node.role.copy_in == 48


def test_pending_pair_is_out_of_the_group_until_it_joins():
    net = Net(pairs=2, autostart=False, vol_blocks=64)
    net.advance(1000000)
    net.command(net.prim(2), C_START_COPY)
    wait_state(net, net.sec(2), CS_DUPLEX)
    # pair 1: a full copy starts, then its peer link stops: it stays pending; pair 2
    # keeps releasing without waiting for it
    net.command(net.prim(1), C_START_COPY, 1)
    while net.sec(1).node.role.copy_in < 8:
        net.advance(2000)
    net.hold(("peer", net.prim(1).id))
    net.advance(300000)
    assert net.sec(1).store.sb.copy_state == CS_PENDING
    n0 = net.sec(2).store.sb.applied_n
    net.write(net.prim(2), 0, 1, block_of("x"))
    net.advance(1000000)
    assert net.prim(1).store.sb.copy_state == CS_PENDING
    assert net.sec(2).store.sb.applied_n > n0
    # a failover now must not pretend the pending pair holds a consistent image
    assert net.command(net.sec(1), C_FAILOVER, 0, 0) == S_BAD_STATE
    net.release(("peer", net.prim(1).id))
    wait_state(net, net.sec(1), CS_DUPLEX)
    quiesce(net)
    assert_mirrored(net, 1)
    assert_mirrored(net, 2)


# -- suspend / resume ---------------------------------------------------------------------------

def test_suspend_marks_changes_and_resume_copies_only_them():
    net = Net(pairs=3)
    net.advance(1000000)
    p1, s1 = net.prim(1), net.sec(1)
    for b in range(6):
        net.write(p1, 0, b, block_of("a%d" % b))
    quiesce(net)
    assert_mirrored(net, 1)
    applied_at_suspend = s1.store.sb.applied_n
    assert net.command(p1, C_SUSPEND) == S_OK
    net.advance(300000)
    assert p1.store.sb.copy_state == CS_SUSPENDED and s1.store.sb.copy_state == CS_SUSPENDED
    assert st(net, p1)["suspend_reason"] == R_OPERATOR
    changed = {2, 7, 8, 30}
    for b in (2, 7, 8, 30, 7, 2):                 # repeated writes: one mark each
        assert net.write(p1, 0, b, block_of("s%d" % b)) == S_OK
    assert st(net, p1)["dirty_blocks"] == len(changed)
    # the rest of the group keeps releasing; the suspended secondary stays where it was
    for p in (2, 3):
        net.write(net.prim(p), 0, 1, block_of("other%d" % p))
    n2 = net.sec(2).store.sb.applied_n
    net.advance(1500000)
    assert net.sec(2).store.sb.applied_n > n2
    assert s1.store.sb.applied_n == applied_at_suspend
    assert not s1.node.role.frozen and not net.sec(2).node.role.frozen
    # resume: exactly the changed blocks move, then the pair rejoins
    copied = copy_records_sent(p1)
    assert net.command(p1, C_RESUME) == S_OK
    wait_state(net, s1, CS_DUPLEX)
    assert copy_records_sent(p1) - copied == len(changed)
    s = st(net, p1)
    assert s["copy_done"] == s["copy_total"] == len(changed) and s["suspend_reason"] == 0
    net.write(p1, 0, 50, block_of("late"))
    quiesce(net)
    for p in (1, 2, 3):
        assert_mirrored(net, p)
    assert s1.store.sb.applied_n == net.sec(2).store.sb.applied_n


def test_suspend_turns_unshipped_journal_records_into_marks():
    net = Net(pairs=1)
    net.advance(1000000)
    p = net.prim(1)
    net.hold(("peer", p.id))
    for b in (11, 12, 13):
        net.write(p, 0, b, block_of("j%d" % b))
    assert p.store.j_depth() >= 3
    assert net.command(p, C_SUSPEND) == S_OK
    assert p.store.j_depth() == 0 and st(net, p)["dirty_blocks"] == 3
    net.release(("peer", p.id))
    net.advance(300000)
    assert net.command(p, C_RESUME) == S_OK
    wait_state(net, net.sec(1), CS_DUPLEX)
    quiesce(net)
    assert_mirrored(net, 1)


def test_suspended_state_and_marks_survive_a_reboot():
    net = Net(pairs=1)
    net.advance(1000000)
    p = net.prim(1)
    net.command(p, C_SUSPEND)
    for b in (4, 5):
        net.write(p, 0, b, block_of("r%d" % b))
    net.kill(p)
    net.advance(100000)
    net.reboot(p)
    net.advance(500000)
    assert p.store.sb.copy_state == CS_SUSPENDED
    assert p.store.bm_total() == 2
    net.command(p, C_RESUME)
    wait_state(net, net.sec(1), CS_DUPLEX)
    assert p.node.role.copy_done == 2
    quiesce(net)
    assert_mirrored(net, 1)


def test_secondary_reboot_during_resync_loses_no_copy():
    net = Net(pairs=1, vol_blocks=64, autostart=False)
    net.advance(1000000)
    p, s = net.prim(1), net.sec(1)
    net.command(p, C_START_COPY, 1)
    while s.node.role.copy_in < 20:
        net.advance(2000)
    net.kill(s)
    net.advance(300000)
    net.reboot(s)
    wait_state(net, s, CS_DUPLEX)
    quiesce(net)
    assert_mirrored(net, 1)


# -- auto-suspend -------------------------------------------------------------------------------

def test_link_outage_longer_than_the_journal_suspends_instead_of_refusing():
    net = Net(pairs=2, journal_slots=16, pace_max_us=0)
    net.advance(1000000)
    p1, s1 = net.prim(1), net.sec(1)
    net.hold(("peer", p1.id))
    statuses = [net.write(p1, 0, b % 40, block_of("o%d" % b)) for b in range(40)]
    assert statuses == [S_OK] * 40                # nothing refused, nothing lost
    assert p1.store.sb.copy_state == CS_SUSPENDED
    assert st(net, p1)["suspend_reason"] == R_JOURNAL_FULL
    net.advance(3000000)
    # the secondary lost its peer: it resigned, so the freeze group holds its image
    assert s1.store.sb.copy_state == CS_RESIGNED and s1.node.role.frozen
    net.release(("peer", p1.id))
    assert net.command(p1, C_RESUME) == S_OK
    wait_state(net, s1, CS_DUPLEX)
    quiesce(net)
    assert_mirrored(net, 1)
    assert not s1.node.role.frozen


def test_auto_suspend_off_refuses_with_journal_full():
    net = Net(pairs=1, journal_slots=16, auto_suspend=False, pace_max_us=0)
    net.advance(1000000)
    p = net.prim(1)
    net.hold(("peer", p.id))
    statuses = [net.write(p, 0, b, block_of("f")) for b in range(20)]
    assert S_JOURNAL_FULL in statuses and p.store.sb.copy_state == CS_DUPLEX


# -- pacing -------------------------------------------------------------------------------------

def test_pacing_delays_completions_progressively_above_the_threshold():
    net = Net(pairs=1, journal_slots=32, pace_threshold=8, pace_max_us=40000)
    net.advance(1000000)
    p = net.prim(1)
    s = st(net, p)
    assert (s["pace_threshold"], s["pace_max_us"]) == (8, 40000)
    net.hold(("peer", p.id))
    delays, depths = [], []
    for b in range(20):
        tag = net.request(p, T_H_WRITE, bytes([0]) + b.to_bytes(4, "little") + block_of("p"))
        immediate = tag in p.replies
        delays.append(st(net, p)["pace_us"])
        depths.append(p.store.j_depth())
        if not immediate:
            assert delays[-1] > 0
            net.advance(delays[-1] - 2000)
            assert tag not in p.replies            # still held back
            net.advance(4000)
            assert p.replies[tag][0] == S_OK      # completed, later
    # linear from 0 at the threshold to pace_max_us at a full journal (markers count too)
    assert delays == [40000 * max(0, d - 8) // (32 - 8) for d in depths]
    assert delays[-1] > delays[10] > 0 and delays[5] == 0
    net.release(("peer", p.id))
    quiesce(net)
    assert p.store.j_depth() < 8
    net.write(p, 0, 1, block_of("q"))
    assert st(net, p)["pace_us"] == 0
    quiesce(net)
    assert_mirrored(net, 1)


# -- failback -----------------------------------------------------------------------------------

def dirty_list(net, board, vol=0):
    out, start = [], 0
    while True:
        tag = net.request(board, T_H_COMMAND, _cmd(C_DIRTY_LIST, vol, start))
        status, body = board.replies[tag]
        assert status == S_OK
        nxt, blocks = hostcodec.unpack_dirty_list(body)
        out += blocks
        if nxt >= board.store.sb.vol_blocks:
            return out
        start = nxt


def _cmd(cmd, arg=0, arg2=0):
    buf = bytearray(13)
    hostcodec.pack_h_command(buf, 0, cmd, arg, arg2)
    return bytes(buf)


def test_failback_copies_only_blocks_changed_since_failover():
    net = Net(pairs=2)
    net.advance(1000000)
    for p in (1, 2):
        for b in range(8):
            net.write(net.prim(p), 0, b, block_of("base%d.%d" % (p, b)))
    quiesce(net)
    # writes the secondary will hold but not apply (beyond the recovered point) and
    # writes it never gets: both must be overwritten at the old primary on failback
    net.hold(("peer", net.prim(1).id))
    net.write(net.prim(1), 0, 20, block_of("lost"))
    net.disaster()
    net.advance(3000000)
    res = net.failover()
    assert set(res.values()) == {S_OK}
    image = {p: volume(net.sec(p)) for p in (1, 2)}
    # host activity at the secondary site
    for b in (3, 40, 41):
        assert net.write(net.sec(1), 0, b, block_of("dr%d" % b)) == S_OK
    assert set(dirty_list(net, net.sec(1))) == {3, 40, 41}
    # the old primaries come back (the disaster is over)
    for p in (1, 2):
        net.reboot(net.prim(p))
    net.release(("peer", net.prim(1).id))
    net.advance(200000)
    # failback, as the CLI orders it
    for p in (1, 2):
        assert net.command(net.prim(p), C_FAILBACK, ROLE_SECONDARY) == S_OK
    for p in (1, 2):
        for b in dirty_list(net, net.prim(p)):
            assert net.command(net.sec(p), C_MARK_DIRTY, 0, b) == S_OK
    want = {p: set(dirty_list(net, net.sec(p))) for p in (1, 2)}
    assert 20 in want[1] and {3, 40, 41} <= want[1]
    for p in (1, 2):
        assert net.command(net.sec(p), C_FAILBACK, ROLE_PRIMARY) == S_OK
        assert net.sec(p).node.cfg.role == ROLE_PRIMARY and net.prim(p).node.cfg.role == ROLE_SECONDARY
    for p in (1, 2):
        wait_state(net, net.prim(p), CS_DUPLEX)
        wait_state(net, net.sec(p), CS_DUPLEX)
        assert net.sec(p).node.role.copied == len(want[p])
    assert volume(net.prim(1))[20] == image[1][20] != block_of("lost")
    # the reversed pairs replicate and release as a group
    for b in (5, 6):
        assert net.write(net.sec(1), 0, b, block_of("new%d" % b)) == S_OK
    assert net.write(net.prim(1), 0, 5, block_of("x")) == S_READ_ONLY
    quiesce(net)
    for p in (1, 2):
        assert volume(net.prim(p)) == volume(net.sec(p))
    assert net.prim(1).store.sb.applied_n > 0
    assert net.prim(1).store.sb.applied_n == net.prim(2).store.sb.applied_n
    # the roles are durable: a reboot keeps them
    net.kill(net.sec(1))
    net.reboot(net.sec(1))
    assert net.sec(1).node.cfg.role == ROLE_PRIMARY


def test_failback_refused_in_the_wrong_state():
    net = Net(pairs=1)
    net.advance(1000000)
    assert net.command(net.sec(1), C_FAILBACK, ROLE_PRIMARY) == S_BAD_STATE     # not failed over
    assert net.command(net.prim(1), C_FAILBACK, ROLE_PRIMARY) == S_OK           # already: a retry
    assert net.command(net.prim(1), C_FAILBACK, 7) == S_BAD_COMMAND             # no such role


def test_dirty_list_and_mark_reject_bad_addresses():
    net = Net(pairs=1, vol_blocks=300)
    net.advance(1000000)
    p = net.prim(1)
    assert net.command(p, C_MARK_DIRTY, 3, 0) == S_UNKNOWN_VOLUME
    assert net.command(p, C_MARK_DIRTY, 0, 300) == S_OUT_OF_RANGE
    assert net.command(p, C_DIRTY_LIST, 9, 0) == S_UNKNOWN_VOLUME
    for b in range(0, 300, 2):
        net.command(p, C_MARK_DIRTY, 0, b)
    assert dirty_list(net, p) == list(range(0, 300, 2))     # more than one reply's worth



def test_pair_operations_belong_to_the_primary():
    net = Net(pairs=1)
    net.advance(1000000)
    for cmd in (C_START_COPY, C_STOP_COPY, C_SUSPEND, C_RESUME):
        assert net.command(net.sec(1), cmd) == S_WRONG_ROLE
    assert net.command(net.prim(1), C_RESUME) == S_OK            # duplex already: nothing to do
    assert net.command(net.prim(1), C_SUSPEND) == S_OK
    assert net.command(net.prim(1), C_SUSPEND) == S_OK           # idempotent
    assert net.command(net.prim(1), 99) == S_BAD_COMMAND


def test_master_whose_pair_joins_below_the_round_in_progress_applies_it():
    """The rendezvous master's own pair rejoins at a checkpoint older than one the master
    released for the others meanwhile: the master must apply that release itself, or the
    round never completes and the whole group stops releasing."""
    net = Net(pairs=2)
    net.advance(1000000)
    p1, s1 = net.prim(1), net.sec(1)
    assert s1.node.mac.is_master()
    net.command(p1, C_SUSPEND)
    for b in range(30):
        net.write(p1, 0, b, block_of("m%d" % b))
    net.command(p1, C_RESUME)
    # let the primary journal every copy and its join marker, but keep them off the link
    net.hold(("peer", p1.id))
    while p1.store.sb.copy_state != CS_DUPLEX:
        net.advance(5000)
    # the other pair keeps releasing past the join checkpoint
    net.write(net.prim(2), 0, 1, block_of("other"))
    join_t = p1.node.role.ckpt_t
    while net.sec(2).store.sb.applied_t <= join_t:
        net.advance(20000)
    net.release(("peer", p1.id))
    wait_state(net, s1, CS_DUPLEX)
    net.write(net.prim(2), 0, 2, block_of("later"))
    net.write(p1, 0, 40, block_of("later"))
    before = net.sec(2).store.sb.applied_n
    quiesce(net)
    assert net.sec(2).store.sb.applied_n > before + 2      # releases go on
    assert s1.store.sb.applied_n == net.sec(2).store.sb.applied_n
    assert_mirrored(net, 1)
    assert_mirrored(net, 2)


def test_resync_paces_host_writes_while_the_link_is_the_bottleneck():
    net = Net(pairs=1, vol_blocks=64, journal_slots=32, pace_max_us=40000, autostart=False)
    net.advance(1000000)
    p = net.prim(1)
    net.hold(("peer", p.id))                     # the link carries nothing: copies pile up
    assert net.command(p, C_START_COPY, 1) == S_OK
    net.advance(200000)
    assert p.store.j_depth() >= p.cfg.copy_window and p.store.bm_total() > 0
    tag = net.request(p, T_H_WRITE, bytes([0]) + (3).to_bytes(4, "little") + block_of("w"))
    assert tag not in p.replies                   # completion held back ...
    assert st(net, p)["pace_us"] == 40000 * min(p.store.bm_total(), 8) // 8
    net.advance(45000)
    assert p.replies[tag][0] == S_OK              # ... then completed
    net.release(("peer", p.id))
    wait_state(net, net.sec(1), CS_DUPLEX)
    quiesce(net)
    assert_mirrored(net, 1)
