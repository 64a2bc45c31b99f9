"""`arcopy sim sweep --shard I/N` and `arcopy sim merge`: shards merge into the summary of one sweep."""
import json

from host_tools.sim import sweep as simsweep
from inproc import cli as _cli, seedless as _seedless

SWEEP = ["sim", "sweep", "--seeds", "12", "--faults", "loss", "--duration", "3", "--jobs", "2"]




def _shards(tmp_path, argv=SWEEP, n=3):
    paths = []
    for i in range(1, n + 1):
        path = str(tmp_path / ("s%d.json" % i))
        rc, out, err = _cli(argv + ["--shard", "%d/%d" % (i, n), "--json-out", path])
        assert rc in (0, 1), err
        assert "shard %d/%d" % (i, n) in out
        paths.append(path)
    return paths


def test_shards_merge_into_the_summary_of_one_sweep(tmp_path):
    full = str(tmp_path / "full.json")
    rc, out, err = _cli(SWEEP + ["--json", full])           # --json FILE: the result file, text printed
    assert "failing seeds" in out
    paths = _shards(tmp_path)
    seeds = [json.load(open(p))["seeds"] for p in paths]
    assert seeds == [[0, 3, 6, 9], [1, 4, 7, 10], [2, 5, 8, 11]]
    merged = str(tmp_path / "merged.json")
    rc2, out2, err2 = _cli(["sim", "merge"] + paths[::-1] + ["--json-out", merged])
    assert rc2 == rc and err2 == err
    assert "12 (0..11), 3 shard(s) merged" in out2
    a, b = json.load(open(full)), json.load(open(merged))
    assert _seedless(a["summary"]) == _seedless(b["summary"])
    assert a["params"] == b["params"] and a["seeds"] == b["seeds"] == list(range(12))
    strip = lambda recs: [{k: v for k, v in r.items() if k != "wall_seconds"} for r in recs]
    assert strip(a["records"]) == strip(b["records"])
    # the printed JSON summaries agree too
    rc3, out3, _ = _cli(["sim", "merge", "--json-out", str(tmp_path / "m2.json")] + paths + ["--json"])
    rc4, out4, _ = _cli(["sim", "merge", full, "--json"])
    assert _seedless(json.loads(out3)) == _seedless(json.loads(out4)) == _seedless(a["summary"])


def test_merge_keeps_failing_seeds_and_replay_commands(tmp_path):
    """Records carry the verdict, counts and replay line: merged failures are the sweep's."""
    p = simsweep.params_of(type("A", (), {})(), first=0, seeds=4)
    def rec(seed, bad):
        r = {"seed": seed, "ok": not bad, "verdict": "liveness" if bad else "ok", "faults": ["loss"],
             "safety": {"violations": 0, "lost_before_cut": 0},
             "liveness": {"no_image": int(bad), "no_image_yet": 0, "timeouts": 0, "no_common_cut": False},
             "writes_completed": 10, "writes_recovered": 9, "rpo_ms": 5.0, "sim_seconds": 6.0}
        return simsweep.compact(r, p)
    recs = [rec(s, s in (1, 2)) for s in range(4)]
    files = []
    for i, n in ((1, 2), (2, 2)):
        part = [r for r in recs if r["seed"] % 2 == i - 1]
        f = simsweep.result_file(p, (i, n), part, simsweep.build_summary(p, part, 0.0))
        path = str(tmp_path / ("p%d.json" % i))
        simsweep.write_json(path, f)
        files.append(path)
    rc, out, err = _cli(["sim", "merge"] + files + ["--json"])
    s = json.loads(out)
    assert rc == 1 and s["failing_seeds"] == [1, 2] and s["liveness"]["no_image"] == 2
    assert s == dict(simsweep.build_summary(p, recs, 0.0), wall_seconds=s["wall_seconds"],
                     execution=s["execution"])
    assert [l.split(": ", 1)[1] for l in err.splitlines()] == [
        "arcopy sim --seed 1 --pairs 4 --duration 6 --faults all --mode clock",
        "arcopy sim --seed 2 --pairs 4 --duration 6 --faults all --mode clock"]


def test_merge_errors(tmp_path):
    small = ["sim", "sweep", "--seeds", "4", "--faults", "none", "--duration", "2", "--jobs", "1"]
    s1, s2 = _shards(tmp_path, small, 2)
    rc, out, err = _cli(["sim", "merge", s1])
    assert rc == 1 and not out
    assert err.strip() == ("arcopy sim: 2 seed(s) missing (1, 3): shard(s) 2 of 2 not given or "
                           "incomplete")
    rc, _, err = _cli(["sim", "merge", s1, s2, s2])
    assert rc == 1 and "seed 1 is in both" in err and "given twice" in err
    assert len(err.strip().splitlines()) == 1
    other = str(tmp_path / "other.json")
    _cli(small + ["--rate", "30", "--shard", "2/2", "--json-out", other])
    rc, _, err = _cli(["sim", "merge", s1, other])
    assert rc == 1 and "not shards of the same sweep: rate 60.0 vs 30.0" in err
    split3 = str(tmp_path / "split3.json")
    _cli(small + ["--shard", "2/3", "--json-out", split3])
    rc, _, err = _cli(["sim", "merge", s1, split3])
    assert rc == 1 and "shard 1/2" in err and "shard 2/3" in err
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    for argv, text in ((["sim", "merge"], "needs one or more result files"),
                       (["sim", "merge", str(tmp_path / "none.json")], "cannot read"),
                       (["sim", "merge", str(bad)], "is not a sweep result file"),
                       (["sim", "merge", s1, s2, "--json-out", s1], "is one of the shard files"),
                       (small + ["--shard", "1/2"], "--shard needs --json-out")):
        rc, _, err = _cli(argv)
        assert rc == 2 and text in err, (argv, err)
