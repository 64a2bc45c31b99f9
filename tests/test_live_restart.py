"""Liveness through restarts: a resume right after the secondary bus master restarted, and a
primary that reboots right after its join, each must end with the pair DUPLEX and the group
releasing again (and, in the drills, recoverable to one cut at the disaster).

The drills are `run_ops("master-restart", ...)` (host_tools/sim/drills.py: suspend a pair,
switch s0 off and on, resume at once): the seeds below stalled before the master waited for a
known table (firmware/secondary.py `_known`) before it set or dropped the group's anchor. The
core test drives two pairs through tests/corenet.py."""
import pytest

from corenet import Net, block_of
from firmware.wire import CS_DUPLEX, CS_PENDING, C_RESUME, C_SUSPEND, S_OK
from host_tools.sim.drills import run_ops

# (seed, faults, pairs): each stalled (the resumed pair never DUPLEX, the group releasing
# nothing) before the fix
STALLED = [(100, "none", 4), (56, "collision,jitter,drift", 4), (74, "collision,jitter,drift", 4)]


@pytest.mark.parametrize("seed,faults,pairs", STALLED, ids=["%s-%d" % (f, s) for s, f, p in STALLED])
def test_resume_right_after_the_secondary_master_restarted_reaches_duplex(seed, faults, pairs):
    r = run_ops("master-restart", seed=seed, faults=faults, pairs=pairs)
    why = (r["op_failures"], r["ops"], r["op_steps"])
    assert r["op_failures"] == [], why
    assert r["safety"] == {"violations": 0, "lost_before_cut": 0, "sites_differ": 0}, why
    assert r["liveness"]["no_image"] == 0 and not r["liveness"]["no_common_cut"], why
    assert r["ops"]["resync"].get("duplex_ms") is not None, why
    # the group is recoverable soon after the join, not after the drill's 20 s limit
    assert r["ops"]["group_recoverable_after_ms"] < 5000, why


def _state(b):
    return b.store.sb.copy_state


def test_a_primary_rebooting_after_its_join_does_not_restart_a_confirmed_resync():
    """The join marker reached the secondary and the group confirmed the join, but its ACK did
    not reach the primary before it rebooted: its HELLO says COPY (the journal still holds the
    join). The secondary stays DUPLEX: a second resync over its old image cut would be one the
    group's new anchor cannot reach, and the group would release nothing again."""
    net = Net(pairs=2, vol_blocks=32, journal_slots=64)
    net.settle(1500000)
    p2, s2 = net.prim(2), net.sec(2)
    assert _state(p2) == _state(s2) == CS_DUPLEX
    assert net.command(p2, C_SUSPEND) == S_OK
    net.settle(500000)
    for blk in range(4):
        assert net.write(p2, 0, blk, block_of("w%d" % blk)) == S_OK
    assert net.command(p2, C_RESUME) == S_OK
    for _ in range(4000):
        net.advance(1000)
        if _state(p2) == CS_DUPLEX:
            break
    assert _state(p2) == CS_DUPLEX
    net.hold(("peer", s2.id))                  # the ACK of the join marker is not getting back
    for _ in range(4000):
        net.advance(1000)
        if _state(s2) == CS_DUPLEX:
            break
    assert _state(s2) == CS_DUPLEX and s2.node.role.joins == 1
    net.kill(p2)
    net.reboot(p2)
    net.release(("peer", s2.id))
    seen = set()
    for _ in range(300):
        net.advance(10000)
        seen.add(_state(s2))
    assert CS_PENDING not in seen and s2.node.role.joins == 1
    assert _state(p2) == _state(s2) == CS_DUPLEX
    t0 = s2.store.sb.applied_t
    net.settle(1000000)
    assert s2.store.sb.applied_t > t0          # the group releases on


def test_a_resync_joining_ahead_of_a_lagging_group_does_not_stop_its_releases():
    """autosuspend seed 31, every fault class: the resumed pair joins at a cut ~3.6 s ahead of
    the group's last release (pair 0's noisy link holds the group back). The master took the
    joined pair's cut for a release an earlier master had made, and released nothing until
    every stream held it (4.2 s); the group must go on releasing the cuts every stream holds."""
    r = run_ops("autosuspend", seed=31, faults="all")
    gap = r["ops"]["release_gap_after_join_ms"]
    assert gap is not None and gap < 3000, (gap, r["op_steps"])
    assert r["safety"] == {"violations": 0, "lost_before_cut": 0, "sites_differ": 0}
    assert r["op_failures"] == [], r["op_failures"]


@pytest.mark.parametrize("seed", [22])
def test_a_joined_pair_waiting_for_a_lagging_group_is_an_overload_with_evidence(seed):
    """autosuspend, every fault class (seed 31 before the compact stream framing; 22 and 77
    since): the resumed pair joins in time, but its DUPLEX waits for the group, whose cut lags
    behind a stream whose noisy link acknowledges fewer records a second than the host
    journals. The drill names that an overload, with both rates, not a liveness failure."""
    r = run_ops("autosuspend", seed=seed, faults="all")
    assert r["op_failures"] == [], r["op_failures"]
    lag = [e for e in r["ops"].get("overloaded", []) if e.get("kind") == "lag"]
    assert lag and all(e["journaled_per_s"] > e["acked_per_s"] for e in lag), r["ops"]


@pytest.mark.parametrize("seed", [39])
def test_a_resync_the_host_outwrites_is_an_overload_with_evidence(seed):
    """autosuspend, every fault class (seeds 13, 34, 62, 78 before the compact stream framing; 39,
    58, 71, 78 since): the resumed pair's copies keep being
    acknowledged, but the host writes to the pair faster than the noisy link copies (each copy
    outrun by a new mark), so the bitmap never empties at a checkpoint. The drill names that an
    overload, with both rates, instead of a liveness failure."""
    r = run_ops("autosuspend", seed=seed, faults="all")
    assert r["op_failures"] == [], r["op_failures"]
    over = [e for e in r["ops"]["overloaded"] if e.get("kind") == "resync"]
    assert over and all(e["written_per_s"] >= e["copied_per_s"] > 0 for e in over), r["ops"]
