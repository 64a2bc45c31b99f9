"""`arcopy sim campaign`: modes x operations x fault classes through the sweep runner, one table, JSON."""
import json

from host_tools.sim import campaign
from inproc import cli as _cli



def test_a_tiny_campaign_prints_one_table_and_writes_json(tmp_path):
    path = str(tmp_path / "c.json")
    rc, out, err = _cli(["sim", "campaign", "--seeds", "2", "--modes", "clock", "--ops",
                         "replication,suspend", "--faults", "none,loss", "--jobs", "2",
                         "--json", path])
    lines = out.splitlines()
    assert lines[0].split() == ["mode", "operation", "faults", "seeds", "failing", "violations",
                                "lost", "acked", "unrecoverable", "wall", "s"]
    rows = [l.split() for l in lines[2:6]]
    assert [r[:4] for r in rows] == [["clock", "replication", "none", "2"],
                                     ["clock", "replication", "loss", "2"],
                                     ["clock", "suspend", "none", "2"],
                                     ["clock", "suspend", "loss", "2"]]
    assert lines[7].split()[:4] == ["total", "4", "cells", "8"]
    c = json.load(open(path))
    assert c["format"] == campaign.FORMAT and c["params"]["seeds"] == 2
    assert [(x["mode"], x["op"], x["faults"]) for x in c["cells"]] == [
        ("clock", "replication", "none"), ("clock", "replication", "loss"),
        ("clock", "suspend", "none"), ("clock", "suspend", "loss")]
    for cell in c["cells"]:
        s = cell["summary"]
        assert s["seeds"] == 2 and [r["seed"] for r in cell["records"]] == [0, 1]
        for k in ("violations", "lost_before_released_checkpoint", "failing", "wall_seconds"):
            assert k in s
        assert s["liveness"]["no_image"] >= 0
    assert c["totals"]["seeds"] == 8 and c["totals"]["cells"] == 4
    assert c["cells"][0]["expect"] == campaign.expectation("clock", "replication")
    fails = [l for l in err.splitlines() if l.startswith("FAIL ")]
    assert len(fails) == len(c["failures"]) == c["totals"]["failing"]
    assert rc == (1 if fails else 0)
    for f in c["failures"]:
        assert f["replay"].startswith("arcopy sim ") and "--seed %d" % f["seed"] in f["replay"]


def test_clockless_cells_only_where_meant_to_be_safe():
    base = dict(pairs=4, duration=None, policy="freeze", kind="ims", rate=60.0, concurrency=4,
                ckpt_ms=200.0, bus_baud=115200, peer_baud=None, first=0, seeds=1)
    assert "no pacing in sync mode" in campaign.expectation("sync", "pacing")
    assert campaign.expectation("clock", "pacing") != campaign.expectation("sync", "pacing")
    run, skipped = campaign.cells(base, ("clockless", "sync"), ("replication",), ("none",))
    assert [p["mode"] for p in run] == ["clockless", "sync"] and not skipped
    # a slow bus: clockless is safe (the barrier), but the drills that expect writes at the
    # host's rate are skipped; the others run
    run, skipped = campaign.cells(dict(base, bus_baud=9600), ("clockless",), ("replication", "suspend"),
                                  ("none",))
    assert [(p["mode"], p["ops"]) for p in run] == [("clockless", None)]
    assert [c[:3] for c in skipped] == [("clockless", "suspend", "none")]


def test_campaign_usage_errors():
    for argv in (["sim", "campaign", "--modes", "warp"], ["sim", "campaign", "--ops", "teleport"],
                 ["sim", "campaign", "--faults", "meteor"], ["sim", "sweep", "--ops", "replication"],
                 ["sim", "--modes", "clock"], ["sim", "--ops", "master-restart", "--pairs", "1"],
                 ["sim", "sweep", "--ops", "suspend", "--pairs", "1", "--seeds", "2"],
                 ["sim", "campaign", "--ops", "master-restart", "--pairs", "1", "--seeds", "1"]):
        rc, _, err = _cli(argv)
        assert rc == 2 and "arcopy sim:" in err, (argv, err)


def test_sync_cells_judge_pacing_and_autosuspend_by_sync_mode_expectations():
    """Sync mode has no pacing (a completion waits for the ACK, however long the slow or held
    link takes), and a stalled sync pair's journal grows only by the checkpoint markers and
    the few writes that stall their transactions (about 7 entries a second here), not at the
    host's rate: those cells pass on sync semantics, safety judged as ever. Whether such a
    pair fills its journal before the link returns is the drawn outage's matter (seed 0:
    32 slots and a 4.5 s outage fill up, 22 markers and 10 writes, before or after the link
    returns depending on framing; the drill takes either), so the no-suspend case is seed 20:
    a 4.07 s outage, 40 slots, 29 used at most (21 markers, 8 writes), measured the same
    before and after the batch-trailer framing; a margin of 8 slots is required."""
    from host_tools.sim.drills import run_ops
    for op, seed in (("pacing", 0), ("autosuspend", 0), ("autosuspend", 20)):
        r = run_ops(op, seed=seed, mode="sync", faults="none")
        assert r["op_failures"] == [] and r["ok"], (op, seed, r["op_failures"])
        assert r["safety"]["violations"] == 0 and r["safety"]["lost_before_cut"] == 0
        if op == "pacing":
            assert r["ops"]["writes_paced"] == 0 and r["ops"]["writes_over_1ms"] > 0
            assert r["ops"]["latency_ms_max"] * 1000 > r["ops"]["pace_max_us"]  # ACK-bound, unpaced
        elif seed == 20:
            o = r["ops"]
            assert o["journal_peak_in_outage"] <= o["journal_slots"] - 8, o
            assert o["suspended_at_ms"] is None and o["writes_refused"] == 0
        else:
            assert r["ops"]["writes_refused"] == 0
    # the same drills in clock mode still hold pacing to its bound and expect the suspend
    r = run_ops("pacing", seed=0, mode="clock", faults="none")
    assert r["op_failures"] == [] and r["ops"]["writes_paced"] > 0
    assert r["ops"]["latency_ms_max"] * 1000 <= r["ops"]["pace_max_us"] + 2000
    r = run_ops("autosuspend", seed=0, mode="clock", faults="none")
    assert r["op_failures"] == [] and r["ops"]["suspend_reason"] == 4       # R_JOURNAL_FULL
