"""A disaster in the middle of every resync, and at the instant every pair first shows DUPLEX after
it (issue #13 items 1 and 2): every pair that had an image recovers, to one cut of the whole group.

The drills (host_tools/sim/drills.py, disaster_at="resync" / "duplex") run the operation through
the host ports, lose the primary site at that instant and fail the group over with ops/failover.py;
the checker judges the images. Acceptable: no consistency violation, no acknowledged write older than
the recovered cut lost, no pair without an image except first copies ("no image yet", counted apart).
The long sweeps: `make drills`."""
import pytest

from host_tools.cmds import sim as simcli
from firmware import wire

OPS = ("initial-copy", "suspend", "autosuspend", "failback")
CASES = [(op, at, faults, seed) for op in OPS for at in ("resync", "duplex")
         for faults, seed in (("none", 0), ("loss,jitter", 1))]


def _why(r):
    if r.get("exception"):
        return r["traceback"]
    return "%s seed %d %s: safety %s liveness %s failover %s op_failures %s" % (
        r.get("op"), r["seed"], ",".join(r["faults"]), r["safety"], r["liveness"], r["failover"],
        r["op_failures"])


@pytest.mark.parametrize("op,at,faults,seed", CASES, ids=["-".join(map(str, c)) for c in CASES])
def test_disaster_in_the_resync_or_at_duplex_recovers_every_pair_with_an_image(op, at, faults, seed):
    r = simcli._one(dict(op=op, seed=seed, faults=faults, disaster_at=at))
    assert not r.get("exception"), r.get("traceback")
    assert r["safety"]["violations"] == 0 and r["safety"]["lost_before_cut"] == 0, _why(r)
    assert r["liveness"]["no_image"] == 0 and not r["liveness"]["no_common_cut"], _why(r)
    if at == "duplex":
        # every pair had joined: every one recovers
        assert set(r["failover"].values()) == {wire.S_OK}, _why(r)
        assert r["liveness"]["no_image_yet"] == 0, _why(r)
    inres = r["ops"].get("disaster_in_resync") or {}
    if at == "resync" and op in ("suspend", "autosuspend"):
        # the resumed pair was still copying, and it recovered (to the group's image cut)
        assert any(inres.values()), r["ops"]
        assert set(r["failover"].values()) == {wire.S_OK}, _why(r)
    if at == "resync" and op == "initial-copy":
        # a first copy onto a blank secondary: no image yet, never a failure
        assert r["liveness"]["no_image_yet"] >= sum(1 for v in inres.values() if v), _why(r)

