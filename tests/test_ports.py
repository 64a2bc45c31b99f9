"""Ports: pyserial URLs everywhere, exclusive opening ("port busy (held by PID ...)"), the hub's loopback TCP host ports and a drill through socket://."""
import os
import re
import subprocess
import sys
import tty

import pytest

from test_rig_e2e import cli, rig as rigs  # noqa: F401  (rigs: the rig factory fixture)
from host_tools.provision import installer as provision
from host_tools.rig import manager as rigmgr
from host_tools.rig import session as rigops
from host_tools.transport import serial_client as sc
from host_tools.transport.serial_client import HostClient, PortBusy, SerialTransport

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def listening(port):
    """(address, port) of the LISTEN socket on TCP `port`, from /proc/net/tcp."""
    with open("/proc/net/tcp") as f:
        for line in f.read().splitlines()[1:]:
            x = line.split()
            a, p = x[1].split(":")
            if int(p, 16) == port and x[3] == "0A":
                ip = ".".join(str(int(a[i:i + 2], 16)) for i in (6, 4, 2, 0))
                return ip, port
    return None


def test_a_local_port_is_held_by_one_program(tmp_path):
    m, s = os.openpty()
    tty.setraw(s)
    path = os.ttyname(s)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom host_tools.transport.serial_client import "
         "HostClient\nc = HostClient(sys.argv[1])\nprint('held', flush=True)\ntime.sleep(30)", path],
        cwd=REPO, stdout=subprocess.PIPE, env=dict(os.environ, PYTHONPATH=REPO))
    try:
        assert holder.stdout.readline().strip() == b"held"
        with pytest.raises(PortBusy, match=r"port busy \(held by PID %d " % holder.pid):
            HostClient(path)
        with pytest.raises(PortBusy, match="port busy"):
            SerialTransport({"x": path}).client("x")
    finally:
        holder.kill()
        holder.wait()
    # free again; one process may open a port it holds twice (its clients share the lock)
    with HostClient(path) as a, HostClient(path) as b:
        assert a.ser.fileno() != b.ser.fileno()
    os.close(m)
    os.close(s)


def test_provisioning_takes_pyserial_urls():
    for good in ("socket://127.0.0.1:4000", "rfc2217://127.0.0.1:2217", "socket://localhost:7"):
        assert provision.PORT_RE.match(good), good
    for bad in ("socket://", "http://127.0.0.1:80", "socket://127.0.0.1", "socket://a b:1"):
        assert not provision.PORT_RE.match(bad), bad
    with open(os.path.join(REPO, "boards", "rig.sample.toml")) as f:
        text = f.read()
    first = re.search(r'serial = "[0-9A-F]{16}"', text).group(0)
    bench = provision.parse_rig_file("x.toml", text.replace(first, 'port = "socket://127.0.0.1:4000"', 1))
    b = [b for b in bench["boards"] if b["port"]][0]
    assert provision.connect_args(b) == ["connect", "port:socket://127.0.0.1:4000"]
    assert provision.connect_args(dict(b, port="/dev/ttyACM0")) == ["connect", "/dev/ttyACM0"]


def test_tcp_host_ports_on_loopback_carry_a_drill(rigs, capsys):
    rig = rigs("t", "--pairs", 2, "--tcp", "--no-agent")
    assert "warning" not in capsys.readouterr().err
    d = rig["dir"]
    for b in rig["boards"]:
        m = re.match(r"^socket://127\.0\.0\.1:(\d+)$", b["host"])
        assert m, b["host"]
        assert listening(int(m.group(1))) == ("127.0.0.1", int(m.group(1)))
        assert os.path.islink(b["host_path"])
    # one client per TCP port; the board's pty is held by the hub
    url = rig["boards"][0]["host"]
    probe = ("import sys\nfrom host_tools.transport.serial_client import HostClient\n"
             "try:\n    HostClient(sys.argv[1]).status()\nexcept Exception as e:\n    print(e)")
    with HostClient(url) as c, HostClient(url) as c2:    # one process may share its port
        assert c.status()["node"] == 1 and c2.status()["node"] == 1
        out = subprocess.run([sys.executable, "-c", probe, url], cwd=REPO, capture_output=True,
                             env=dict(os.environ, PYTHONPATH=REPO), timeout=30).stdout.decode()
        assert "port busy (held by PID %d)" % os.getpid() in out, out
    with pytest.raises(PortBusy, match=r"held by PID %d " % rig["hub"]["pid"]):
        HostClient(rig["boards"][0]["host_path"])
    # the drill, every command through socket:// ports
    cli("start-copy", "--dir", d)
    cli("workload", "--dir", d, "--kind", "ims", "--rate", 30, "--duration", 2, "--no-progress")
    cli("disaster", "--dir", d)
    cli("failover", "--dir", d)
    rep, stats = rigops.verify(rigmgr.load(d))
    assert stats["failed"] == 0
    assert rep.consistent and rep.writes_completed > 30, rep.summary()
    hub = rigmgr.hub_call(rig, {"cmd": "stats"})["host_tcp"]
    assert hub["s0"]["accepted"] > 1 and hub["p0"]["refused_busy"] == 1
    # a board down refuses connections; restarted, it is served on the same URL
    with pytest.raises(Exception, match="refused"):
        HostClient(url)
    cli("rig", "restart", "--dir", d, "p0")
    with HostClient(url) as c:
        assert c.status()["node"] == 1


def test_another_bind_address_takes_an_option_and_warns(rigs, capsys):
    rig = rigs("w", "--pairs", 1, "--tcp", "--bind", "127.0.0.2")
    err = capsys.readouterr().err
    assert "warning" in err and "127.0.0.2" in err and "destructive" in err
    url = rig["boards"][1]["host"]
    assert url.startswith("socket://127.0.0.2:")
    assert listening(int(url.rsplit(":", 1)[1]))[0] == "127.0.0.2"
    with HostClient(url) as c:                  # through the rig agent, which holds the URL
        assert isinstance(c.ser, sc.AgentPort) and c.status()["node"] == 129
    assert rigmgr.hub_call(rig, {"cmd": "stats"})["host_tcp"]["s0"]["holder"] in (
        None, rig["agent"]["pid"])
