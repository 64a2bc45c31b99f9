"""The emulated rig with every board in the real MicroPython unix port (`--runtime micropython`):
the demo drill, a failover run with a board killed and restarted on the way, and the heap cap.
Rigs, helpers and the finalizer that takes every rig down come from tests/test_rig_e2e.py."""
import json
import os
import time

from test_rig_e2e import cli, cli_proc, disaster_failover_verify, drain, rig, status, \
    wait_until  # noqa: F401  (rig is a fixture)
from host_tools.cli import main as arcopy
from host_tools.rig import manager as rigmgr

# what a board of a --runtime micropython rig may use: the Pico's heap in 32-bit bytes, which
# `-X heapsize=209936w` scales to this 64-bit build (twice the bytes)
CAP = 2 * rigmgr.PICO_HEAP_BYTES


def _cmdline(pid):
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        return f.read().split(b"\0")


def _no_process_left(bench):
    return not any(rigmgr.board_alive(b) for b in bench["boards"]) and not rigmgr.hub_alive(bench)


def test_demo_on_micropython_boards(tmp_path):
    d = tmp_path / "demo"
    p = cli_proc("demo", "--runtime", "micropython", "--pairs", 2, "--seed", 3, "--duration", 4,
                 "--disaster-at", 3, "--json", "--dir", d)
    try:
        out, err = p.communicate(timeout=90)
    finally:
        if p.poll() is None:
            p.kill()
            try:
                rigmgr.down(rigmgr.load(str(d)))
            except Exception:
                pass
    assert p.returncode == 0, err.decode()[-3000:]
    res = json.loads(out)
    assert res["runtime"] == "micropython"
    assert res["consistent"] is True and res["failover_ok"] is True and res["ok"] is True
    assert res["violations"] == 0 and res["lost_acked"] <= res["writes_completed"]
    assert res["writes_completed"] > 30
    assert 0 < res["writes_recovered"] <= res["writes_total"]
    peaks = res["heap_peak"]
    assert sorted(peaks) == ["p0", "p1", "s0", "s1"]
    assert all(50000 < v <= CAP for v in peaks.values()), peaks
    bench = rigmgr.load(str(d))
    assert all(b["runtime"] == "micropython" for b in bench["boards"])
    assert _no_process_left(bench)


def test_failover_run_on_micropython_boards(rig):
    # board clocks start 1 s below 2**30 us: the whole run is past that point
    bench = rig("m", "--pairs", 2, "--runtime", "micropython", "--set", "peer_timeout_us=10000000",
                "--set", "clock_offset_us=%d" % ((1 << 30) - 1000000))
    d = bench["dir"]
    for b in bench["boards"]:
        argv = _cmdline(b["pid"])
        assert any(a.endswith(b"micropython") for a in argv), argv
        assert b"heapsize=%dw" % rigmgr.PICO_HEAP_BYTES in argv, argv
    cli("start-copy", "--dir", d)
    wl = cli_proc("workload", "--dir", d, "--kind", "random", "--rate", 30, "--duration", 5,
                  "--no-progress", "--json")
    try:
        time.sleep(1.0)
        # a board process that dies is noticed, and comes back from its SD image
        victim = rigmgr.board(bench, "p1")
        os.kill(victim["pid"], 9)
        wait_until(lambda: not rigmgr.board_alive(victim), 5.0, "p1 to be gone")
        rows = {r["name"]: r for r in rigmgr.listing(rigmgr.load(d))}
        assert rows["p1"]["alive"] is False and rows["p0"]["alive"] is True
        cli("rig", "restart", "--dir", d, "p1")
        out, err = wl.communicate(timeout=60)
    finally:
        if wl.poll() is None:
            wl.kill()
    assert wl.returncode in (0, 1), err.decode()[-2000:]
    summ = json.loads(out)
    assert summ["completed_ok"] > 60, (summ, open(os.path.join(d, "p0.log")).read()[-1500:])
    bench = rigmgr.load(d)
    drain(bench, timeout=30.0)
    st = status(bench, "s0")
    assert st["role_name"] == "secondary" and st["applied_t"] > 1 << 30, st
    rep = disaster_failover_verify(bench)
    assert rep.consistent, rep.summary()
    assert rep.lost_acked == 0, rep.summary()
    heaps = [rigmgr.heap(b) for b in bench["boards"] if rigmgr.board_alive(b)]
    assert heaps and all(h and 0 < h["heap_peak"] <= CAP for h in heaps), heaps
    assert arcopy(["rig", "down", "--dir", d]) == 0
    assert _no_process_left(rigmgr.load(d))


def test_a_board_over_its_heap_fails_with_memory_error(tmp_path, capsys):
    d = str(tmp_path / "small")
    try:
        rc = arcopy(["rig", "up", "--dir", d, "--pairs", "1", "--runtime", "micropython",
                     "--heap", "120000", "--no-agent"])
    finally:
        try:
            rigmgr.down(rigmgr.load(d))
        except Exception:
            pass
    assert rc != 0
    logs = "".join(open(os.path.join(d, n + ".log")).read() for n in ("p0", "s0"))
    assert "MemoryError" in logs, logs[-2000:]
    assert _no_process_left(rigmgr.load(d))
