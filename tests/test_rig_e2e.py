"""End to end on the emulated rig: real firmware processes on pseudo-terminals, driven
through the arcopy CLI (in-process `main(argv)` or a subprocess), as an operator would.

Every rig lives under the test's tmp dir, and a finalizer takes it down (kill -9 of
every board and the hub) whatever happens in the test.
"""
import json
import os
import struct
import subprocess
import sys
import time

import pytest

from host_tools.cli import main as arcopy
from host_tools.rig import manager as rigmgr
from host_tools.rig import session as rigops
from host_tools.transport.messages import status_name
from host_tools.transport.serial_client import HostClient, Timeout
from host_tools.rig.board import FileBlockDevice
from firmware import codec
from protocol import hostcodec
from firmware import store
from firmware import wire

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cli(*argv):
    """Run the arcopy CLI in-process; assert success."""
    rc = arcopy([str(a) for a in argv])
    assert rc == 0, "arcopy %s -> %r" % (" ".join(map(str, argv)), rc)


def cli_proc(*argv, **kw):
    """Start the arcopy CLI as a separate process."""
    return subprocess.Popen([sys.executable, "-m", "host_tools.cli"] + [str(a) for a in argv],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


@pytest.fixture
def rig(tmp_path):
    """Factory: rig(name, *extra_up_args) -> the rig dict; every rig is taken down at the end."""
    made = []

    def make(name="rig", *extra):
        d = str(tmp_path / name)
        made.append(d)
        cli("rig", "up", "--dir", d, *extra)
        return rigmgr.load(d)
    yield make
    for d in made:
        try:
            rigmgr.down(rigmgr.load(d))
        except Exception:
            pass


def status(bench, name, timeout=1.0):
    with HostClient(rigmgr.board(bench, name)["host"], timeout=timeout) as c:
        return c.status()


def wait_until(pred, timeout, what, step=0.02):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    raise AssertionError("timed out after %.1f s waiting for %s" % (timeout, what))


def drain(bench, margin=3, timeout=20.0):
    """Wait until every write completed so far is applied at the secondaries: every
    secondary has applied a checkpoint issued after now (n0 + margin)."""
    n0 = max(status(bench, b["name"])["ckpt_n"] for b in rigmgr.primaries(bench))

    def done():
        st = [status(bench, b["name"]) for b in bench["boards"]]
        return all(s["applied_n"] >= n0 + margin for s in st if s["role"] == wire.ROLE_SECONDARY) \
            and all(s["journal_depth"] == 0 for s in st if s["role"] == wire.ROLE_PRIMARY)
    wait_until(done, timeout, "the copy to drain")


def disaster_failover_verify(bench):
    d = bench["dir"]
    cli("disaster", "--dir", d)
    cli("failover", "--dir", d)
    rep, stats = rigops.verify(bench)
    assert stats["failed"] == 0
    return rep


def peek_sb(path):
    """The superblock of a board's SD image, read from the file (never written)."""
    class ReadOnly(FileBlockDevice):
        def writeblocks(self, n, buf, offset=0):
            raise OSError("read-only peek")
    dev = ReadOnly(path)
    try:
        st = store.Store(dev)
        st.mount()
        return st.sb
    finally:
        dev.close()


# -- the demo ----------------------------------------------------------------------------------
def test_demo_is_consistent(tmp_path):
    p = cli_proc("demo", "--pairs", 4, "--seed", 7, "--json", "--dir", tmp_path / "demo")
    try:
        out, err = p.communicate(timeout=90)
    finally:
        if p.poll() is None:
            p.kill()
            try:
                rigmgr.down(rigmgr.load(str(tmp_path / "demo")))
            except Exception:
                pass
    assert p.returncode == 0, err.decode()[-3000:]
    res = json.loads(out)
    assert res["consistent"] is True
    assert res["failover_ok"] is True
    assert res["writes_completed"] > 50
    assert 0 < res["writes_recovered"] <= res["writes_total"]
    assert res["violations"] == 0
    assert res["rpo_ms"] >= 0
    # the demo took its rig down
    bench = rigmgr.load(str(tmp_path / "demo"))
    assert not any(rigmgr.board_alive(b) for b in bench["boards"]) and not rigmgr.hub_alive(bench)


# -- host access rules ------------------------------------------------------------------------------
def test_secondary_refuses_host_writes_and_reads_busy_during_update(rig):
    bench = rig("b", "--pairs", 2)
    d = bench["dir"]
    cli("start-copy", "--dir", d)
    data = bytes(range(256)) * 2
    with HostClient(rigmgr.board(bench, "p0")["host"]) as p0, \
            HostClient(rigmgr.board(bench, "s0")["host"]) as s0, \
            HostClient(rigmgr.board(bench, "s1")["host"]) as s1:
        assert p0.write(0, 5, data) == wire.S_OK
        assert s0.write(0, 5, data) == wire.S_READ_ONLY
        assert s1.write(0, 6, data) == wire.S_READ_ONLY

        # Hold an update in progress open: catch the secondary master (s0) in a round
        # (released, not yet reset), then silence s1's transmitter on the bus so its
        # UPDATE_COMPLETE never arrives. The round cannot end: reads must say busy.
        assert s0.status()["master"] == s0.status()["node"]
        held = False
        for _ in range(40):
            wait_until(lambda: s0.status()["uip"], 3.0, "a checkpoint round at s0", step=0.002)
            cli("rig", "hub", "--dir", d, "mute", "s1", "tx")
            time.sleep(0.25)        # a report already on its way lands (and may end the round)
            if s0.status()["uip"]:
                held = True
                break
            cli("rig", "hub", "--dir", d, "mute", "s1", "off")
        assert held, "never caught an update in progress"
        for blk in (5, 6, 7):
            st, body = s0.read(0, blk)
            assert st == wire.S_BUSY_UIP and body == b"", status_name(st)
        st, _ = s1.read(0, 5)
        assert st == wire.S_BUSY_UIP, status_name(st)
        assert s0.status()["uip"] and s0.status()["uip_n"] > 0

        # let the round finish: reads are served again, and the write is there
        cli("rig", "hub", "--dir", d, "mute", "s1", "off")
        wait_until(lambda: not s0.status()["uip"], 5.0, "the round to end")

        def read_ok():
            st, body = s0.read(0, 5)
            return st == wire.S_OK and body == data
        wait_until(read_ok, 5.0, "the write to be readable at s0")


# -- bad input on every port ------------------------------------------------------------------------------
def _frames_bad(bench, name):
    return status(bench, name)["frames_bad"]


def _bad_inputs():
    """(label, bytes) of malformed input for a board's port."""
    good = hostcodec.encode(wire.T_H_STATUS, 0, 1, b"", seq=4321)
    bad_crc = bytearray(good)
    bad_crc[-1] ^= 0xFF
    hdr = bytearray(struct.pack("<BBBBBBBBHHH", 0xA5, 0x5C, 1, wire.T_H_WRITE, 0, 0, 1, 0, 77, 0, 5000))
    hdr += struct.pack("<H", codec.crc32(hdr) & 0xFFFF)
    garbage = bytes((x * 37 + 11) & 0xFF for x in range(300)).replace(b"\xa5", b"\x17")
    short_cut = hostcodec.encode(wire.T_CHECKPOINT, 1, wire.BROADCAST, bytes(12))[:20]
    return [("garbage", garbage), ("bad crc", bytes(bad_crc)),
            ("oversize length", bytes(hdr) + b"\x00" * 64),
            ("bad version", b"\xa5\x5c\x07" + b"\x00" * 30),
            ("truncated", short_cut)]


def _long_cut():
    """A write batch cut short after 40 of its 554 bytes: the receiver holds what follows
    until the claimed length is there, then rejects the cut frame and finds the rest."""
    buf = bytearray(600)
    end = codec.pack_record(buf, codec.SZ_BATCH_HEAD, 0, 3, 0, bytes(512))
    codec.pack_batch_head(buf, 0, 1, 1, 1000)
    return hostcodec.encode(wire.T_WRITE_BATCH, 1, 129, bytes(buf[:end]), seq=3)[:40]


def _host_port_abuse(client):
    """Throw malformed input at a host port; check the error answers, and that it
    keeps serving."""
    for label, data in _bad_inputs():
        client.unsolicited.clear()
        client.send_raw(data)
        st = client.status()                     # the next good request is answered
        assert st["node"] > 0, label
        wait_until(lambda: client.pump() or client.unsolicited, 2.0, "an error for " + label)
        assert client.unsolicited and client.unsolicited[0][0] == wire.S_BAD_FRAME, label
    r = client.request(0x55, b"xyz")                               # unknown type
    assert r.error and r.status == wire.S_UNKNOWN_TYPE
    r = client.request(wire.T_H_READ, b"\x00")                     # payload too short
    assert r.error and r.status == wire.S_BAD_LENGTH
    r = client.request(wire.T_H_COMMAND, HostClient.command_payload(200))   # unknown command
    assert r.status == wire.S_BAD_COMMAND
    # a frame cut short (the host died mid-frame): the board waits for the rest of it,
    # then rejects the whole and serves what follows
    client.unsolicited.clear()
    cut = hostcodec.encode(wire.T_H_WRITE, 0, 1, bytes(5 + 512), seq=999)[:120]
    client.send_raw(cut)
    deadline = time.monotonic() + 20
    while True:
        try:
            st = client.status(timeout=0.1, retries=0)
            break
        except Timeout:
            assert time.monotonic() < deadline, "the board stopped answering after a cut frame"
    wait_until(lambda: client.pump() or client.unsolicited, 2.0, "an error for the cut frame")
    assert client.unsolicited[0][0] == wire.S_BAD_FRAME


def test_malformed_input_on_every_port_is_rejected_and_loses_nothing(rig):
    bench = rig("b", "--pairs", 2)
    d = bench["dir"]
    cli("start-copy", "--dir", d)
    # host ports, before traffic starts
    for name in ("p0", "s1"):
        with HostClient(rigmgr.board(bench, name)["host"]) as c:
            _host_port_abuse(c)
    before = {b["name"]: _frames_bad(bench, b["name"]) for b in bench["boards"]}
    # site bus and peer link ports of every board, while a workload runs
    wl = cli_proc("workload", "--dir", d, "--kind", "random", "--rate", 40, "--duration", 4,
                  "--no-progress", "--json")
    try:
        time.sleep(0.5)
        for b in bench["boards"]:
            for port in ("bus", "peer"):
                for label, data in _bad_inputs() + [("long cut", _long_cut())]:
                    cli("rig", "hub", "--dir", d, "inject", b["name"], port, data.hex())
                unknown = hostcodec.encode(0x66, b["peer"] if port == "peer" else b["node"] + 1,
                                       wire.BROADCAST, b"junk")
                cli("rig", "hub", "--dir", d, "inject", b["name"], port, unknown.hex())
            time.sleep(0.1)
        out, err = wl.communicate(timeout=30)
    finally:
        if wl.poll() is None:
            wl.kill()
    assert wl.returncode == 0, err.decode()[-2000:]
    summ = json.loads(out)
    assert summ["issued"] > 50 and summ["failed"] == 0 and summ["in_flight"] == 0
    after = {b["name"]: _frames_bad(bench, b["name"]) for b in bench["boards"]}
    for name in before:            # every board counted bad input on its bus and peer ports
        assert after[name] >= before[name] + 2, (name, before, after)
    # (a run of bad input counts once, SPEC section 1: injections that no valid frame or 100 ms of
    # quiet separates are one run, so there is no count per injection to expect)
    # every board still serves, and the copy is complete and consistent
    drain(bench)
    rep = disaster_failover_verify(bench)
    assert rep.consistent, rep.summary()
    assert rep.lost_acked == 0 and rep.writes_completed == summ["completed_ok"], rep.summary()


# -- must-complete -----------------------------------------------------------------------------------------
def test_secondary_killed_mid_apply_completes_the_apply_at_boot(rig):
    # s1's SD card is slow (3 ms per block write), so a big apply takes a while
    bench = rig("b", "--pairs", 2, "--set", "s1.disk_delay_us=3000")
    d = bench["dir"]
    cli("start-copy", "--dir", d)
    s1 = rigmgr.board(bench, "s1")
    wl = cli_proc("workload", "--dir", d, "--kind", "random", "--rate", 50, "--duration", 9,
                  "--no-progress", "--json")
    caught = None
    try:
        for attempt in range(4):
            # stall the rendezvous (s1's reports cannot reach the bus) while records pile
            # up in s1's journal, then let go and kill s1 in the middle of the big apply
            time.sleep(0.3)
            cli("rig", "hub", "--dir", d, "mute", "s1", "tx")
            wait_until(lambda: status(bench, "s1")["journal_depth"] >= 40, 10.0, "s1's journal to fill")
            base = peek_sb(s1["image"]).applied_n
            cli("rig", "hub", "--dir", d, "mute", "s1", "off")

            def mid_apply():
                sb = peek_sb(s1["image"])
                return sb.uip_n > sb.applied_n and sb.uip_n > base + 1
            wait_until(mid_apply, 10.0, "s1 to start a big apply", step=0.001)
            cli("rig", "kill", "--dir", d, "s1")
            sb = peek_sb(s1["image"])
            if sb.uip_n > sb.applied_n:
                caught = (sb.uip_n, sb.applied_n)
                break
            cli("rig", "restart", "--dir", d, "s1")        # the apply won the race: again
        assert caught, "could not kill s1 during an apply"
        uip_n, applied_before = caught
        cli("rig", "restart", "--dir", d, "s1")
        st = status(bench, "s1", timeout=5.0)               # first answer after boot
        assert st["applied_n"] >= uip_n > applied_before, (st["applied_n"], caught)
        sb = peek_sb(s1["image"])
        assert sb.applied_n >= uip_n
        out, err = wl.communicate(timeout=40)
    finally:
        if wl.poll() is None:
            wl.kill()
    assert wl.returncode == 0, err.decode()[-2000:]
    summ = json.loads(out)
    assert summ["failed"] == 0 and summ["in_flight"] == 0
    drain(bench, timeout=30.0)
    rep = disaster_failover_verify(bench)
    assert rep.consistent, rep.summary()
    assert rep.lost_acked == 0, rep.summary()
