"""The sweep runner, its per-seed records, summary and shard merge, shared by `arcopy sim sweep`, `merge` and `campaign`.

A sweep is its parameters (`params`: every option a drill takes, plus the first seed and
how many seeds) and one compact record per seed (`compact`). The summary is computed from
the records alone (`build_summary`), so a local sweep, a merge of shard files and a
campaign cell all go through the same code and give the same totals, failing seeds and
replay commands.

Shards: shard i of n (1 <= i <= n) runs the seeds s with (s - first) % n == i - 1 (round
robin, so every shard gets the same mix of seeds and a similar run time). A result file
(`result_file`) holds the parameters, the shard, its seeds' records and its summary;
`merge` checks that files come from the same sweep and cover every seed exactly once.
"""
import json
import os
import sys
import time

from .rng import parse_faults

FORMAT = "arcopy-sim-sweep/1"

# the parameters that make two shards parts of the same sweep (with first, seeds, shards)
PARAM_KEYS = ("ops", "pairs", "duration", "faults", "mode", "policy", "kind", "rate",
              "concurrency", "ckpt_ms", "bus_baud", "peer_baud", "disaster_at")
DEFAULTS = {"ops": None, "pairs": 4, "duration": None, "faults": "all", "mode": "clock",
            "policy": "freeze", "kind": "ims", "rate": 60.0, "concurrency": 4, "ckpt_ms": 200.0,
            "bus_baud": 115200, "peer_baud": None, "disaster_at": "drawn"}
# summary keys that depend on the machine and the run, not on the seeds
WALL_CLOCK_KEYS = ("wall_seconds", "execution")


class MergeError(Exception):
    """Shard files that do not make up one sweep (exit 1)."""


class UsageError(Exception):
    """A file that cannot be read as a sweep result (exit 2)."""


def params_of(a, first=0, seeds=1):
    """The sweep parameters of an argparse namespace (or any object with those attributes)."""
    p = {k: getattr(a, k, DEFAULTS[k]) for k in PARAM_KEYS}
    p["first"] = getattr(a, "seed", first)
    p["seeds"] = getattr(a, "seeds", None) or seeds
    return p


def shard_seeds(first, count, shard=None):
    """The seeds of shard (i, n) of first..first+count-1 (all of them without a shard)."""
    seeds = range(first, first + count)
    if shard is None:
        return list(seeds)
    i, n = shard
    return [s for s in seeds if (s - first) % n == i - 1]


def drill_kwargs(p, seed):
    """The keyword arguments of run_scenario / run_ops for one seed of sweep `p`."""
    kw = dict(seed=seed, pairs=p["pairs"], duration_s=p["duration"], faults=p["faults"],
              mode=p["mode"], kind=p["kind"], rate=p["rate"], ckpt_interval_ms=p["ckpt_ms"],
              policy=p["policy"], concurrency=p["concurrency"], bus_baud=p["bus_baud"],
              peer_baud=p["peer_baud"])
    if p.get("ops"):
        kw["op"] = p["ops"]
        if p.get("disaster_at", "drawn") != "drawn":
            kw["disaster_at"] = p["disaster_at"]
    else:
        if kw["duration_s"] is None:
            kw["duration_s"] = 6.0
        if kw["peer_baud"] is None:
            kw["peer_baud"] = 115200
    return kw


def replay_command(p, seed):
    """The `arcopy sim` command line that runs seed `seed` of sweep `p` alone."""
    ops = p.get("ops")
    parts = ["arcopy sim"]
    if ops:
        parts.append("--ops %s" % ops)
    parts += ["--seed %d" % seed, "--pairs %d" % p["pairs"]]
    if p["duration"] is not None or not ops:
        parts.append("--duration %g" % (6.0 if p["duration"] is None else p["duration"]))
    parts += ["--faults %s" % p["faults"], "--mode %s" % p["mode"]]
    if ops and p.get("disaster_at", "drawn") != "drawn":
        parts.append("--disaster-at %s" % p["disaster_at"])
    for flag, key in (("--policy", "policy"), ("--kind", "kind"), ("--rate", "rate"),
                      ("--concurrency", "concurrency"), ("--ckpt-ms", "ckpt_ms"),
                      ("--bus-baud", "bus_baud"), ("--peer-baud", "peer_baud")):
        val = p[key]
        if val != DEFAULTS[key] and not (key == "peer_baud" and val == 115200 and not ops):
            parts.append("%s %s" % (flag, val if not isinstance(val, float) else "%g" % val))
    return " ".join(parts)


def run_one(kw):
    """One drill (run_ops with "op" in kw, else run_scenario); an exception is a failing result."""
    from .scenario import run_scenario
    from .drills import run_ops
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

def safety_failed(r):
    return r["verdict"] in ("safety", "safety+liveness")


def liveness_failed(r):
    return r["verdict"] in ("liveness", "safety+liveness")


def failed(r):
    """True if the drill failed safety or liveness (or crashed); "no image yet" alone is fine."""
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
    if sf.get("sites_differ"):
        parts.append("%d pair(s) whose sites differ after the failback" % sf["sites_differ"])
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


def compact(r, p):
    """One drill's result as a sweep record: seed, verdict classes, counts, replay command."""
    rec = {"seed": r["seed"], "ok": bool(r["ok"]), "verdict": r["verdict"],
           "faults": list(r.get("faults", ())), "replay": replay_command(p, r["seed"]),
           "wall_seconds": r.get("wall_seconds", 0)}
    if not r["ok"]:
        rec["why"] = why(r)
    if r["verdict"] == "exception":
        rec["exception"] = r.get("exception", "")
        return rec
    sf, lv = r["safety"], r["liveness"]
    rec["safety"] = {"violations": sf["violations"], "lost_before_cut": sf["lost_before_cut"],
                     "sites_differ": sf.get("sites_differ", 0)}
    rec["liveness"] = {k: lv[k] for k in ("no_image", "no_image_yet", "timeouts", "no_common_cut")}
    for k in ("writes_completed", "writes_recovered", "rpo_ms", "sim_seconds"):
        rec[k] = r.get(k, 0)
    if p.get("ops"):
        rec["op_failures"] = len(r.get("op_failures", ()))
        rec["copy_done"] = r.get("ops", {}).get("copy_done", 0) or 0
    return rec


def summarize(results):
    """The safety and liveness halves of a sweep's summary, and its failing seeds (from
    drill results or records)."""
    rs = list(results)
    live = [r for r in rs if r["verdict"] != "exception"]
    safety_bad = [r for r in rs if safety_failed(r)]
    live_bad = [r for r in rs if liveness_failed(r)]
    return {
        "safety": {
            "failing_seeds": len(safety_bad),
            "seeds": [r["seed"] for r in safety_bad],
            "violations": sum(r["safety"]["violations"] for r in live),
            "lost_before_cut": sum(r["safety"]["lost_before_cut"] for r in live),
            "sites_differ": sum(r["safety"].get("sites_differ", 0) for r in live),
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


def build_summary(p, records, wall, execution=None):
    """A sweep's summary from its records (in seed order): the one place totals are made."""
    records = sorted(records, key=lambda r: r["seed"])
    bad = [r for r in records if not r["ok"]]
    classes = {}
    for r in records:
        for c in r.get("faults", ()):
            classes[c] = classes.get(c, 0) + 1
    ok = [r for r in records if r["verdict"] != "exception"]
    sl = summarize(records)
    summary = {
        "seeds": len(records),
        "seed_list": _ranges([r["seed"] for r in records]),
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
        "execution": dict(execution or {}),
        "failing_seeds": [r["seed"] for r in bad],
        "failures": [{"seed": r["seed"], "class": r["verdict"], "why": r.get("why", "failed"),
                      "replay": r["replay"]} for r in bad],
    }
    summary["execution"]["worker_seconds"] = round(sum(r.get("wall_seconds", 0) for r in records), 1)
    if p.get("ops"):
        summary["op"] = p["ops"]
        summary["op_failures"] = sum(r.get("op_failures", 0) for r in ok)
        summary["copy_done"] = sum(r.get("copy_done", 0) for r in ok)
    return summary


def _ranges(seeds):
    """"0..11" for a run of seeds, "0,3,6" (or "0..9/3") otherwise: a short description."""
    if not seeds:
        return ""
    if seeds == list(range(seeds[0], seeds[-1] + 1)):
        return "%d..%d" % (seeds[0], seeds[-1])
    step = seeds[1] - seeds[0] if len(seeds) > 1 else 1
    if seeds == list(range(seeds[0], seeds[-1] + 1, step)):
        return "%d..%d step %d" % (seeds[0], seeds[-1], step)
    return ",".join(str(s) for s in seeds)


def summary_lines(summary):
    """A sweep summary as the text `arcopy sim sweep` prints (stdout lines)."""
    sf, lv = summary["safety"], summary["liveness"]
    ex = summary["execution"]
    how = ("%d shard(s) merged" % len(ex["shards"]) if ex.get("merged")
           else "%d worker(s)" % ex.get("jobs", 1))
    if ex.get("engine") == "ray" and not ex.get("merged"):
        how = "ray cluster %s, %s" % (ex.get("address", "(local)"), how)
    shard = ex.get("shard")
    if shard and shard != [1, 1] and not ex.get("merged"):
        how = "shard %d/%d, %s" % (shard[0], shard[1], how)
    lines = [
        "seeds               %d (%s), %s" % (summary["seeds"], summary["seed_list"], how),
        "fault classes       " + ", ".join("%s %d" % kv for kv in sorted(summary["fault_counts"].items())),
        "failing seeds       %d" % summary["failing"],
        "safety              %d seed(s) failing: %d violation(s), %d acknowledged write(s) lost "
        "before the recovered cut%s" % (sf["failing_seeds"], sf["violations"], sf["lost_before_cut"],
                                        ", %d pair(s) whose sites differ after a failback"
                                        % sf["sites_differ"] if sf.get("sites_differ") else ""),
        "liveness            %d seed(s) failing: %d pair(s) without a recoverable image, %d "
        "timeout(s), %d seed(s) with no common cut"
        % (lv["failing_seeds"], lv["no_image"], lv["timeouts"], lv["no_common_cut"]),
        "no image yet        %d pair(s) in %d seed(s) still in their first copy (not a failure)"
        % (lv["no_image_yet"], lv["no_image_yet_seeds"]),
    ]
    if summary["exceptions"]:
        lines.append("exceptions          %d seed(s) crashed (safety and liveness unchecked)"
                     % len(summary["exceptions"]))
    lines.append("writes              %d completed, %d recovered"
                 % (summary["writes_completed"], summary["writes_recovered"]))
    lines.append("rpo                 mean %.1f ms, max %.1f ms" % (summary["rpo_ms_mean"], summary["rpo_ms_max"]))
    if "op" in summary:
        lines.append("operation           %s: %d failed expectation(s), %d copy records counted"
                     % (summary["op"], summary["op_failures"], summary["copy_done"]))
    lines.append("time                %.1f simulated s in %.1f s wall (%.1f s in the workers)"
                 % (summary["sim_seconds"], summary["wall_seconds"], ex["worker_seconds"]))
    return lines


def failure_lines(summary):
    """One `FAIL seed ...: <replay command>` line per failing seed (stderr)."""
    return ["FAIL seed %d (%s; %s): %s" % (f["seed"], f["class"], f["why"], f["replay"])
            for f in summary["failures"]]


# ---- result files and merging ----------------------------------------------------------------

def result_file(p, shard, records, summary):
    """What a sweep (or a shard of one, or a merge) writes with --json-out: all a merge needs."""
    return {"format": FORMAT, "params": dict(p), "shard": list(shard),
            "seeds": [r["seed"] for r in records], "records": list(records), "summary": summary}


def write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def load_result(path):
    """A result file -> its dict; UsageError when it cannot be read as one."""
    try:
        with open(path) as f:
            d = json.load(f)
    except OSError as e:
        raise UsageError("cannot read %s: %s" % (path, e.strerror or e))
    except ValueError as e:
        raise UsageError("%s is not JSON (%s)" % (path, e))
    ok = (isinstance(d, dict) and d.get("format") == FORMAT and isinstance(d.get("params"), dict)
          and isinstance(d.get("records"), list) and isinstance(d.get("summary"), dict)
          and isinstance(d.get("shard"), list) and len(d["shard"]) == 2
          and all(isinstance(r, dict) and isinstance(r.get("seed"), int) for r in d["records"])
          and all(k in d["params"] for k in PARAM_KEYS + ("first", "seeds")))
    if not ok:
        raise UsageError("%s is not a sweep result file (write one with `arcopy sim sweep "
                         "--json-out FILE`)" % path)
    return d


def merge(paths):
    """Shard result files -> (params, records in seed order). MergeError if they are not the
    shards of one sweep: different parameters or shard counts, a seed missing or twice."""
    files = [(path, load_result(path)) for path in paths]
    p0_path, d0 = files[0]
    p0 = d0["params"]
    n0 = d0["shard"][1]
    for path, d in files[1:]:
        diff = [k for k in sorted(set(p0) | set(d["params"])) if p0.get(k) != d["params"].get(k)]
        if diff:
            k = diff[0]
            raise MergeError("%s and %s are not shards of the same sweep: %s %s vs %s%s"
                             % (p0_path, path, k, json.dumps(p0.get(k)), json.dumps(d["params"].get(k)),
                                " (and %d more parameter(s))" % (len(diff) - 1) if len(diff) > 1 else ""))
        if d["shard"][1] != n0:
            raise MergeError("%s is shard %d/%d but %s is shard %d/%d: not the same split"
                             % (p0_path, d0["shard"][0], n0, path, d["shard"][0], d["shard"][1]))
    owner = {}
    records = []
    for path, d in files:
        for r in d["records"]:
            if r["seed"] in owner:
                raise MergeError("seed %d is in both %s and %s (a shard given twice?)"
                                 % (r["seed"], owner[r["seed"]], path))
            owner[r["seed"]] = path
            records.append(r)
    want = shard_seeds(p0["first"], p0["seeds"])
    missing = sorted(set(want) - set(owner))
    if missing:
        shards = sorted({(s - p0["first"]) % n0 + 1 for s in missing})
        raise MergeError("%d seed(s) missing (%s%s): shard(s) %s of %d not given or incomplete"
                         % (len(missing), ", ".join(map(str, missing[:8])),
                            ", ..." if len(missing) > 8 else "",
                            ", ".join(map(str, shards)), n0))
    extra = sorted(set(owner) - set(want))
    if extra:
        raise MergeError("seed %d (in %s) is outside the sweep's seeds %d..%d"
                         % (extra[0], owner[extra[0]], p0["first"], p0["first"] + p0["seeds"] - 1))
    return p0, sorted(records, key=lambda r: r["seed"]), [d["shard"] for _, d in files], \
        sum(d["summary"].get("wall_seconds", 0) for _, d in files)


# ---- the runner ------------------------------------------------------------------------------

def run_tasks(tasks, jobs=0, note=None, label="seed", engine=None):
    """Run drills (a list of run_one keyword dicts) on an engine (host_tools/sim/engines.py;
    default: a local process pool of `jobs` workers, 0: CPU count), with a progress bar on a
    terminal. -> results in task order. note(done, total): called after each result (the
    CLI's Ctrl-C note). The engine is started here and always closed (its workers stopped)."""
    from . import engines
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a pinned dependency
        tqdm = None
    engine = engine or engines.Local(jobs)
    results = []
    bar = None
    with engine:
        bar = (tqdm(total=len(tasks), unit=label, file=sys.stderr, disable=not sys.stderr.isatty())
               if tqdm else None)
        if note:
            note(0, len(tasks))
        try:
            for r in engine.results(tasks):
                results.append(r)
                if note:
                    note(len(results), len(tasks))
                if bar is not None:
                    bar.update(1)
                    if failed(r):
                        bar.set_postfix(safety=sum(safety_failed(x) for x in results),
                                        liveness=sum(liveness_failed(x) for x in results),
                                        exceptions=sum(x["verdict"] == "exception" for x in results))
        finally:
            if bar is not None:
                bar.close()
    return results


def run_sweep(p, shard=None, jobs=0, note=None, engine=None):
    """Run sweep `p` (or one shard of it) on an engine (default: the local pool of `jobs`)
    -> (records, summary, result file dict). Every engine's results go through the same
    compact / build_summary: the totals, failing seeds and replay commands cannot differ."""
    from . import engines
    seeds = shard_seeds(p["first"], p["seeds"], shard)
    engine = engine or engines.Local(jobs)
    t0 = time.perf_counter()
    results = run_tasks([drill_kwargs(p, s) for s in seeds], note=note, engine=engine)
    records = [compact(r, p) for r in results]
    summary = build_summary(p, records, time.perf_counter() - t0,
                            dict(engine.execution(), shard=list(shard or (1, 1))))
    return records, summary, result_file(p, shard or (1, 1), records, summary)
