"""`arcopy sim`: one seeded disaster-recovery drill, or a sweep over many seeds.

    arcopy sim --pairs 4 --seed 7 --duration 6 --faults all --mode clock --json
    arcopy sim sweep --seeds 200 --faults all

A single run prints a short report (or one JSON object with --json). A sweep runs
seeds in parallel worker processes with a progress bar, prints a summary table,
and for every failing seed the exact command that replays it.
"""
import json
import os
import sys
import time

from .rng import FAULT_CLASSES, parse_faults

SUMMARY_KEYS = ("consistent", "violations", "writes_completed", "writes_recovered", "rpo_ms",
                "checkpoints_released", "digest", "sim_seconds", "wall_seconds")


def add_arguments(p):
    p.add_argument("action", nargs="?", choices=("run", "sweep"), default="run",
                   help="run one seed (default) or sweep many")
    p.add_argument("--pairs", type=int, default=4, help="subsystem pairs (default 4)")
    p.add_argument("--seed", type=int, default=0, help="the seed (run) or first seed (sweep)")
    p.add_argument("--seeds", type=int, default=100, help="sweep: how many seeds")
    p.add_argument("--duration", type=float, default=6.0, help="simulated seconds of workload")
    p.add_argument("--faults", default="all",
                   help="comma list of %s, or all / none" % ",".join(FAULT_CLASSES))
    p.add_argument("--mode", choices=("clock", "clockless", "sync"), default="clock")
    p.add_argument("--policy", choices=("freeze", "continue"), default="freeze")
    p.add_argument("--kind", choices=("ims", "random", "hot", "seq"), default="ims",
                   help="workload (default ims: the patent's database pattern)")
    p.add_argument("--rate", type=float, default=60.0, help="host writes per second")
    p.add_argument("--concurrency", type=int, default=4, help="parallel transactions / chains")
    p.add_argument("--ckpt-ms", type=float, default=200.0, help="checkpoint interval (ms)")
    p.add_argument("--bus-baud", type=int, default=115200)
    p.add_argument("--peer-baud", type=int, default=115200)
    p.add_argument("--jobs", type=int, default=0, help="sweep: worker processes (0 = CPU count)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--full", action="store_true", help="run: include per-board statistics in JSON")


def _kwargs(a, seed):
    return dict(seed=seed, pairs=a.pairs, duration_s=a.duration, faults=a.faults, mode=a.mode,
                kind=a.kind, rate=a.rate, ckpt_interval_ms=a.ckpt_ms, policy=a.policy,
                concurrency=a.concurrency, bus_baud=a.bus_baud, peer_baud=a.peer_baud)


def replay_command(a, seed):
    parts = ["arcopy sim", "--seed %d" % seed, "--pairs %d" % a.pairs, "--duration %g" % a.duration,
             "--faults %s" % a.faults, "--mode %s" % a.mode]
    for flag, val, default in (("--policy", a.policy, "freeze"), ("--kind", a.kind, "ims"),
                               ("--rate", a.rate, 60.0), ("--concurrency", a.concurrency, 4),
                               ("--ckpt-ms", a.ckpt_ms, 200.0), ("--bus-baud", a.bus_baud, 115200),
                               ("--peer-baud", a.peer_baud, 115200)):
        if val != default:
            parts.append("%s %s" % (flag, val if not isinstance(val, float) else "%g" % val))
    return " ".join(parts)


def _one(kw):
    from .scenario import run_scenario
    try:
        return run_scenario(**kw)
    except Exception as e:  # a crash in the harness or the firmware is a failing seed too
        import traceback
        return {"seed": kw["seed"], "consistent": False, "exception": repr(e),
                "traceback": traceback.format_exc(), "faults": sorted(parse_faults(kw["faults"]))}


def failed(r):
    if not r.get("consistent") or r.get("exception") or r.get("errors"):
        return True
    return any(v != 0 for v in r.get("failover", {}).values())


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
        return sweep(a)
    r = _one(_kwargs(a, a.seed))
    if a.json:
        out = dict(r) if a.full else {k: v for k, v in r.items() if k not in ("secondaries", "fault_options")}
        print(json.dumps(out, indent=2, sort_keys=True, default=str))
    else:
        _print_run(r)
    return 1 if failed(r) else 0


def _print_run(r):
    if r.get("exception"):
        print(r["traceback"])
        return
    print("seed %d  pairs %d  mode %s  faults %s" % (r["seed"], r["pairs"], r["mode"], ",".join(r["faults"])))
    print("consistent          %s" % r["consistent"])
    print("writes completed    %d   recovered %d   lost acknowledged %d" % (
        r["writes_completed"], r["writes_recovered"], r["lost_acked"]))
    print("rpo                 %.1f ms" % r["rpo_ms"])
    print("recovered to        checkpoint %d (T=%d)" % (r["recovered_checkpoint"]["n"], r["recovered_checkpoint"]["t"]))
    print("clock skew (max)    %d us" % r["skew_max_us"])
    print("simulated           %.2f s in %.2f s wall (%.0fx)" % (
        r["sim_seconds"], r["wall_seconds"], r["sim_seconds"] / max(r["wall_seconds"], 1e-9)))
    print("digest              %s" % r["digest"])
    for v in r["violations"][:5]:
        print("VIOLATION: " + v["text"])
    if r["lost_before_released_checkpoint"]:
        print("LOST before the recovered checkpoint: writes %s" % r["lost_before_released_checkpoint"][:10])


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
    with ProcessPoolExecutor(max_workers=jobs) as ex:
        for r in ex.map(_one, [_kwargs(a, s) for s in seeds], chunksize=4):
            results.append(r)
            if bar is not None:
                bar.update(1)
                if failed(r):
                    bar.set_postfix(failing=sum(failed(x) for x in results))
    if bar is not None:
        bar.close()
    wall = time.perf_counter() - t0
    bad = [r for r in results if failed(r)]
    classes = {}
    for r in results:
        for c in r.get("faults", ()):
            classes[c] = classes.get(c, 0) + 1
    ok = [r for r in results if not r.get("exception")]
    summary = {
        "seeds": len(results),
        "failing": len(bad),
        "violations": sum(r.get("violations_total", 0) for r in ok),
        "lost_before_released_checkpoint": sum(len(r.get("lost_before_released_checkpoint", ())) for r in ok),
        "fault_counts": classes,
        "writes_completed": sum(r.get("writes_completed", 0) for r in ok),
        "writes_recovered": sum(r.get("writes_recovered", 0) for r in ok),
        "rpo_ms_mean": round(sum(r.get("rpo_ms", 0) for r in ok) / max(1, len(ok)), 1),
        "rpo_ms_max": max((r.get("rpo_ms", 0) for r in ok), default=0),
        "sim_seconds": round(sum(r.get("sim_seconds", 0) for r in ok), 1),
        "wall_seconds": round(wall, 1),
        "failing_seeds": [r["seed"] for r in bad],
    }
    if a.json:
        print(json.dumps(summary, indent=2, sort_keys=True))
    else:
        print("seeds               %d (%d..%d), %d worker(s)" % (len(results), seeds[0], seeds[-1], jobs))
        print("fault classes       " + ", ".join("%s %d" % kv for kv in sorted(classes.items())))
        print("failing seeds       %d" % len(bad))
        print("violations          %d" % summary["violations"])
        print("lost before cut     %d" % summary["lost_before_released_checkpoint"])
        print("writes              %d completed, %d recovered" % (summary["writes_completed"], summary["writes_recovered"]))
        print("rpo                 mean %.1f ms, max %.1f ms" % (summary["rpo_ms_mean"], summary["rpo_ms_max"]))
        print("time                %.1f simulated s in %.1f s wall" % (summary["sim_seconds"], wall))
    for r in bad:
        why = r.get("exception") or ("%d violation(s)" % r.get("violations_total", 0))
        print("FAIL seed %d (%s): %s" % (r["seed"], why, replay_command(a, r["seed"])), file=sys.stderr)
    return 1 if bad else 0
