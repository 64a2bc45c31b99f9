"""A disaster in the middle of a failback's resync (issue #13 items 1 and 4): an old primary that
has become a secondary holds the old site's volume, with the writes the first failover
discarded, so it has no image of the reversed pair until its join is confirmed by a group
release. Whatever state the reversed resync has reached on it (SIMPLEX before the new
primary's first message, PENDING, SUSPENDED), a failover must answer "no image yet", never
open that volume as a recovered image.

The seeds are `arcopy sim sweep --ops failback --faults all --seeds 100 --disaster-at resync`
drills that recovered such a SIMPLEX old primary as an image holding writes its new primary
never had (consistency violations): the reversed pair's peer link was down at that instant
(fault class outage: seeds 16, 34, 63, 69, 94) or its new primary had lost power (88), so the
resync had not reached the old primary yet. Its marks were complete in every seed."""
import pytest

from corenet import Net, block_of
from test_ops_core import dirty_list, st
from firmware.wire import (CS_FAILED_OVER, CS_SIMPLEX, CS_SUSPENDED, C_FAILBACK, C_FAILOVER,
                           C_MARK_DIRTY, C_SUSPEND, ROLE_PRIMARY, ROLE_SECONDARY, S_BAD_STATE, S_OK)
from host_tools.cmds import sim as simcli
from host_tools.ops import status as _status

SEEDS = (16, 34, 63, 69, 88, 94)


def _failed_over_with_discarded_writes(net):
    """Pair 1 fails over; the old primary holds writes the failover discarded (block 9)."""
    prim, sec = net.prim(1), net.sec(1)
    for b in range(6):
        assert net.write(prim, 0, b, block_of("base%d" % b)) == S_OK
    net.advance(3000000)
    net.hold(("peer", prim.id), ("peer", sec.id))
    assert net.write(prim, 0, 9, block_of("discarded")) == S_OK
    net.advance(500000)
    net.disaster()
    net.advance(3000000)
    assert set(net.failover().values()) == {S_OK}
    net.reboot(prim)
    net.advance(200000)
    return prim, sec


def _old_primary_to_secondary(net, prim, sec):
    """The failback's first steps: the old primary becomes a secondary, its marks merged
    into its peer's bitmap."""
    assert net.command(prim, C_FAILBACK, ROLE_SECONDARY) == S_OK
    for b in dirty_list(net, prim):
        assert net.command(sec, C_MARK_DIRTY, 0, b) == S_OK


def test_old_primary_before_the_reversed_resync_reaches_it_has_no_image_yet():
    net = Net(pairs=1)
    net.advance(1000000)
    prim, sec = _failed_over_with_discarded_writes(net)
    _old_primary_to_secondary(net, prim, sec)
    # the new primary starts its resync, but nothing reaches the old primary yet
    net.hold(("peer", sec.id))
    assert net.command(sec, C_FAILBACK, ROLE_PRIMARY) == S_OK
    net.advance(100000)
    assert prim.store.sb.copy_state == CS_SIMPLEX
    s = st(net, prim)
    assert not _status.had_image(s) and _status.image(s)["first"], s
    # the second disaster now: the old primary's volume is no image of the reversed pair
    assert net.command(prim, C_FAILOVER, 0, 0) == S_BAD_STATE
    assert prim.store.sb.copy_state == CS_SIMPLEX


def test_old_primary_whose_reversed_resync_was_suspended_has_no_image_yet():
    net = Net(pairs=1)
    net.advance(1000000)
    prim, sec = _failed_over_with_discarded_writes(net)
    _old_primary_to_secondary(net, prim, sec)
    net.release(("peer", prim.id), ("peer", sec.id))
    assert net.command(sec, C_FAILBACK, ROLE_PRIMARY) == S_OK
    assert net.command(sec, C_SUSPEND) == S_OK
    net.advance(500000)
    assert prim.store.sb.copy_state == CS_SUSPENDED, st(net, prim)
    s = st(net, prim)
    assert not _status.had_image(s) and _status.image(s)["first"], s
    assert net.command(prim, C_FAILOVER, 0, 0) == S_BAD_STATE
    assert prim.store.sb.copy_state != CS_FAILED_OVER


@pytest.mark.parametrize("seed", SEEDS)
def test_disaster_in_the_failback_resync_recovers_no_stale_old_primary(seed):
    r = simcli._one(dict(op="failback", seed=seed, faults="all", disaster_at="resync"))
    assert not r.get("exception"), r.get("traceback")
    assert r["safety"]["violations"] == 0 and r["safety"]["lost_before_cut"] == 0, (
        r["safety"], r["failover"], r["recovered_pairs"], r["corrupt"][:3])
    assert r["liveness"]["no_image"] == 0 and not r["liveness"]["no_common_cut"], r["liveness"]
