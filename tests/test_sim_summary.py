"""`arcopy sim sweep` summaries: safety and liveness apart, failing seeds with class and replay."""
import json
import random
import types

from host_tools.cmds import sim as simcli
from host_tools.sim.bus import Bus
from host_tools.sim.link import SerialLink
from host_tools.sim.scheduler import Scheduler


def drill(seed, violations=0, lost=0, no_image=0, no_image_yet=0, timeouts=0, no_common_cut=False):
    s_bad = bool(violations or lost)
    l_bad = bool(no_image or timeouts or no_common_cut)
    return {
        "seed": seed, "pairs": 4, "mode": "clock", "faults": ["disaster", "loss"],
        "consistent": not s_bad, "violations": [], "violations_total": violations,
        "lost_before_released_checkpoint": list(range(lost)), "writes_completed": 10,
        "writes_recovered": 8, "rpo_ms": 100.0, "sim_seconds": 7.0,
        "safety": {"violations": violations, "lost_before_cut": lost},
        "liveness": {"no_image": no_image, "no_image_yet": no_image_yet, "timeouts": timeouts,
                     "no_common_cut": no_common_cut},
        "ok": not (s_bad or l_bad),
        "verdict": {(False, False): "ok", (True, False): "safety", (False, True): "liveness",
                    (True, True): "safety+liveness"}[(s_bad, l_bad)],
    }


ARGS = types.SimpleNamespace(ops=None, pairs=4, duration=None, faults="all", mode="clock",
                             policy="freeze", kind="ims", rate=60.0, concurrency=4, ckpt_ms=200.0,
                             bus_baud=115200, peer_baud=None, json=False)


def sweep_report(capsys, results, **kw):
    a = types.SimpleNamespace(**dict(vars(ARGS), **kw))
    rc = simcli.report(a, results, [r["seed"] for r in results], 1, 1.0)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_safety_and_liveness_are_summed_apart(capsys):
    results = [drill(0), drill(1, violations=2, lost=1), drill(2, no_image=1, timeouts=2),
               drill(3, violations=1, no_common_cut=True), drill(4, no_image_yet=2)]
    rc, out, err = sweep_report(capsys, results)
    assert rc == 1
    assert "failing seeds       3" in out
    assert "safety              2 seed(s) failing: 3 violation(s), 1 acknowledged write(s) lost" in out
    assert ("liveness            2 seed(s) failing: 1 pair(s) without a recoverable image, 2 timeout(s), "
            "1 seed(s) with no common cut") in out
    assert "no image yet        2 pair(s) in 1 seed(s)" in out
    fails = [l for l in err.splitlines() if l.startswith("FAIL seed")]
    assert [l.split()[2] for l in fails] == ["1", "2", "3"]
    assert "(safety;" in fails[0] and "(liveness;" in fails[1] and "(safety+liveness;" in fails[2]
    for line in fails:
        assert line.split(": ", 1)[1].startswith("arcopy sim --seed ")


def test_no_image_yet_alone_is_not_a_failure(capsys):
    rc, out, err = sweep_report(capsys, [drill(0, no_image_yet=3), drill(1)])
    assert rc == 0 and "failing seeds       0" in out and not err


def test_json_report_has_safety_and_liveness(capsys):
    results = [drill(5, lost=2), drill(6, timeouts=1, no_image_yet=1),
               {"seed": 7, "consistent": False, "exception": "ValueError('x: y')", "traceback": "",
                "faults": [], "ok": False, "verdict": "exception"}]
    rc, out, _ = sweep_report(capsys, results, json=True)
    assert rc == 1
    s = json.loads(out)
    assert s["safety"] == {"failing_seeds": 1, "seeds": [5], "violations": 0, "lost_before_cut": 2,
                         "sites_differ": 0}
    assert s["liveness"]["failing_seeds"] == 1 and s["liveness"]["seeds"] == [6]
    assert s["liveness"]["timeouts"] == 1 and s["liveness"]["no_image_yet"] == 1
    assert s["exceptions"] == [7]
    assert [(f["seed"], f["class"]) for f in s["failures"]] == [(5, "safety"), (6, "liveness"),
                                                               (7, "exception")]
    assert all(f["replay"].startswith("arcopy sim --seed %d " % f["seed"]) for f in s["failures"])
    assert ": " not in s["failures"][2]["why"]


def test_bus_and_link_on_send_hooks_see_every_send():
    sched = Scheduler()
    bus = Bus(sched, 115200, random.Random(1))
    got = []
    bus.attach(1, lambda d: None)
    bus.attach(2, lambda d: None)
    bus.set_up(1, True)
    bus.on_send = lambda sid, data: got.append(("bus", sid, bytes(data)))
    bus.send(1, b"abc")
    link = SerialLink(sched, 115200, random.Random(2))
    link.on_send = lambda side, data: got.append(("link", side, bytes(data)))
    link.send(1, b"xy")
    bus.on_send = link.on_send = None
    bus.send(1, b"zz")
    link.send(0, b"zz")
    assert got == [("bus", 1, b"abc"), ("link", 1, b"xy")]
