"""Fencing after a failover: an old primary learns from its failed-over secondary (the
SUSPEND notice, reason PEER_FAILED_OVER) that its site no longer owns the data; it
suspends with that reason and refuses host writes (S_FENCED), or with fence_writes off
takes them as change-bitmap marks that a failback can list first.

Driven through tests/corenet.py (real Node objects, real codec and deframers, RAM disks)."""
from corenet import Net, block_of
from test_ops_core import dirty_list, st, wait_state
from firmware.wire import (CS_DUPLEX, CS_FAILED_OVER, CS_PENDING, CS_SUSPENDED, C_FAILBACK, C_MARK_DIRTY,
                           C_RESUME, C_SUSPEND, MODE_SYNC, ROLE_PRIMARY, ROLE_SECONDARY, R_OPERATOR,
                           R_PEER_FAILED_OVER, S_FENCED, S_OK, T_H_STATUS)
from host_tools.transport import messages


def _disaster_and_failover(net, pairs=(1, 2)):
    for p in pairs:
        for b in range(6):
            assert net.write(net.prim(p), 0, b, block_of("base%d.%d" % (p, b))) == S_OK
    net.advance(3000000)
    net.disaster()
    net.advance(3000000)
    assert set(net.failover().values()) == {S_OK}


def _fenced(net, board):
    s = st(net, board)
    return s["copy_state"] == CS_SUSPENDED and s["suspend_reason"] == R_PEER_FAILED_OVER


def test_restarted_old_primary_is_fenced_and_refuses_writes():
    net = Net(pairs=2)
    net.advance(1000000)
    _disaster_and_failover(net)
    for p in (1, 2):
        net.reboot(net.prim(p))
    net.advance(500000)
    for p in (1, 2):
        prim = net.prim(p)
        assert _fenced(net, prim), st(net, prim)
        assert net.write(prim, 0, 1, block_of("after")) == S_FENCED
        status, body = net.read(prim, 0, 1)
        assert status == S_OK and body == block_of("base%d.1" % p)       # reads stay allowed
        assert dirty_list(net, prim) == []
        # the secondary stays failed over and open to the host
        assert net.sec(p).store.sb.copy_state == CS_FAILED_OVER
        assert net.write(net.sec(p), 0, 2, block_of("dr")) == S_OK
    # the host names the reason
    tag = net.request(net.prim(1), T_H_STATUS)
    d = messages.decode_status(net.prim(1).replies[tag][1])
    assert d["copy_state_name"] == "SUSPENDED" and d["suspend_reason_name"] == "peer-failed-over"
    # durable: still fenced after another reboot, before the peer has said anything
    net.kill(net.prim(1))
    net.hold(("peer", net.sec(1).id))
    net.reboot(net.prim(1))
    assert _fenced(net, net.prim(1))
    assert net.write(net.prim(1), 0, 3, block_of("x")) == S_FENCED
    net.release(("peer", net.sec(1).id))


def test_fence_writes_off_takes_writes_as_marks_and_failback_lists_them():
    net = Net(pairs=1, fence_writes=False)
    net.advance(1000000)
    _disaster_and_failover(net, pairs=(1,))
    prim, sec = net.prim(1), net.sec(1)
    net.reboot(prim)
    net.advance(500000)
    assert _fenced(net, prim)
    for b in (4, 30):
        assert net.write(prim, 0, b, block_of("late%d" % b)) == S_OK
    assert net.read(prim, 0, 30) == (S_OK, block_of("late30"))
    assert dirty_list(net, prim) == [4, 30]
    assert st(net, prim)["dirty_blocks"] == 2
    # a failback (forced by the operator) overwrites them from the new primary
    image = net.read(sec, 0, 30)[1]
    assert net.command(prim, C_FAILBACK, ROLE_SECONDARY) == S_OK
    for b in dirty_list(net, prim):
        assert net.command(sec, C_MARK_DIRTY, 0, b) == S_OK
    assert net.command(sec, C_FAILBACK, ROLE_PRIMARY) == S_OK
    wait_state(net, prim, CS_DUPLEX)
    wait_state(net, sec, CS_DUPLEX)
    assert net.read(prim, 0, 30) == (S_OK, image)


def test_primary_alive_through_a_partition_learns_when_the_link_returns():
    net = Net(pairs=1)
    net.advance(1000000)
    prim, sec = net.prim(1), net.sec(1)
    assert net.write(prim, 0, 1, block_of("base")) == S_OK
    net.advance(2000000)
    net.hold(("peer", prim.id), ("peer", sec.id))
    # the primary goes on taking writes into its journal (the link is down, nothing else)
    assert net.write(prim, 0, 7, block_of("unshipped")) == S_OK
    net.advance(3000000)
    assert set(net.failover().values()) == {S_OK}
    assert st(net, prim)["copy_state"] == CS_DUPLEX
    net.release(("peer", prim.id), ("peer", sec.id))
    net.advance(1000000)
    assert _fenced(net, prim)
    assert net.write(prim, 0, 8, block_of("x")) == S_FENCED
    # the records the failover did not carry stay journaled (not listed as written after
    # it); a failback marks them
    assert dirty_list(net, prim) == []
    assert st(net, prim)["journal_depth"] > 0
    assert net.command(prim, C_FAILBACK, ROLE_SECONDARY) == S_OK
    assert 7 in dirty_list(net, prim)


def test_resume_of_a_fenced_pair_is_fenced_again():
    net = Net(pairs=1)
    net.advance(1000000)
    _disaster_and_failover(net, pairs=(1,))
    prim = net.prim(1)
    net.reboot(prim)
    net.advance(500000)
    assert _fenced(net, prim)
    assert net.command(prim, C_RESUME) == S_OK
    assert prim.store.sb.copy_state == CS_PENDING
    net.advance(1000000)
    assert _fenced(net, prim)


def test_operator_suspended_primary_learns_too():
    net = Net(pairs=1)
    net.advance(1000000)
    prim, sec = net.prim(1), net.sec(1)
    assert net.command(prim, C_SUSPEND) == S_OK
    net.advance(500000)
    assert st(net, prim)["suspend_reason"] == R_OPERATOR
    assert set(net.failover().values()) == {S_OK}
    net.advance(1000000)         # its keepalive notice is answered
    assert _fenced(net, prim)
    assert net.write(prim, 0, 2, block_of("x")) == S_FENCED


def test_sync_writes_waiting_on_the_failed_over_secondary_are_refused_and_marked():
    net = Net(pairs=1, mode=MODE_SYNC)
    net.advance(1000000)
    prim, sec = net.prim(1), net.sec(1)
    net.write(prim, 0, 1, block_of("base"))
    net.advance(2000000)
    assert list(prim.replies.values())[-1][0] == S_OK
    net.hold(("peer", prim.id), ("peer", sec.id))
    assert net.write(prim, 0, 9, block_of("waiting")) is None      # waits for the ACK
    tag = net.tag
    net.advance(3000000)
    assert tag not in prim.replies
    assert set(net.failover().values()) == {S_OK}
    net.release(("peer", prim.id), ("peer", sec.id))
    net.advance(1000000)
    assert _fenced(net, prim)
    assert prim.replies[tag][0] == S_FENCED
    assert dirty_list(net, prim) == [9]
