"""Sweep engines: the local process pool and Ray give identical summaries; clear one-line errors; nothing left behind."""
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time

import pytest

from host_tools.sim import campaign, engines
from host_tools.sim import sweep as simsweep
from inproc import cli as _cli, seedless as _seedless

HAVE_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAVE_RAY, reason="ray is not importable (the ray extra, part of "
                                                   "the dev extra, is not installed)")
SWEEP = ["sim", "sweep", "--seeds", "20", "--faults", "loss,crash", "--duration", "2"]




def _procs_with_env(text):
    """Pids of live processes whose environment holds `text`."""
    pids = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open("/proc/%s/environ" % pid, "rb") as f:
                if text.encode() in f.read():
                    pids.append(int(pid))
        except OSError:
            pass
    return pids


@pytest.fixture
def private_env(monkeypatch):
    """HOME and TMPDIR in a fresh short directory (ray's sockets live under its temp dir), so
    the test shows what a run leaves under the user's home and which processes outlive it."""
    root = tempfile.mkdtemp(prefix="at", dir="/tmp")      # short: see engines._SOCKET_DIR_MAX
    home, tmp = os.path.join(root, "h"), os.path.join(root, "t")
    os.makedirs(home)
    os.makedirs(tmp)
    monkeypatch.setenv("HOME", home)
    monkeypatch.setenv("TMPDIR", tmp)
    monkeypatch.setattr(tempfile, "tempdir", None)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    yield home, tmp
    left = _procs_with_env("TMPDIR=" + tmp)
    for pid in left:                         # never leave them running, even when failing
        try:
            os.kill(pid, 9)
        except OSError:
            pass
    shutil.rmtree(root, ignore_errors=True)
    assert not left, "processes outlived the command: %s" % left


def _no_survivors(tmp, wait_s=10.0):
    end = time.monotonic() + wait_s
    while _procs_with_env("TMPDIR=" + tmp) and time.monotonic() < end:
        time.sleep(0.2)
    return _procs_with_env("TMPDIR=" + tmp)


@needs_ray
def test_local_and_ray_engines_give_identical_summaries(tmp_path, private_env):
    home, tmp = private_env
    local, ray = str(tmp_path / "local.json"), str(tmp_path / "ray.json")
    rc1, out1, err1 = _cli(SWEEP + ["--jobs", "2", "--json-out", local])
    rc2, out2, err2 = _cli(SWEEP + ["--engine", "ray", "--workers", "2", "--json-out", ray])
    assert "ray cluster (local), 2 worker(s)" in out2, out2 + err2
    a, b = json.load(open(local)), json.load(open(ray))
    assert _seedless(a["summary"]) == _seedless(b["summary"])
    strip = lambda recs: [{k: v for k, v in r.items() if k != "wall_seconds"} for r in recs]
    assert strip(a["records"]) == strip(b["records"]) and len(a["records"]) == 20
    assert a["summary"]["execution"]["engine"] == "local"
    assert b["summary"]["execution"] == dict(b["summary"]["execution"], engine="ray", jobs=2)
    # the same failing seeds and replay lines on stderr, the same exit status (ray itself may
    # log a warning on a loaded machine: only arcopy's lines are compared)
    ours = lambda err: [l for l in err.splitlines() if l.startswith(("FAIL ", "arcopy"))]
    assert rc1 == rc2 and ours(err1) == ours(err2)
    assert out1.splitlines()[1:-1] == out2.splitlines()[1:-1]
    # nothing under the user's home, no temporary directory kept, no process left
    assert os.listdir(home) == [] and os.listdir(tmp) == []
    assert not _no_survivors(tmp)


def test_campaign_and_sweep_take_any_engine_through_one_code_path():
    """An engine only yields results in task order; records and totals are made after it.
    An engine that runs the tasks in reverse gives the same campaign as the local pool."""
    class Reversed(engines.Local):
        def results(self, tasks):
            out = [simsweep.run_one(kw) for kw in reversed(tasks)]
            return iter(out[::-1])

        def execution(self):
            return {"engine": "reversed", "jobs": 1}

    base = simsweep.params_of(type("A", (), {})(), first=3, seeds=2)
    base["duration"] = 2.0
    kw = dict(seeds=2, modes=("clock",), ops=("replication",), faults=("none", "loss"))
    c1 = campaign.run_campaign(base, jobs=2, **kw)
    c2 = campaign.run_campaign(base, engine=Reversed(), **kw)
    assert c2["execution"] == {"engine": "reversed", "jobs": 1}
    for x, y in zip(c1["cells"], c2["cells"]):
        assert _seedless(x["summary"]) == _seedless(y["summary"])
        assert [r["seed"] for r in y["records"]] == [3, 4]
    assert c1["totals"] == c2["totals"] and c1["failures"] == c2["failures"]


def test_ray_not_installed_is_one_line_exit_2(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)          # `import ray` raises ImportError
    for argv in (["sim", "sweep", "--seeds", "2", "--engine", "ray"],
                 ["sim", "campaign", "--seeds", "1", "--modes", "clock", "--ops", "replication",
                  "--faults", "none", "--engine", "ray"]):
        rc, out, err = _cli(argv)
        assert rc == 2 and out == "", err
        assert err.splitlines() == ["arcopy sim: the ray engine needs the ray package: "
                                    "install the ray extra: pip install -c constraints.txt "
                                    "-e '.[ray]'"]


@needs_ray
def test_unreachable_cluster_is_one_line_exit_1(private_env):
    t0 = time.monotonic()
    rc, out, err = _cli(["sim", "sweep", "--seeds", "2", "--engine", "ray", "--address",
                         "127.0.0.1:1"])
    assert rc == 1 and out == "" and time.monotonic() - t0 < 10
    assert len(err.splitlines()) == 1 and err.startswith("arcopy sim: no ray cluster at 127.0.0.1:1: ")


def test_engine_usage_errors():
    for argv, text in (
            (["sim", "sweep", "--workers", "2"], "--workers and --address are the ray engine's"),
            (["sim", "sweep", "--address", "h:1"], "--workers and --address are the ray engine's"),
            (["sim", "sweep", "--engine", "ray", "--jobs", "2"], "--jobs is the local engine's"),
            (["sim", "sweep", "--engine", "ray", "--workers", "2", "--address", "h:1"],
             "--workers sizes a local cluster"),
            (["sim", "sweep", "--engine", "ray", "--address", "nowhere"], "not HOST:PORT"),
            (["sim", "--engine", "ray"], "run only with `arcopy sim sweep`"),
            (["sim", "campaign", "--engine", "ray", "--jobs", "2"], "--jobs is the local engine's")):
        rc, out, err = _cli(argv)
        assert rc == 2 and len(err.splitlines()) == 1 and text in err, (argv, err)


@needs_ray
@pytest.mark.slow
def test_ray_engine_joins_a_running_cluster(tmp_path, private_env):
    """`ray start --head`, then `--address`: the same summary as the local engine."""
    import subprocess
    home, tmp = private_env
    ray_bin = os.path.join(os.path.dirname(sys.executable), "ray")
    port = "6391"
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
    try:
        p = subprocess.run([ray_bin, "start", "--head", "--port", port, "--num-cpus", "2",
                            "--include-dashboard=false", "--temp-dir", os.path.join(tmp, "r")],
                           env=env, capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
        out = str(tmp_path / "joined.json")
        rc, text, err = _cli(SWEEP[:3] + ["8", "--duration", "2", "--faults", "loss", "--engine",
                                          "ray", "--address", "127.0.0.1:" + port, "--json-out", out])
        rc2, _, err2 = _cli(SWEEP[:3] + ["8", "--duration", "2", "--faults", "loss",
                                         "--json-out", str(tmp_path / "l.json")])
    finally:                                 # stop the head node: its processes, by pid
        for sig in (15, 9):
            for pid in _procs_with_env("TMPDIR=" + tmp):
                try:
                    os.kill(pid, sig)
                except OSError:
                    pass
            _no_survivors(tmp, 5.0)
    assert "ray cluster 127.0.0.1:%s, 2 worker(s)" % port in text, text + err
    a, b = json.load(open(out)), json.load(open(str(tmp_path / "l.json")))
    ours = lambda err: [l for l in err.splitlines() if l.startswith(("FAIL ", "arcopy"))]
    assert _seedless(a["summary"]) == _seedless(b["summary"]) and rc == rc2
    assert ours(err) == ours(err2)
