"""`arcopy provision` end to end against emulated boards: each a MicroPython unix-port REPL on a
pseudo-terminal with its own directory as its flash (host_tools/provision/unixboard.py), wired
by the rig's hub. mpremote copies the precompiled firmware and each board's config from the rig
file; the boards boot from exactly what was copied and run a short drill."""
import hashlib
import json
import os
import subprocess
import sys
import time

import pytest

from host_tools.cli import main as arcopy
from host_tools.rig import manager as rigmgr

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

RIG = """
[rig]
name = "unix-1x1"
vol_blocks = 64
journal_slots = 128
ckpt_interval_ms = 200

[[board]]
id = "p0"
role = "primary"
node = 1
peer = "s0"
hal = "unix"
port = "{d}/p0.usb"

[[board]]
id = "s0"
role = "secondary"
node = 129
peer = "p0"
hal = "unix"
port = "{d}/s0.usb"
"""
PEERS = {"p0": "s0", "s0": "p0"}


def _wait(pred, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


@pytest.fixture
def hardware(tmp_path):
    """The hub (site buses, peer links) and two emulated boards, stopped at the end."""
    d = str(tmp_path)
    procs = []
    hub_conf = {"state_file": os.path.join(d, "hub.state"), "bus_baud": 115200,
                "peer_baud": 115200, "peer_latency_us": 0,
                "boards": [{"name": n, "bus": n[0].upper(), "peer": PEERS[n],
                            "host_link": os.path.join(d, n + ".host")} for n in PEERS]}
    with open(os.path.join(d, "hub.json"), "w") as f:
        json.dump(hub_conf, f)
    env = dict(os.environ, PYTHONPATH=REPO)
    log = open(os.path.join(d, "hw.log"), "ab")
    procs.append(subprocess.Popen([sys.executable, "-m", "host_tools.rig.hub", "--config",
                                   os.path.join(d, "hub.json")], cwd=REPO, env=env, stdout=log,
                                  stderr=log))
    try:
        _wait(lambda: os.path.exists(hub_conf["state_file"]), 15, "the hub")
        with open(hub_conf["state_file"]) as f:
            ports = json.load(f)["ports"]
        for n in PEERS:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "host_tools.provision.unixboard", "--dir",
                 os.path.join(d, n + ".flash"), "--port", os.path.join(d, n + ".usb"),
                 "--bus", ports[n]["bus"], "--peer", ports[n]["peer"], "--name", n],
                cwd=REPO, env=env, stdout=log, stderr=log))
        _wait(lambda: all(os.path.lexists(os.path.join(d, n + ".usb")) for n in PEERS), 15,
              "the boards' serial ports")
        rig = os.path.join(d, "rig.toml")
        with open(rig, "w") as f:
            f.write(RIG.format(d=d))
        yield d, rig
    finally:
        for p in procs[::-1]:
            p.terminate()
        for p in procs[::-1]:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
        log.close()


def _sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_provision_unix_boards_then_a_drill(hardware, capsys):
    d, rig = hardware
    rig_dir = os.path.join(d, "rigdir")
    build = os.path.join(d, "build")
    assert arcopy(["provision", "--rig", rig, "--dir", rig_dir, "--build-dir", build,
                   "--jobs", "2"]) == 0
    out = capsys.readouterr().out
    assert "resume" in out and "check: STATUS ok" in out, out[-3000:]
    # every board's flash holds exactly what was built, and booted from it
    for n in PEERS:
        flash = os.path.join(d, n + ".flash")
        assert _sha(os.path.join(flash, "main.py")) == _sha(
            os.path.join(REPO, "boards", "unix", "boot_main.py"))
        for name in ("unix_hal.mpy", "firmware/node.mpy", "firmware/main.mpy"):
            assert _sha(os.path.join(flash, "fw", name)) == _sha(os.path.join(build, "fw", name))
        with open(os.path.join(flash, "config.json")) as f:
            conf = json.load(f)
        assert conf["board"] == n and conf["hal"] == "unix" and conf["config"]["vol_blocks"] == 64
    bench = rigmgr.load(rig_dir)
    assert bench["hardware"] and all(b["hal"] == "unix" for b in bench["boards"])
    # a short drill through the CLI, against the provisioned boards' host ports
    assert arcopy(["start-copy", "--dir", rig_dir]) == 0
    wl = subprocess.run([sys.executable, "-m", "host_tools.cli", "workload", "--dir", rig_dir,
                         "--kind", "random", "--rate", "20", "--duration", "2", "--no-progress",
                         "--json"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert wl.returncode == 0, wl.stderr[-2000:]
    assert json.loads(wl.stdout)["completed_ok"] > 20
    time.sleep(1.0)                 # a few checkpoints: the last writes are released
    assert arcopy(["failover", "--dir", rig_dir]) == 0
    capsys.readouterr()
    assert arcopy(["verify", "--dir", rig_dir, "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["consistent"] is True, res


def test_rig_file_checks_the_hal_of_each_board(tmp_path):
    from host_tools.provision.installer import RigFileError, parse_rig_file
    text = RIG.format(d=str(tmp_path))
    ok = parse_rig_file("rig.toml", text)
    assert [b["hal"] for b in ok["boards"]] == ["unix", "unix"]
    bad = text.replace('hal = "unix"\nport = "%s/s0.usb"' % tmp_path, 'hal = "esp32"\nport = "/dev/ttyACM1"')
    bad = bad.replace('port = "%s/p0.usb"' % tmp_path, 'port = "relative/p0.usb"')
    with pytest.raises(RigFileError) as e:
        parse_rig_file("rig.toml", bad)
    msgs = " | ".join(m for _, m in e.value.errors)
    assert "hal 'esp32': use one of rp2, unix" in msgs
    assert 'a hal = "unix" board is named by its pty' in msgs
