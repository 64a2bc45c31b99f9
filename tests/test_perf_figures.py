"""The figures (`arcopy perf async-sync goodput rpo ckpt-cost copy-latency heap --quick`) and
`arcopy report`: every figure is present and sane (a number, in range), the plots are valid PNGs
and report.md shows them. No timing thresholds: the figures are measured, not asserted."""
import json
import os
import shutil
import struct
import time

import pytest

from host_tools import cli
from host_tools.perf import report
from host_tools.perf.figures import Observer, build_world

SECTIONS = ("async-sync", "goodput", "rpo", "ckpt-cost", "copy-latency", "heap", "ops")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HAVE_MPY = shutil.which("node") is not None and os.path.isdir(os.path.join(ROOT, "node_modules", "@micropython"))


def num(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x == x


@pytest.fixture(scope="module")
def perf_json(tmp_path_factory):
    out = tmp_path_factory.mktemp("perf") / "perf.json"
    assert cli.main(["perf", *SECTIONS, "--quick", "--json", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def figures(perf_json):
    doc = json.loads(perf_json.read_text())
    assert doc["meta"]["quick"] is True
    assert set(SECTIONS) <= set(doc["sections"])
    return doc["sections"]


def rows(sec, i=0):
    t = sec["tables"][i]
    return [dict(zip(t["columns"], r)) for r in t["rows"]]


def test_async_sync(figures):
    rs = rows(figures["async-sync"])
    assert [r["round trip ms"] for r in rs] == [2, 20, 100]
    for r in rs:
        for k in ("async p50", "async p99", "sync p50", "sync p99", "sync/async p50", "sync/async p99"):
            assert num(r[k]) and r[k] > 0, (k, r)
        assert r["async p50"] <= r["async p99"] and r["sync p50"] <= r["sync p99"]
        # a synchronous write waits for its secondary: at least one peer round trip (virtual time)
        assert r["sync p50"] >= r["round trip ms"]
        assert r["async writes"] > 0 and r["sync writes"] > 0


def test_goodput(figures):
    rs = rows(figures["goodput"])
    assert [r["batch_max"] for r in rs] == [1, 7, 7, 7, 7]
    assert [r["ckpt ms"] for r in rs] == [200, 200, 1000, 50, 200]
    assert "noisy" in rs[4]["framing"] and rs[4]["goodput (of line)"] < rs[1]["goodput (of line)"]
    for r in rs:
        assert num(r["goodput (of line)"]) and 0 < r["goodput (of line)"] <= 1.0
        assert 0 < r["ceiling"] < 1.0
        assert 1.0 <= r["records per data frame"] <= r["batch_max"]
        assert r["records/s per link"] > 0
    assert any("goal" in n for n in figures["goodput"]["notes"])


def test_rpo(figures):
    rs = rows(figures["rpo"])
    assert [r["interval ms"] for r in rs] == [50, 100, 200, 500, 1000, 2000]
    for r in rs:
        assert r["runs"] >= 1 and r["consistent"] == r["runs"]
        assert num(r["RPO median ms"]) and 0 <= r["RPO median ms"] <= r["RPO max ms"]
        assert r["interval + record ms"] > r["interval ms"]
        assert num(r["median / ref"]) and r["median / ref"] >= 0


def test_ckpt_cost(figures):
    rs = rows(figures["ckpt-cost"])
    assert [r["pairs"] for r in rs] == [2, 4, 8, 16, 32]
    for r in rs:
        assert r["rounds"] >= 1
        assert num(r["ckpt->reset median ms"]) and r["ckpt->reset median ms"] > 0
        assert r["ckpt->release median ms"] <= r["ckpt->reset median ms"]
        assert 0 < r["round frames/round"] <= r["all bus frames/round"]
    growth = rows(figures["ckpt-cost"], 1)
    assert growth[-1]["pairs"].startswith("least squares")
    assert num(growth[-1]["ms per added pair"])


def _ptys_work():
    try:
        m, s = os.openpty()
    except OSError:
        return False
    os.close(m)
    os.close(s)
    return True


def test_copy_latency(figures):
    sec = figures["copy-latency"]
    sim = [r for r in rows(sec) if r["setup"] == "simulator"]
    assert len(sim) == 2
    off, on = sim
    for r in sim:
        assert r["writes"] > 0 and num(r["p50 ms"]) and r["p50 ms"] > 0
        assert num(r["p50 / no copy"]) and num(r["p99 / no copy"])
    assert off["p50 / no copy"] == 1.0
    # the write intent (data, header), the volume block, plus a change-bitmap block on a block's
    # first write (simplex marks)
    assert 3.0 < off["block writes in the write"] < 4.0
    assert on["block writes in the write"] >= 3.0            # journal data + header, then the volume
    emu = [r for r in rows(sec) if r["setup"] == "emulated rig"]
    if not _ptys_work():
        assert len(emu) == 1 and any(n.startswith("emulated rig: not measured") for n in sec["notes"])
        return
    assert [r["variant"] for r in emu] == ["no copy (copy never started)", "copy active (asynchronous)"], \
        sec["notes"]
    for r in emu:
        assert r["writes"] > 0
        assert num(r["p50 ms"]) and num(r["p99 ms"]) and 0 < r["p50 ms"] <= r["p99 ms"] < 3000
        assert num(r["p50 / no copy"]) and r["p50 / no copy"] > 0
        assert num(r["p99 / no copy"]) and r["p99 / no copy"] > 0
    assert emu[0]["p50 / no copy"] == 1.0 and emu[0]["p99 / no copy"] == 1.0
    per = rows(sec, 1)
    assert len(per) >= 2 and [r["order"] for r in per[:2]] == ["A B", "B A"]
    for r in per:
        assert r["A writes"] > 0 and r["B writes"] > 0
        assert num(r["B/A p50"]) and r["B/A p50"] > 0 and num(r["B/A p99"]) and r["B/A p99"] > 0
    assert any("on the emulated rig" in n and "goal" in n for n in sec["notes"])


def test_rig_latency_reports_a_rig_that_does_not_come_up(monkeypatch):
    from host_tools.rig import manager as rigmgr
    from host_tools.perf import rig_latency

    def no_ptys(*a, **kw):
        raise OSError("out of pty devices")
    monkeypatch.setattr(rigmgr, "up", no_ptys)
    res = rig_latency.measure(True)
    assert res == {"ok": False, "why": "OSError: out of pty devices"}


@pytest.mark.skipif(not _ptys_work(), reason="no pseudo-terminals")
def test_rig_latency_tears_down_on_error(monkeypatch):
    """An error after both rigs are up still stops every process they started."""
    from host_tools.rig import session as rigops
    from host_tools.transport.serial_client import ClientError
    from host_tools.rig import manager as rigmgr
    from host_tools.perf import rig_latency
    started = []            # (rig dir, pids) as they were when the rig came up
    up = rigmgr.up

    def recording_up(*a, **kw):
        b = up(*a, **kw)
        started.append((b["dir"], [b["hub"]["pid"]] + [x["pid"] for x in b["boards"]]))
        return b

    def broken(*a, **kw):
        raise ClientError("copy did not become active")
    monkeypatch.setattr(rigmgr, "up", recording_up)
    monkeypatch.setattr(rigops, "start_copy", broken)
    res = rig_latency.measure(True, pairs=1)
    assert res["ok"] is False and "copy did not become active" in res["why"]
    assert len(started) == 2
    pids = [p for _, ps in started for p in ps]
    assert len(pids) == 2 * 3 and all(pids)
    end = time.monotonic() + 5                      # SIGKILL is delivered asynchronously
    while any(rigmgr.pid_alive(p) for p in pids) and time.monotonic() < end:
        time.sleep(0.02)
    assert not any(rigmgr.pid_alive(p) for p in pids)
    assert not any(os.path.exists(d) for d, _ in started)


def test_heap(figures):
    rs = rows(figures["heap"], 0)
    peak = rs[0]["KiB"]
    if HAVE_MPY and os.path.exists(os.path.join(ROOT, "tests", "mpy", "t_boot.py")):
        assert num(peak) and 0 < peak < 1024, figures["heap"]["notes"]
        # what each KiB is spent on: code by module adds up to the code, buffers by owner,
        # and a floor (numbers in the JSON, bytes)
        f = figures["heap"]["figures"]
        mods = f["code_by_module_bytes"]
        assert "firmware.primary" in mods and "firmware.main" in mods
        assert abs(sum(mods.values()) - f["code_bytes"]) <= 0.05 * f["code_bytes"]
        assert abs(f["code_bytes"] / 1024.0 - rs[1]["KiB"]) < 0.2
        prim = f["buffers_bytes"]["P"]
        assert any(p.endswith("store._idx") for p in prim)
        assert not any("slots" in p for p in prim)        # no window of frame copies
        assert f["floor_bytes"] == f["data_floor_bytes"] + f["code_bytes"]
        titles = [t["title"] for t in figures["heap"]["tables"]]
        assert any(t.startswith("floor") for t in titles)
    else:
        assert peak == "unavailable" and figures["heap"]["notes"][0].startswith("unavailable")


def _png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", path
    return struct.unpack(">II", head[16:24])


def test_report_record_and_render(tmp_path, perf_json, capsys):
    d = tmp_path / "run"
    assert cli.main(["report", "--record", str(d), "--quick", "--duration", "3.5"]) == 0
    doc = json.loads((d / "run.json").read_text())
    s = doc["summary"]
    assert s["consistent"] is True and s["writes_completed"] > 0 and s["rounds"] >= 1
    assert s["latency_ms"]["copy"]["p50"] > 0 and s["latency_ms"]["sync"]["p50"] > 0
    ts = report._read_csv(str(d / "timeseries.csv"))
    assert ts and {r["pair"] for r in ts} == {0, 1}
    ck = report._read_csv(str(d / "checkpoints.csv"))
    done = [r for r in ck if r["reset_ms"] is not None]
    assert done and all(r["issued_ms"] <= r["all_held_ms"] <= r["released_ms"] <= r["reset_ms"] for r in done)
    # render again with the perf figures in the RUN_DIR
    shutil.copy(perf_json, d / "perf.json")
    assert cli.main(["report", str(d)]) == 0
    md = (d / "report.md").read_text()
    for png in ("lag.png", "checkpoints.png", "latency_cdf.png"):
        w, h = _png_size(d / png)
        assert w > 100 and h > 100
        assert "](%s)" % png in md
    assert "async-sync" in md and "ckpt-cost" in md
    assert "Why the plot and the RPO differ" in md and "applied T" not in md
    _check_report_figures(str(d))
    assert cli.main(["report", str(tmp_path / "nothing-here")]) == 2


def _legend_texts(fig):
    return {t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()}


def _marker_lines(fig):
    """x of every vertical marker line (axvline: x data [x, x], y data [0, 1] in axes units)."""
    out = []
    for ax in fig.axes:
        for ln in ax.get_lines():
            xd, yd = list(ln.get_xdata()), list(ln.get_ydata())
            if len(xd) == 2 and xd[0] == xd[1] and yd == [0, 1]:
                out.append(xd[0])
    return out


def _check_report_figures(run_dir):
    """The report's plots as matplotlib objects (not pixels): every marker line is named in its
    figure's legend, axis labels are plain words, the lag plot shows the RPO and says why it
    differs from the plotted exposure."""
    import matplotlib.pyplot as plt
    doc, ts, ck, lat = report.load(run_dir)
    params, summary = doc["params"], doc["summary"]
    marks = {report.DISASTER_LABEL: summary["disaster_ms"] / 1000.0}
    if params.get("burst"):
        marks[report._burst_label(params)] = params["burst_at_s"]
    figs = report.figures(doc, ts, ck, lat)
    try:
        assert set(figs) == {"lag.png", "checkpoints.png", "latency_cdf.png"}
        for name in ("lag.png", "checkpoints.png"):
            fig = figs[name]
            texts = _legend_texts(fig)
            xs = _marker_lines(fig)
            for label, x in marks.items():
                assert label in texts, (name, label, texts)
                assert x in xs, (name, label)
            assert xs and set(xs) <= set(marks.values()), (name, xs)   # no unnamed marker line
            assert all(ax.get_xlabel() == report.X_TIME for ax in fig.axes if ax.get_xlabel())
        lag = figs["lag.png"]
        ylabels = [ax.get_ylabel() for ax in lag.axes]
        assert ylabels == [report.Y_EXPOSURE, report.Y_SEND_LAG, report.Y_JOURNAL]
        assert all("ms" in y or "entries" in y for y in ylabels)
        assert lag.axes[-1].get_xlabel() == report.X_TIME
        assert any(t.startswith("RPO at the disaster") for t in _legend_texts(lag))
        note = " ".join(t.get_text() for t in lag.texts)
        assert "RPO" in note and "exposure" in note and "released" in note
        assert "pair 0" in _legend_texts(lag)
        ck_fig = figs["checkpoints.png"]
        assert ck_fig.axes[0].get_ylabel() == "checkpoint number"
        cdf = figs["latency_cdf.png"].axes[0]
        assert "latency, ms" in cdf.get_xlabel() and cdf.get_ylabel()
        assert len(cdf.get_legend().get_texts()) == len(cdf.get_lines())
        for fig in figs.values():
            for ax in fig.axes:
                for label in (ax.get_xlabel(), ax.get_ylabel()):
                    assert "seq time" not in label and "applied T" not in label, label
    finally:
        for fig in figs.values():
            plt.close(fig)


def test_observer_observes_without_steering():
    def run(observe):
        w, wl = build_world(seed=3, pairs=2, duration_s=3.0, rate=16.0)
        obs = Observer(w) if observe else None
        if obs:
            obs.every(10000, lambda now: [b.stats() for b in w.boards.values()])
        try:
            w.run()
        finally:
            if obs:
                obs.close()
        st = w.stats()
        return st["boards"], st["links"], st["buses"], [(e.id, e.complete_us) for e in wl.log], obs
    a = run(False)
    b = run(True)
    assert a[:4] == b[:4]
    assert b[4].issued and b[4].reset and b[4].frames


def test_ops(figures):
    sec = figures["ops"]
    ic = rows(sec, 0)[0]
    assert ic["all duplex"] is True and num(ic["slowest pair blocks/s"])
    assert ic["copy records per pair"] == "/".join([str(ic["blocks per volume"])] * 4)
    for r in rows(sec, 1):
        assert r["rejoined"] is True
        assert r["marked"] == r["copy records moved"] == r["blocks changed"] < r["host writes"]
    off, on = rows(sec, 2)
    assert off["refused"] == on["refused"] == 0
    assert off["auto-suspends"] == 1 and off["largest delay ms"] == 0
    assert on["auto-suspends"] == 0 and on["largest delay ms"] > 0 and on["p99 ms"] > off["p99 ms"]
    ov = [t for t in sec["tables"] if t["title"].startswith("overload recovery")]
    assert len(ov) == 1
    o = dict(zip(ov[0]["columns"], ov[0]["rows"][0]))
    assert o["suspended itself"] is True and o["blocks marked"] > 0
    assert num(o["cut age at resume ms"]) and o["cut age at resume ms"] > 0
    assert num(o["resume -> cut advancing s"]) and o["resume -> cut advancing s"] > 0


def test_observer_replaces_nothing_and_detaches():
    """The Observer listens through World.add_tracer and the on_send hooks: no firmware class
    and no bus or link has anything replaced while it runs, and close() detaches it all."""
    from firmware import node, primary, secondary
    classes = (node.Node, primary.Primary, secondary.Secondary)
    before = {c: dict(vars(c)) for c in classes}
    w, _ = build_world(seed=2, pairs=2, duration_s=2.5, rate=8.0)
    fakes = [w.bus_p, w.bus_s] + list(w.links)
    obs = Observer(w)
    seen = []
    obs.every(100000, lambda now: seen.append(
        all(dict(vars(c)) == before[c] for c in classes) and not any("send" in vars(x) for x in fakes)))
    w.run()
    obs.close()
    assert seen and all(seen)
    assert all(x.on_send is None for x in fakes)
    assert obs.issued and obs.reset and obs.frames
    assert all(set(h) <= {b.name for b in w.secondaries} for h in obs.held.values())
    assert all(obs.labels[t] >= 1 for t in obs.issued)
    counts = (len(obs.issued), len(obs.held), len(obs.reset), len(obs.frames))
    w.run(w.now + 1000000)                   # detached: nothing more is recorded
    assert (len(obs.issued), len(obs.held), len(obs.reset), len(obs.frames)) == counts


def test_heap_shows_the_data_alone_against_the_goal():
    # the code can leave the heap (frozen modules, ROMFS: docs/ARCHITECTURE.md), so the
    # section also holds one board's data alone against the 64 KiB goal
    from host_tools.perf import figures as pf
    if not (HAVE_MPY and os.path.exists(os.path.join(ROOT, "tests", "mpy", "t_boot.py"))):
        return
    sec = pf.perf_heap(True)
    rs = {r["measure"]: r["KiB"] for r in rows(sec, 0)}
    data = rs["  of which one board's data (half of two)"]
    alone = rs["peak per board with the code off the heap (data only)"]
    assert alone == data and rs["data only / goal"] == round(data / 64.0, 3)
    assert any(n.startswith("data only (code off the heap): goal 64 KiB") for n in sec["notes"])
    assert sec["figures"]["data_only_kib"] == data
