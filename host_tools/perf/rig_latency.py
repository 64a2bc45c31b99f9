"""Host write latency on the emulated rig, copy active vs no copy, side by side in one run.

Two small rigs run at the same time in a temporary directory, each one of real firmware
processes on pseudo-terminals (host_tools/rig/manager.py): on rig A copy is never started (the
boards do not autostart it), on rig B it is started with ``rigops.start_copy``. The same timed
workload (same kind, rate and seed in a round) is then driven into the primaries of one rig and
then the other, in several short rounds whose order alternates (A B, B A, A B, ...), so that both
conditions see the same machine: both rigs are up the whole time, and drifts in the
background load fall on both alike. The latency of a write is its completion minus its issue time
in the workload log; each round gives a p50 and a p99 per condition, and the figures are the
medians over the rounds.

``measure`` never raises: a rig that cannot be brought up (no pseudo-terminals, a board that
dies at start-up, ...) comes back as ``{"ok": False, "why": ...}``, and every process it started
is stopped again.
"""
import json
import os
import shutil
import statistics
import tempfile
import time

from firmware import wire

VARIANTS = ("off", "on")            # A: copy never started, B: copy active
# the variants of the copy-latency A/B: name -> (copy started, rig-up --set options)
COPY_AB = {"off": (False, ()), "on": (True, ())}
# commit wait off (A) vs on (B), copy active on both
COMMIT_WAIT_AB = {"off": (True, ("p.commit_wait=false",)), "on": (True, ())}
PAIRS = 2
RATE = 30.0                         # writes/s over both pairs: 15 per peer link (it carries ~21)
KIND = "random"                     # dependent random chains, as in the simulator's copy-latency run
CONCURRENCY = 4
# what the rigs' boards run in ("cpython" or "micropython": the MicroPython unix port with a
# Pico's heap); `arcopy perf --runtime` sets it
RUNTIME = "cpython"


def plan(quick):
    """(rounds, seconds per round and condition, warm-up seconds)."""
    return (3, 2.0, 0.5) if quick else (6, 4.0, 1.0)


def _pct(xs, p):
    from host_tools.perf.figures import pct
    return pct(xs, p)


def _run_round(rig, seconds, seed, rate=RATE, kind=KIND):
    """One timed workload on the primaries of `rig`; -> per-round figures (ms)."""
    from host_tools.rig import workload as rigload
    from host_tools.perf.figures import write_latencies_us
    wl = rigload.make_workload(rig, kind, rate, seconds, seed, CONCURRENCY)
    drv = rigload.SerialDriver(rig, wl)
    log = drv.run()
    lat = write_latencies_us(log)
    return {"_lat": lat, "writes": len(lat), "failed": sum(1 for e in log if e.ok is False),
            "in_flight": wl.outstanding, "retries": drv.retries,
            "p50": _pct(lat, 50) / 1000.0 if lat else None,
            "p99": _pct(lat, 99) / 1000.0 if lat else None}


def _config(b):
    with open(b["config"]) as f:
        return json.load(f)


def _down(rig, d):
    """Stop every process of the rig in `d` (the dict if we have it, else the rig file)."""
    from host_tools.rig import manager as rigmgr
    if rig is None and d and os.path.exists(rigmgr.rig_file(d)):
        try:
            rig = rigmgr.load(d)
        except Exception:
            rig = None
    if rig is not None:
        try:
            rigmgr.down(rig)
        except Exception:
            pass


def measure(quick, pairs=PAIRS, rate=RATE, kind=KIND, plan_=None, variants=None, runtime=None):
    """variants: COPY_AB (default: A copy never started, B copy active) or COMMIT_WAIT_AB;
    runtime: the boards' runtime (cpython / micropython).
    -> {"ok": True, "rounds": [{"round", "order", "off": {...}, "on": {...}}], "off"/"on":
    {"p50", "p99", "writes", "failed", "in_flight", "retries", "pooled_p50", "pooled_p99"} (medians
    of the rounds' p50 / p99, sums of the counts, percentiles of all the rounds' writes together),
    "wall_s", "params": {...}, "copy_status": {...}} or {"ok": False, "why": str}."""
    from host_tools.rig import manager as rigmgr
    from host_tools.rig import session as rigops
    rounds, seconds, warm = plan_ or plan(quick)
    variants = variants or COPY_AB
    runtime = runtime or RUNTIME
    root = None
    rigs = {}
    dirs = {}
    t_start = time.monotonic()
    try:
        root = tempfile.mkdtemp(prefix="arcopy-copylat-")
        for v in VARIANTS:
            dirs[v] = os.path.join(root, v)
            rigs[v] = rigmgr.up(dirs[v], pairs=pairs, force=True, sets=variants[v][1],
                                runtime=runtime)
            if any(_config(b).get("autostart") for b in rigs[v]["boards"]):
                return {"ok": False, "why": "the boards of the rig autostart copy"}
        for v in VARIANTS:
            if variants[v][0]:
                rigops.start_copy(rigs[v])
            else:
                st = rigops.collect_status(rigs[v])
                if any(s is None or s["copy_state"] != wire.CS_SIMPLEX for s in st.values()):
                    return {"ok": False, "why": "the no-copy rig is not in SIMPLEX after bring-up"}
        for v in VARIANTS:                          # open the ports once; first writes pay for it
            _run_round(rigs[v], warm, 1000, rate, kind)
        per = []
        for i in range(rounds):
            order = VARIANTS if i % 2 == 0 else VARIANTS[::-1]
            rec = {"round": i + 1, "order": " ".join("A" if v == "off" else "B" for v in order)}
            for v in order:
                rec[v] = _run_round(rigs[v], seconds, i + 1, rate, kind)
            per.append(rec)
        copy_status = rigops.collect_status(rigs["on"])
        clock_err = {v: [s["clock_err_us"] for s in rigops.collect_status(rigs[v]).values()
                         if s and s["role_name"] == "primary"] for v in VARIANTS}
        out = {"ok": True, "rounds": per, "wall_s": time.monotonic() - t_start,
               "params": {"pairs": pairs, "rate": rate, "kind": kind, "rounds": rounds,
                          "runtime": runtime,
                          "seconds": seconds, "warm_s": warm}, "clock_err_us": clock_err}
        for v in VARIANTS:
            rs = [r[v] for r in per]
            pooled = [x for r in rs for x in r.pop("_lat")]
            p50s = [r["p50"] for r in rs if r["p50"] is not None]
            p99s = [r["p99"] for r in rs if r["p99"] is not None]
            out[v] = {"p50": statistics.median(p50s) if p50s else None,
                      "p99": statistics.median(p99s) if p99s else None,
                      "writes": sum(r["writes"] for r in rs), "failed": sum(r["failed"] for r in rs),
                      "in_flight": sum(r["in_flight"] for r in rs),
                      "retries": sum(r["retries"] for r in rs),
                      "pooled_p50": _pct(pooled, 50) / 1000.0 if pooled else None,
                      "pooled_p99": _pct(pooled, 99) / 1000.0 if pooled else None}
        out["copy_status"] = {
            "duplex": sum(1 for s in copy_status.values() if s and s["copy_state"] == wire.CS_DUPLEX),
            "boards": len(copy_status),
            "applied": min((s["applied_n"] for n, s in copy_status.items() if s and n.startswith("s")),
                           default=None)}
        return out
    except Exception as e:                         # the section reports it and goes on
        return {"ok": False, "why": "%s: %s" % (type(e).__name__, str(e).splitlines()[0] if str(e) else "")}
    finally:
        for v in VARIANTS:
            if v in dirs:
                _down(rigs.get(v), dirs[v])
        if root:
            shutil.rmtree(root, ignore_errors=True)
