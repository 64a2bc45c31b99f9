"""The rig agent: `arcopy status --watch` and a workload on the same boards at once, no write lost; `rig down` leaves nothing."""
import json
import os
import stat
import subprocess
import sys
import time

import pytest

from host_tools.cli import main as arcopy
from host_tools.rig import agent as agentmod
from host_tools.rig import manager as rigmgr
from host_tools.transport import serial_client as sc
from host_tools.transport.serial_client import AgentPort, HostClient

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cli(*argv):
    rc = arcopy([str(a) for a in argv])
    assert rc == 0, "arcopy %s -> %r" % (" ".join(map(str, argv)), rc)


def cli_proc(*argv):
    return subprocess.Popen([sys.executable, "-m", "host_tools.cli"] + [str(a) for a in argv],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def json_docs(text):
    """Every complete JSON document of a stream of indented ones (the watcher is stopped with
    SIGTERM, which may cut the last one short)."""
    dec, i, out = json.JSONDecoder(), 0, []
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return out
        try:
            obj, i = dec.raw_decode(text, i)
        except json.JSONDecodeError:
            return out
        out.append(obj)


def rig_processes(d):
    """PIDs of live processes whose command line names rig directory d."""
    pids = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % p, "rb") as f:
                cmd = f.read()
            with open("/proc/%s/stat" % p) as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    continue
        except OSError:
            continue
        if d.encode() in cmd and b"host_tools.rig." in cmd:
            pids.append(int(p))
    return pids


@pytest.fixture
def rig_dir(tmp_path):
    d = str(tmp_path / "r")
    yield d
    try:
        rigmgr.down(rigmgr.load(d))
    except Exception:
        pass


def test_status_watch_during_a_workload_loses_no_write(rig_dir):
    d = rig_dir
    cli("rig", "up", "--dir", d, "--pairs", 2)
    rig = rigmgr.load(d)
    sock = rig["agent"]["socket"]
    assert os.path.dirname(sock) == d
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600          # owner only
    assert rigmgr.agent_alive(rig)
    cli("start-copy", "--dir", d)
    # the workload drives the primaries while a watcher and repeated `status` read every board
    wl = cli_proc("workload", "--dir", d, "--kind", "random", "--rate", 40, "--duration", 4,
                  "--no-progress", "--json")
    time.sleep(0.3)
    watch = cli_proc("status", "--dir", d, "--watch", "--json", "--interval", 0.2)
    polls = 0
    try:
        end = time.monotonic() + 3.0
        while time.monotonic() < end:
            p = cli_proc("status", "--dir", d, "--json")
            out, err = p.communicate(timeout=30)
            assert p.returncode == 0, err.decode()
            polls += 1
        out, err = wl.communicate(timeout=60)
    finally:
        for p in (wl, watch):
            if p.poll() is None:
                p.terminate()
        wout, _ = watch.communicate(timeout=10)
    assert wl.returncode == 0, err.decode()[-2000:]
    summ = json.loads(out)
    assert summ["issued"] > 100 and summ["failed"] == 0 and summ["in_flight"] == 0, summ
    rounds = json_docs(wout.decode())
    assert len(rounds) >= 5, wout.decode()[-2000:]
    for r in rounds:               # every board answered every round of the watcher
        for pair in r.values():
            assert all(v is not None for v in pair["boards"].values()), pair
    assert polls >= 2
    # the agent multiplexed them: one process held the ports the whole time
    with HostClient(rig["boards"][0]["host"]) as c:
        assert isinstance(c.ser, AgentPort)
        t0 = time.perf_counter()
        for _ in range(50):
            c.status()
        per = (time.perf_counter() - t0) / 50
    print("STATUS through the agent: %.2f ms per request" % (per * 1000))


def test_rig_down_stops_the_agent_and_leaves_no_process(rig_dir):
    d = rig_dir
    cli("rig", "up", "--dir", d, "--pairs", 1)
    rig = rigmgr.load(d)
    pid = rig["agent"]["pid"]
    assert sc.agent_for(rig["boards"][0]["host"])[1] == rig["boards"][0]["name"]
    assert len(rig_processes(d)) == 4                  # hub, 2 boards, agent
    # a board restarted under the agent is reached again through it
    cli("rig", "restart", "--dir", d, "p0")
    with HostClient(rigmgr.board(rigmgr.load(d), "p0")["host"]) as c:
        assert isinstance(c.ser, AgentPort) and c.status()["node"] == 1
    cli("rig", "down", "--dir", d)
    assert not rigmgr.pid_alive(pid)
    assert rig_processes(d) == []
    assert not os.path.exists(agentmod.socket_path(d))
    assert sc.agent_for(rig["boards"][0]["host"]) is None
