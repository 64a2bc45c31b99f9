"""Exit codes and signals of the real `arcopy` CLI: one table of commands, codes and one-line errors; SIGINT exits 130."""
# Exit codes and signals of the real `arcopy` CLI: one table of commands, their exit codes
# and one-line errors without a traceback; Ctrl-C (SIGINT) exits 130 with one line saying
# what keeps running and leaves no process behind.
#
# Rigs come up once per module (one live, one brought up and taken down again, so that
# its rig file names boards that are not running); a finalizer takes them down.
import os
import signal
import subprocess
import sys
import time

import pytest

from host_tools.rig import manager as rigmgr

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NO_TRACEBACK = "Traceback"


def arcopy(*argv, env=None, timeout=60):
    """Run `python -m host_tools.cli ARGV`; -> CompletedProcess (text)."""
    e = dict(os.environ)
    e.pop("ARCOPY_DEBUG", None)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "host_tools.cli"] + [str(a) for a in argv],
                          cwd=REPO, capture_output=True, text=True, timeout=timeout, env=e)


def spawn(*argv, env=None):
    e = dict(os.environ)
    e.pop("ARCOPY_DEBUG", None)
    e.update(env or {})
    return subprocess.Popen([sys.executable, "-m", "host_tools.cli"] + [str(a) for a in argv],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=e)


def children(pid):
    """Live descendants of `pid` (from /proc)."""
    parent = {}
    for x in os.listdir("/proc"):
        if not x.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % x) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            parent[int(x)] = int(fields[1])
    out, todo = set(), [pid]
    while todo:
        p = todo.pop()
        for c, pp in parent.items():
            if pp == p and c not in out:
                out.add(c)
                todo.append(c)
    return out


def alive(pids):
    out = []
    for p in pids:
        try:
            with open("/proc/%d/stat" % p) as f:
                if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                    out.append(p)
        except OSError:
            pass
    return out


def rig_processes(d):
    """Names of the processes of the rig in `d` that are alive."""
    try:
        rig = rigmgr.load(d)
    except rigmgr.RigError:
        return []
    return [r["name"] for r in rigmgr.listing(rig) if r["alive"]]


@pytest.fixture(scope="module")
def rigs(tmp_path_factory):
    base = tmp_path_factory.mktemp("exits")
    live, dead, empty = str(base / "live"), str(base / "dead"), str(base / "empty")
    os.makedirs(empty)
    made = [live, dead]
    try:
        for d in made:
            r = arcopy("rig", "up", "--dir", d, "--pairs", 2, "--vol-blocks", 64)
            assert r.returncode == 0, r.stderr
        assert arcopy("start-copy", "--dir", live).returncode == 0
        assert arcopy("rig", "down", "--dir", dead).returncode == 0
        toml = base / "missing-port.toml"
        with open(os.path.join(REPO, "boards", "rig.sample.toml")) as f:
            toml.write_text(f.read().replace('serial = "E6614103E7A52F2B"',
                                             'port = "/dev/ttyNOSUCH0"'))
        yield {"live": live, "dead": dead, "empty": empty, "toml": str(toml),
               "build": str(base / "build")}
    finally:
        for d in made:
            try:
                rigmgr.down(rigmgr.load(d))
            except Exception:
                pass


# argv (placeholders {live} {dead} {empty} {toml} {build}), exit code, text stderr must hold
CASES = [
    (["--version"], 0, ""),
    ([], 2, ""),
    (["status", "--watch", "--interval", "-1"], 2, "--interval"),
    (["rig", "up", "--dir", "{empty}", "--vol-blocks", "0"], 2, "--vol-blocks"),
    (["rig", "up", "--dir", "{empty}", "--set", "p0.nosuch=3"], 2, "nosuch"),
    (["rig", "up", "--dir", "{empty}", "--set", "p0.window=99"], 2, "window"),
    (["workload", "--dir", "{live}", "--rate", "-5"], 2, "--rate"),
    (["sim", "--seeds", "5"], 2, "sim sweep"),
    (["suspend", "--dir", "{live}", "--pair", "p9"], 2, "no pair 'p9'"),
    (["failback", "--dir", "{live}", "--pair", "1"], 2, "every pair at once"),
    (["status", "--dir", "{empty}"], 1, "no rig in"),
    (["status", "--dir", "{live}"], 0, ""),
    (["status", "--dir", "{dead}"], 1, "not answering: p0, p1, s0, s1"),
    (["start-copy", "--dir", "{dead}", "--timeout", "1"], 1, ""),
    (["suspend", "--dir", "{dead}", "--pair", "0"], 1, ""),
    (["delete-pair", "--dir", "{dead}", "--all"], 1, ""),
    (["set-policy", "freeze", "--dir", "{dead}"], 1, ""),
    (["workload", "--dir", "{dead}", "--duration", "0.5", "--no-progress"], 1, "p0"),
    (["failover", "--dir", "{dead}", "--settle", "0.5"], 1, ""),
    (["verify", "--dir", "{dead}"], 1, ""),
    (["workload", "--dir", "{live}", "--to", "secondaries", "--duration", "0.5", "--no-progress"],
     1, "READ_ONLY"),
    (["set-mode", "sync", "--dir", "{dead}"], 1, "p0 no reply"),
    (["set-mode", "sync", "--dir", "{dead}", "--pair", "1"], 2, "--pair"),
    (["provision", "--rig", "{toml}", "--board", "p1", "--build-dir", "{build}", "--dir", "{empty}"],
     1, "/dev/ttyNOSUCH0"),
]


@pytest.mark.parametrize("argv,code,text", CASES, ids=[" ".join(c[0]) or "(none)" for c in CASES])
def test_exit_codes_and_one_line_errors(rigs, argv, code, text):
    r = arcopy(*[a.format(**rigs) for a in argv])
    assert r.returncode == code, (r.returncode, r.stdout[-1500:], r.stderr[-1500:])
    assert NO_TRACEBACK not in r.stderr and NO_TRACEBACK not in r.stdout, r.stderr
    assert text in r.stderr, r.stderr
    if code == 1 and "{live}" not in " ".join(argv):
        # an error is said in few lines, each naming what failed
        assert r.stderr.strip(), "exit 1 without a word on stderr"
    assert not rig_processes(rigs["empty"])             # nothing half brought up stays


def _interrupt(p, after_s, ready=None):
    """Let `p` run `after_s` (or until ready() is true), SIGINT it. -> (out, err, descendants)."""
    end = time.monotonic() + after_s
    while time.monotonic() < end and p.poll() is None and not (ready and ready()):
        time.sleep(0.05)
    assert p.poll() is None, p.communicate()
    kids = children(p.pid)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=30)
    return out, err, kids


def _one_line(err):
    lines = [x for x in err.splitlines() if x.strip()]
    assert NO_TRACEBACK not in err, err
    assert len(lines) == 1 and "interrupted" in lines[0], err
    return lines[0]


def test_sigint_during_start_copy_says_the_copy_continues(rigs):
    d = rigs["live"]
    r = arcopy("delete-pair", "--dir", d, "--pair", "s0", "--json")     # by a board's name
    assert r.returncode == 0 and '"p0": "OK"' in r.stdout, r.stderr
    p = spawn("start-copy", "--dir", d, "--full", "--pair", "0")         # 64 blocks: ~3 s
    out, err, kids = _interrupt(p, 1.5)
    assert p.returncode == 130
    err = err.replace("--pair 0: pair 0 (p0 -> s0)\n", "")
    assert "the copy continues on the boards" in _one_line(err)
    assert not alive(kids)
    assert len(rig_processes(d)) == 6            # the rig itself runs on (4 boards, hub, agent)


def test_sigint_during_a_sweep_stops_its_workers():
    p = spawn("sim", "sweep", "--seeds", "500", "--jobs", "2", "--faults", "none")
    end = time.monotonic() + 20
    while time.monotonic() < end and len(children(p.pid)) < 2:     # the workers run
        time.sleep(0.05)
    time.sleep(0.5)
    out, err, kids = _interrupt(p, 0)
    assert p.returncode == 130
    assert "nothing keeps running" in _one_line(err)
    assert len(kids) >= 2
    time.sleep(0.3)
    assert not alive(kids)


def test_sigint_during_demo_takes_its_rig_down(tmp_path):
    d = str(tmp_path / "demo")
    p = spawn("demo", "--dir", d, "--pairs", 1, "--duration", 30, "--disaster-at", 29,
              "--no-progress")
    try:
        end = time.monotonic() + 20
        while time.monotonic() < end and len(rig_processes(d)) < 4:    # p0, s0, hub, agent
            time.sleep(0.05)
        time.sleep(2.0)                          # start copy done: the workload runs
        out, err, kids = _interrupt(p, 0)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, err
    assert "nothing keeps running" in _one_line(err)
    assert not alive(kids) and not rig_processes(d)


def test_demo_keep_says_what_keeps_running_and_how_to_stop_it(tmp_path):
    d = str(tmp_path / "kept")
    try:
        r = arcopy("demo", "--dir", d, "--pairs", 1, "--duration", 1.5, "--disaster-at", 1,
                   "--keep", "--no-progress", timeout=90)
        assert r.returncode == 0, r.stderr[-2000:]
        running = rig_processes(d)
        assert set(running) >= {"s0", "hub"}
        line = [x for x in r.stdout.splitlines() if x.startswith("kept running:")]
        assert line and "arcopy rig down --dir %s" % d in line[0], r.stdout[-1500:]
        for name in running:
            assert name in line[0]
    finally:
        arcopy("rig", "down", "--dir", d)
    assert not rig_processes(d)


def test_sigint_during_rig_up_leaves_no_process(tmp_path):
    d = str(tmp_path / "half")
    p = spawn("rig", "up", "--dir", d, "--pairs", 4)
    end = time.monotonic() + 10
    while time.monotonic() < end and not os.path.exists(os.path.join(d, "hub.state")):
        time.sleep(0.01)                         # the hub runs; the boards are starting
    out, err, kids = _interrupt(p, 0)
    assert p.returncode in (0, 130), err          # 0: it finished before the signal came
    if p.returncode == 130:
        assert "nothing keeps running" in _one_line(err)
        time.sleep(0.3)
        assert not rig_processes(d)
    else:
        arcopy("rig", "down", "--dir", d)
    assert not alive(kids)
