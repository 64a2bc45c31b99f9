"""`arcopy sim`: one seeded disaster-recovery drill, or a sweep over many seeds.

    arcopy sim --pairs 4 --seed 7 --duration 6 --faults all --mode clock --json
    arcopy sim sweep --seeds 200 --faults all
    arcopy sim --ops suspend --seed 3 --faults loss      # a drill of an operation (issue #8)
    arcopy sim sweep --ops failback --seeds 100 --faults crash

A single run prints a short report (or one JSON object with --json). A sweep runs
seeds in parallel worker processes with a progress bar, prints a summary table,
and for every failing seed its class and the exact command that replays it.

Safety and liveness are reported apart, in a run and in a sweep's summary (and JSON):
safety fails on a consistency violation or an acknowledged write older than the
recovered cut lost; liveness fails on a pair without a recoverable image, a timeout,
or no common cut. A pair still in its first copy at the disaster has "no image yet":
counted apart, not a failure. A drill that raised is counted apart too ("exception").
The exit status is 1 when any seed fails either (or raised).
"""
import json
import os
import sys
import time

from host_tools.cmds.argtypes import nonneg_int, positive_float, positive_int
from host_tools.sim.rng import FAULT_CLASSES, parse_faults
from host_tools.sim.drills import OPS

SUMMARY_KEYS = ("consistent", "violations", "writes_completed", "writes_recovered", "rpo_ms",
                "checkpoints_released", "digest", "sim_seconds", "wall_seconds")


def add_arguments(p):
    p.add_argument("action", nargs="?", choices=("run", "sweep"), default="run",
                   help="run one seed (default) or sweep many")
    p.add_argument("--pairs", type=positive_int, default=4, help="subsystem pairs (default 4)")
    p.add_argument("--seed", type=nonneg_int, default=0, help="the seed (run) or first seed (sweep)")
    p.add_argument("--seeds", type=positive_int, default=None,
                   help="sweep: how many seeds (default 100; only with `sim sweep`)")
    p.add_argument("--duration", type=positive_float, default=None,
                   help="simulated seconds of workload (default 6; with --ops: the window faults "
                        "are drawn in, default per operation)")
    p.add_argument("--ops", choices=OPS, default=None,
                   help="drill an operation instead of plain replication: %s" % ", ".join(OPS))
    p.add_argument("--faults", default="all",
                   help="comma list of %s, or all / none" % ",".join(FAULT_CLASSES))
    p.add_argument("--mode", choices=("clock", "clockless", "sync"), default="clock")
    p.add_argument("--policy", choices=("freeze", "continue"), default="freeze")
    p.add_argument("--kind", choices=("ims", "random", "hot", "seq"), default="ims",
                   help="workload (default ims: the patent's database pattern)")
    p.add_argument("--rate", type=positive_float, default=60.0, help="host writes per second")
    p.add_argument("--concurrency", type=positive_int, default=4, help="parallel transactions / chains")
    p.add_argument("--ckpt-ms", type=positive_float, default=200.0, help="checkpoint interval (ms)")
    p.add_argument("--bus-baud", type=positive_int, default=115200)
    p.add_argument("--peer-baud", type=positive_int, default=None,
                   help="peer-link baud rate (default 115200; --ops pacing draws a slow one)")
    p.add_argument("--jobs", type=nonneg_int, default=0, help="sweep: worker processes (0 = CPU count)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--full", action="store_true", help="run: include per-board statistics in JSON")


def _kwargs(a, seed):
    kw = dict(seed=seed, pairs=a.pairs, duration_s=a.duration, faults=a.faults, mode=a.mode,
              kind=a.kind, rate=a.rate, ckpt_interval_ms=a.ckpt_ms, policy=a.policy,
              concurrency=a.concurrency, bus_baud=a.bus_baud, peer_baud=a.peer_baud)
    if getattr(a, "ops", None):
        kw["op"] = a.ops
    else:
        if kw["duration_s"] is None:
            kw["duration_s"] = 6.0
        if kw["peer_baud"] is None:
            kw["peer_baud"] = 115200
    return kw


def replay_command(a, seed):
    parts = ["arcopy sim"]
    if getattr(a, "ops", None):
        parts.append("--ops %s" % a.ops)
    parts += ["--seed %d" % seed, "--pairs %d" % a.pairs]
    if a.duration is not None or not getattr(a, "ops", None):
        parts.append("--duration %g" % (6.0 if a.duration is None else a.duration))
    parts += ["--faults %s" % a.faults, "--mode %s" % a.mode]
    for flag, val, default in (("--policy", a.policy, "freeze"), ("--kind", a.kind, "ims"),
                               ("--rate", a.rate, 60.0), ("--concurrency", a.concurrency, 4),
                               ("--ckpt-ms", a.ckpt_ms, 200.0), ("--bus-baud", a.bus_baud, 115200),
                               ("--peer-baud", a.peer_baud, None)):
        if val != default and not (flag == "--peer-baud" and val == 115200
                                   and not getattr(a, "ops", None)):
            parts.append("%s %s" % (flag, val if not isinstance(val, float) else "%g" % val))
    return " ".join(parts)


def _one(kw):
    from host_tools.sim.scenario import run_scenario
    from host_tools.sim.drills import run_ops
    try:
        if "op" in kw:
            return run_ops(**kw)
        return run_scenario(**kw)
    except Exception as e:  # a crash in the harness or the firmware is a failing seed too
        import traceback
        return {"seed": kw["seed"], "consistent": False, "exception": repr(e),
                "traceback": traceback.format_exc(), "faults": sorted(parse_faults(kw["faults"])),
                "ok": False, "verdict": "exception"}


# ---- safety and liveness, apart ------------------------------------------------------------
# safety failure: a consistency violation, or an acknowledged write older than the recovered
# cut lost; liveness failure: a pair without a recoverable image, a timeout, no common cut.
# A drill that crashed (an exception in the harness or the firmware) proves neither: its
# verdict is "exception", counted apart and failing.

def _safety_failed(r):
    return r["verdict"] in ("safety", "safety+liveness")


def _liveness_failed(r):
    return r["verdict"] in ("liveness", "safety+liveness")


def failed(r):
    """True if the drill failed safety or liveness (or crashed); "no image yet" alone is fine
    (a drill's result carries "safety", "liveness", "ok" and "verdict": host_tools/check/verdict.py)."""
    return not r["ok"]


def why(r):
    """A short reason for a failing result (one line, no ': ' in it)."""
    if r["verdict"] == "exception":
        return ("exception " + r.get("exception", "")).replace(": ", " - ")
    parts = []
    sf, lv = r["safety"], r["liveness"]
    if sf["violations"]:
        parts.append("%d violation(s)" % sf["violations"])
    if sf["lost_before_cut"]:
        parts.append("%d acknowledged write(s) lost before the cut" % sf["lost_before_cut"])
    if lv["no_image"]:
        parts.append("%d pair(s) without image" % lv["no_image"])
    if lv["timeouts"]:
        parts.append("%d timeout(s)" % lv["timeouts"])
    if lv["no_common_cut"]:
        parts.append("no common cut")
    if r.get("errors"):
        parts.append("%d harness error(s)" % len(r["errors"]))
    if r.get("op_failures"):
        parts.append(r["op_failures"][0])
    return "; ".join(parts).replace(": ", " - ") or "failed"


def summarize(results):
    """The safety and liveness halves of a sweep's summary, and its failing seeds."""
    rs = list(results)
    live = [r for r in rs if r["verdict"] != "exception"]
    safety_bad = [r for r in rs if _safety_failed(r)]
    live_bad = [r for r in rs if _liveness_failed(r)]
    return {
        "safety": {
            "failing_seeds": len(safety_bad),
            "seeds": [r["seed"] for r in safety_bad],
            "violations": sum(r["safety"]["violations"] for r in live),
            "lost_before_cut": sum(r["safety"]["lost_before_cut"] for r in live),
        },
        "liveness": {
            "failing_seeds": len(live_bad),
            "seeds": [r["seed"] for r in live_bad],
            "no_image": sum(r["liveness"]["no_image"] for r in live),
            "no_image_yet": sum(r["liveness"]["no_image_yet"] for r in live),
            "no_image_yet_seeds": sum(1 for r in live if r["liveness"]["no_image_yet"]),
            "timeouts": sum(r["liveness"]["timeouts"] for r in live),
            "no_common_cut": sum(1 for r in live if r["liveness"]["no_common_cut"]),
        },
        "exceptions": [r["seed"] for r in rs if r["verdict"] == "exception"],
        "verdicts": {k: sum(1 for r in rs if r["verdict"] == k)
                     for k in sorted({r["verdict"] for r in rs})},
    }


def run(a):
    try:
        parse_faults(a.faults)
    except ValueError as e:
        print("arcopy sim: %s" % e, file=sys.stderr)
        return 2
    if a.pairs < 1 or a.pairs > 32:
        print("arcopy sim: --pairs must be 1..32", file=sys.stderr)
        return 2
    if a.action == "sweep":
        if a.seeds is None:
            a.seeds = 100
        return sweep(a)
    if a.seeds is not None:
        print("arcopy sim: --seeds %d runs only with `arcopy sim sweep` (did you mean `arcopy sim "
              "sweep --seeds %d`?); one seed is `arcopy sim --seed N`" % (a.seeds, a.seeds),
              file=sys.stderr)
        return 2
    r = _one(_kwargs(a, a.seed))
    if a.json:
        out = dict(r) if a.full else {k: v for k, v in r.items()
                                      if k not in ("secondaries", "fault_options", "op_steps")}
        print(json.dumps(out, indent=2, sort_keys=True, default=str))
    else:
        _print_run(r)
    return 1 if failed(r) else 0


def _print_run(r):
    if r.get("exception"):
        print(r["traceback"])
        print("verdict             exception (neither safety nor liveness was checked)")
        return
    sf, lv = r["safety"], r["liveness"]
    print("seed %d  pairs %d  mode %s  faults %s" % (r["seed"], r["pairs"], r["mode"], ",".join(r["faults"])))
    print("consistent          %s" % r["consistent"])
    print("verdict             %s" % r["verdict"])
    print("safety              %s: %d violation(s), %d acknowledged write(s) lost before the cut"
          % ("FAILED" if _safety_failed(r) else "ok", sf["violations"], sf["lost_before_cut"]))
    print("liveness            %s: %d pair(s) without image, %d timeout(s), %s; %d pair(s) with no "
          "image yet (first copy, not a failure)"
          % ("FAILED" if _liveness_failed(r) else "ok", lv["no_image"], lv["timeouts"],
             "no common cut" if lv["no_common_cut"] else "a common cut", lv["no_image_yet"]))
    print("writes completed    %d   recovered %d   lost acknowledged %d" % (
        r["writes_completed"], r["writes_recovered"], r["lost_acked"]))
    print("rpo                 %.1f ms" % r["rpo_ms"])
    print("recovered to        checkpoint %d (T=%d)" % (r["recovered_checkpoint"]["n"], r["recovered_checkpoint"]["t"]))
    print("clock skew (max)    %d us" % r["skew_max_us"])
    print("simulated           %.2f s in %.2f s wall (%.0fx)" % (
        r["sim_seconds"], r["wall_seconds"], r["sim_seconds"] / max(r["wall_seconds"], 1e-9)))
    print("digest              %s" % r["digest"])
    if r.get("op"):
        _print_ops(r)
    for v in r["violations"][:5]:
        print("VIOLATION: " + v["text"])
    if r["lost_before_released_checkpoint"]:
        print("LOST before the recovered checkpoint: writes %s" % r["lost_before_released_checkpoint"][:10])


def _print_ops(r):
    """The operation's counts (see host_tools/sim/ops.py)."""
    o = r["ops"]
    op = r["op"]
    for t, text in r.get("op_steps", ()):
        print("  %9.1f ms  %s" % (t, text))

    def resync(rec, what):
        if "copy_done" not in rec:
            print("  %-4s %s: never reached DUPLEX" % (rec["board"], what))
            return
        if not rec.get("exact", True):
            print("  %-4s %s: %s blocks marked; the primary went down during the copy (its count "
                  "restarted): copy_done %d, copy_total %d" % (rec["board"], what, rec["marked"],
                                                              rec["copy_done"], rec["copy_total"]))
            return
        print("  %-4s %s: %s blocks marked, copy_done %d %s copy_total %d, %s copy records journaled; "
              "%d host writes during the copy (allowed %d..%d)"
              % (rec["board"], what, rec["marked"], rec["copy_done"],
                 "=" if rec["copy_done"] == rec["copy_total"] else "!=", rec["copy_total"],
                 rec["copied"], rec.get("writes_during", 0), rec.get("lower", 0), rec.get("upper", 0)))

    if op == "initial-copy":
        print("initial copy        %d writes before the first START_COPY, %d blocks marked, %d copied"
              % (o["writes_before_copy"], o["marked_at_start"], o["copy_done"]))
        for rec in o["pairs"]:
            resync(rec, "initial copy")
    elif op == "suspend":
        for x in o["suspended"]:
            if not x["group_check"]:
                group = "not checked (a crash, power cut or outage hit the window)"
            else:
                group = "%s, none kept back for it: %s" % (
                    "released on" if x["group_released"] else "released nothing (a link stalled)",
                    "yes" if not x["group_held_back"] else "NO")
            print("suspended pair %d   at %.1f ms: %d blocks marked right after the suspend; %d blocks "
                  "written while suspended; the other pairs %s"
                  % (x["pair"], x["at_ms"], x["marks_at_suspend"], x["written_while_suspended"], group))
            resync(x["resync"], "resume")
    elif op == "autosuspend":
        print("auto-suspend        pair %d (journal %d slots), link out %.1f..%.1f ms, suspended at %s ms "
              "(reason %s), writes refused %d"
              % (o["pair"], o["journal_slots"], o["outage_ms"][0], o["outage_ms"][1],
                 o["suspended_at_ms"], o["suspend_reason"], o["writes_refused"]))
        resync(o["resync"], "resume")
    elif op == "pacing":
        print("pacing              %s, peer %d baud, threshold %d, max %d us: pace_us up to %d, %d writes "
              "paced (%d took over 1 ms), latency p50 %.1f p99 %.1f max %.1f ms, refused %d, suspends %d"
              % (o["variant"], o["peer_baud"], o["pace_threshold"], o["pace_max_us"],
                 o["pace_us_max_seen"], o["writes_paced"], o["writes_over_1ms"], o["latency_ms_p50"],
                 o["latency_ms_p99"], o["latency_ms_max"], o["writes_refused"], o["suspends"]))
    elif op == "failback":
        p1 = o["phase1"]
        print("phase 1             consistent %s, %d of %d acknowledged writes recovered at checkpoint %d"
              % (p1["consistent"], p1["writes_recovered"], p1["writes_completed"], p1["recovered_checkpoint"]))
        print("failback            %d blocks marked on the new primaries (%s merged from the old), "
              "%d copied; application quiesced during it: %s; both sides equal %.0f ms after the "
              "writes stopped: %s"
              % (o["marked_at_failback"], sum(x.get("merged_from_old_primary", 0) for x in o["pairs"]),
                 o["copy_done"], o["quiesced_for_failback"], o["mirrored_after_ms"],
                 all(o["mirrored_after_quiescence"])))
        for rec in o["pairs"]:
            resync(rec, "failback")
        print("phase 2             %d writes at the new primaries (%d refused during the failback), "
              "then the reverse disaster" % (o["phase2_writes"], sum(o["phase2_refused"].values())))
    if "group_recoverable_after_ms" in o:
        print("recoverable again   %.1f ms after the last join (every secondary holds the newest "
              "applied cut)" % o["group_recoverable_after_ms"])
    for f in r.get("op_failures", ()):
        print("OP FAILURE: " + f)


def sweep(a):
    from concurrent.futures import ProcessPoolExecutor
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a pinned dependency
        tqdm = None
    seeds = list(range(a.seed, a.seed + a.seeds))
    jobs = a.jobs or os.cpu_count() or 1
    t0 = time.perf_counter()
    results = []
    bar = tqdm(total=len(seeds), unit="seed", file=sys.stderr, disable=not sys.stderr.isatty()) if tqdm else None
    from host_tools.cmds import interrupt_note
    interrupt_note("the sweep stopped after %d of %d seeds; its workers were stopped: nothing "
                   "keeps running" % (0, len(seeds)))
    ex = ProcessPoolExecutor(max_workers=jobs, initializer=_ignore_sigint)
    try:
        for r in ex.map(_one, [_kwargs(a, s) for s in seeds], chunksize=4):
            results.append(r)
            interrupt_note("the sweep stopped after %d of %d seeds; its workers were stopped: "
                           "nothing keeps running" % (len(results), len(seeds)))
            if bar is not None:
                bar.update(1)
                if failed(r):
                    bar.set_postfix(safety=sum(_safety_failed(x) for x in results),
                                    liveness=sum(_liveness_failed(x) for x in results),
                                    exceptions=sum(x["verdict"] == "exception" for x in results))
    except BaseException:
        _stop_workers(ex)
        raise
    finally:
        if bar is not None:
            bar.close()
    ex.shutdown(wait=True)
    return report(a, results, seeds, jobs, time.perf_counter() - t0)


def _ignore_sigint():
    """Sweep workers leave Ctrl-C to the parent (which stops them): no traceback from each."""
    import signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _stop_workers(ex):
    """Stop a ProcessPoolExecutor's workers now (queued seeds dropped)."""
    procs = list((getattr(ex, "_processes", None) or {}).values())
    ex.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        try:
            p.terminate()
        except Exception:
            pass
    for p in procs:
        try:
            p.join(2)
            if p.is_alive():
                p.kill()
                p.join(1)
        except Exception:
            pass


def report(a, results, seeds, jobs, wall):
    """Print a sweep's summary (or its JSON) and the failing seeds; -> exit status."""
    bad = [r for r in results if failed(r)]
    classes = {}
    for r in results:
        for c in r.get("faults", ()):
            classes[c] = classes.get(c, 0) + 1
    ok = [r for r in results if not r.get("exception")]
    sl = summarize(results)
    summary = {
        "seeds": len(results),
        "failing": len(bad),
        "safety": sl["safety"],
        "liveness": sl["liveness"],
        "exceptions": sl["exceptions"],
        "verdicts": sl["verdicts"],
        "violations": sl["safety"]["violations"],
        "lost_before_released_checkpoint": sl["safety"]["lost_before_cut"],
        "fault_counts": classes,
        "writes_completed": sum(r.get("writes_completed", 0) for r in ok),
        "writes_recovered": sum(r.get("writes_recovered", 0) for r in ok),
        "rpo_ms_mean": round(sum(r.get("rpo_ms", 0) for r in ok) / max(1, len(ok)), 1),
        "rpo_ms_max": max((r.get("rpo_ms", 0) for r in ok), default=0),
        "sim_seconds": round(sum(r.get("sim_seconds", 0) for r in ok), 1),
        "wall_seconds": round(wall, 1),
        "failing_seeds": [r["seed"] for r in bad],
        "failures": [{"seed": r["seed"], "class": r["verdict"], "why": why(r),
                      "replay": replay_command(a, r["seed"])} for r in bad],
    }
    if getattr(a, "ops", None):
        summary["op"] = a.ops
        summary["op_failures"] = sum(len(r.get("op_failures", ())) for r in ok)
        summary["copy_done"] = sum(r.get("ops", {}).get("copy_done", 0) or 0 for r in ok)
    if a.json:
        print(json.dumps(summary, indent=2, sort_keys=True))
    else:
        sf, lv = sl["safety"], sl["liveness"]
        print("seeds               %d (%d..%d), %d worker(s)" % (len(results), seeds[0], seeds[-1], jobs))
        print("fault classes       " + ", ".join("%s %d" % kv for kv in sorted(classes.items())))
        print("failing seeds       %d" % len(bad))
        print("safety              %d seed(s) failing: %d violation(s), %d acknowledged write(s) lost "
              "before the recovered cut" % (sf["failing_seeds"], sf["violations"], sf["lost_before_cut"]))
        print("liveness            %d seed(s) failing: %d pair(s) without a recoverable image, %d "
              "timeout(s), %d seed(s) with no common cut"
              % (lv["failing_seeds"], lv["no_image"], lv["timeouts"], lv["no_common_cut"]))
        print("no image yet        %d pair(s) in %d seed(s) still in their first copy (not a failure)"
              % (lv["no_image_yet"], lv["no_image_yet_seeds"]))
        if sl["exceptions"]:
            print("exceptions          %d seed(s) crashed (safety and liveness unchecked)"
                  % len(sl["exceptions"]))
        print("writes              %d completed, %d recovered" % (summary["writes_completed"], summary["writes_recovered"]))
        print("rpo                 mean %.1f ms, max %.1f ms" % (summary["rpo_ms_mean"], summary["rpo_ms_max"]))
        if "op" in summary:
            print("operation           %s: %d failed expectation(s), %d copy records counted"
                  % (summary["op"], summary["op_failures"], summary["copy_done"]))
        print("time                %.1f simulated s in %.1f s wall" % (summary["sim_seconds"], wall))
    for f in summary["failures"]:
        print("FAIL seed %d (%s; %s): %s" % (f["seed"], f["class"], f["why"], f["replay"]), file=sys.stderr)
    return 1 if bad else 0
