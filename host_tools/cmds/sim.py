"""`arcopy sim`: one seeded disaster-recovery drill, a sweep over many seeds (or a shard of one), a merge, a campaign.

    arcopy sim --pairs 4 --seed 7 --duration 6 --faults all --mode clock --json
    arcopy sim sweep --seeds 200 --faults all
    arcopy sim --ops suspend --seed 3 --faults loss      # a drill of an operation (issue #8)
    arcopy sim sweep --ops failback --seeds 100 --faults crash
    arcopy sim sweep --seeds 200 --shard 2/3 --json-out s2.json   # seeds 1, 4, 7, ... of 0..199
    arcopy sim merge s1.json s2.json s3.json             # = the summary of the whole sweep
    arcopy sim campaign --seeds 20 --json campaign.json  # modes x operations x fault classes
    arcopy sim sweep --seeds 1000 --engine ray --workers 2   # seeds as tasks on a local Ray cluster
    arcopy sim sweep --seeds 100000 --engine ray --address 10.0.0.5:6379   # on a running one

Shards, merge and campaign: host_tools/sim/sweep.py (the runner, per-seed records, the
summary and the merge, shared by all three) and host_tools/sim/campaign.py; the engines
(local process pool, Ray) in host_tools/sim/engines.py. An engine only runs the drills: the
records, totals and replay lines are made by the same code for both. Without the ray extra,
`--engine ray` exits 2 with the line to install it; no cluster at --address exits 1. A merge exits 2
on a file it cannot read and 1 on shards that are not one sweep (different parameters or
split, a seed missing or given twice), else as the sweep would.

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
import sys

from host_tools.cmds.argtypes import nonneg_int, positive_float, positive_int
from host_tools.sim.rng import FAULT_CLASSES, parse_faults
from host_tools.sim.drills import OPS, TWO_PAIR_OPS
from host_tools.sim import sweep as _sweep

SUMMARY_KEYS = ("consistent", "violations", "writes_completed", "writes_recovered", "rpo_ms",
                "checkpoints_released", "digest", "sim_seconds", "wall_seconds")


def shard_arg(text):
    """--shard I/N: shard I (1..N) of N."""
    import argparse
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not I/N (shard I of N, e.g. 2/3)" % text)
    if not 1 <= i <= n:
        raise argparse.ArgumentTypeError("%r: the shard I of I/N must be 1..N" % text)
    return (i, n)


def _intermixed(p):
    """Let `sim merge`'s files come after options too (`merge --json-out m.json s1 s2`):
    this parser reads options and positionals intermixed."""
    base = type(p)

    class Intermixed(base):
        def parse_known_args(self, args=None, namespace=None):
            if getattr(self, "_in_intermixed", False):
                return base.parse_known_args(self, args, namespace)
            self._in_intermixed = True
            try:
                return self.parse_known_intermixed_args(args, namespace)
            finally:
                self._in_intermixed = False

    p.__class__ = Intermixed


def add_arguments(p):
    from host_tools.sim import campaign as _campaign
    _intermixed(p)
    p.add_argument("action", nargs="?", choices=("run", "sweep", "merge", "campaign"), default="run",
                   help="run one seed (default); sweep many (--shard I/N: one part of a "
                        "sweep); merge FILE...: shard results into the whole sweep's summary; "
                        "campaign: every mode x operation (replication, %s) x fault class "
                        "(none, each class alone, all), --seeds per cell (default 20), one "
                        "table (wall s: the cell's seeds' time in the workers), a replay line per "
                        "failure" % ", ".join(OPS))
    p.add_argument("files", nargs="*", metavar="FILE",
                   help="merge: the result files of a sweep's shards (--shard I/N --json-out FILE)")
    p.add_argument("--pairs", type=positive_int, default=4, help="subsystem pairs (default 4)")
    p.add_argument("--seed", type=nonneg_int, default=0, help="the seed (run) or first seed (sweep)")
    p.add_argument("--seeds", type=positive_int, default=None,
                   help="sweep: how many seeds (default 100; only with `sim sweep`); campaign: "
                        "seeds per cell (default 20)")
    p.add_argument("--duration", type=positive_float, default=None,
                   help="simulated seconds of workload (default 6; with --ops: the window faults "
                        "are drawn in, default per operation)")
    p.add_argument("--ops", default=None, metavar="OP",
                   help="drill an operation instead of plain replication: %s; campaign: a comma "
                        "list of replication,%s (default all)" % (", ".join(OPS), ",".join(OPS)))
    p.add_argument("--faults", default=None,
                   help="comma list of %s, or all / none (default all); campaign: a comma list of "
                        "cells, each one class, none or all (default %s)"
                        % (",".join(FAULT_CLASSES), ",".join(_campaign.FAULTS)))
    p.add_argument("--mode", choices=("clock", "clockless", "sync"), default="clock")
    p.add_argument("--modes", default=None,
                   help="campaign: comma list of clock,clockless,sync (default all three). "
                        "Clockless %s cells run only with the fast bus (--bus-baud >= %d) and a "
                        "low rate (--rate <= %g, the defaults): their expectations assume writes "
                        "at the host's rate, which the checkpoint barrier slows on a slow bus; "
                        "otherwise they are skipped (the other clockless cells always run)"
                        % ("/".join(_campaign.CLOCKLESS_RATE_OPS), _campaign.CLOCKLESS_MIN_BAUD,
                           _campaign.CLOCKLESS_MAX_RATE))
    p.add_argument("--policy", choices=("freeze", "continue"), default="freeze")
    p.add_argument("--disaster-at", choices=("drawn", "resync", "duplex"), default="drawn",
                   help="with --ops: when the disaster strikes: drawn (after the group is "
                        "recoverable again, the default), resync (at a drawn instant in the "
                        "middle of the operation's resync) or duplex (the instant every pair "
                        "first shows DUPLEX after it)")
    p.add_argument("--kind", choices=("ims", "random", "hot", "seq"), default="ims",
                   help="workload (default ims: the patent's database pattern)")
    p.add_argument("--rate", type=positive_float, default=60.0, help="host writes per second")
    p.add_argument("--concurrency", type=positive_int, default=4, help="parallel transactions / chains")
    p.add_argument("--ckpt-ms", type=positive_float, default=200.0, help="checkpoint interval (ms)")
    p.add_argument("--bus-baud", type=positive_int, default=115200)
    p.add_argument("--peer-baud", type=positive_int, default=None,
                   help="peer-link baud rate (default 115200; --ops pacing draws a slow one)")
    p.add_argument("--jobs", type=nonneg_int, default=0,
                   help="sweep, campaign with the local engine: worker processes (0 = CPU count)")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="sweep, campaign: where the seeds run: local (a process pool, --jobs) or "
                        "ray (tasks on a Ray cluster: a local one of --workers CPUs, or the one at "
                        "--address; needs the ray extra)")
    p.add_argument("--workers", type=positive_int, default=None,
                   help="--engine ray: the local cluster's size in CPUs (default: CPU count)")
    p.add_argument("--address", default=None, metavar="HOST:PORT",
                   help="--engine ray: join the running Ray cluster whose head node is at "
                        "HOST:PORT (its workers must have this arcopy checkout installed)")
    p.add_argument("--shard", type=shard_arg, default=None, metavar="I/N",
                   help="sweep: run only shard I of N: the seeds s with (s - first) %% N == I - 1 "
                        "(round robin); needs --json-out, combine the files with `arcopy sim merge`")
    p.add_argument("--json", nargs="?", const=True, default=False, metavar="FILE",
                   help="print JSON; --json FILE: write the JSON to FILE instead (sweep and merge: "
                        "the result file, as --json-out) and print text (put it last)")
    p.add_argument("--json-out", default=None, metavar="FILE",
                   help="sweep, merge: write the result file (parameters, one record per seed, "
                        "summary): what `arcopy sim merge` reads")
    p.add_argument("--full", action="store_true", help="run: include per-board statistics in JSON")


def params(a):
    """The sweep parameters of the parsed arguments (host_tools/sim/sweep.py)."""
    return _sweep.params_of(a)


def _kwargs(a, seed):
    return _sweep.drill_kwargs(params(a), seed)


def replay_command(a, seed):
    return _sweep.replay_command(params(a), seed)


# the drill runner, verdict helpers and summary live in host_tools/sim/sweep.py (shared by
# sweep, merge and campaign); these names stay for the tests and older callers
_one = _sweep.run_one
failed = _sweep.failed
why = _sweep.why
summarize = _sweep.summarize
_safety_failed = _sweep.safety_failed
_liveness_failed = _sweep.liveness_failed


def run(a):
    if a.json in ("run", "sweep", "merge", "campaign") and a.action == "run" and not a.files:
        a.action, a.json = a.json, True         # `arcopy sim --json sweep ...`: not a file
    if isinstance(a.json, str):                 # --json FILE
        if a.json_out and a.json_out != a.json:
            print("arcopy sim: --json FILE and --json-out FILE name two files", file=sys.stderr)
            return 2
        a.json_out, a.json = a.json, False
    if a.action == "merge":
        return merge(a)
    if a.files:
        print("arcopy sim: %s takes no file arguments (%s)" % (a.action, " ".join(a.files)),
              file=sys.stderr)
        return 2
    if a.action == "campaign":
        return campaign(a)
    if a.faults is None:
        a.faults = "all"
    if a.ops is not None and a.ops not in OPS:
        print("arcopy sim: --ops %s: not an operation (one of %s)" % (a.ops, ", ".join(OPS)),
              file=sys.stderr)
        return 2
    try:
        parse_faults(a.faults)
    except ValueError as e:
        print("arcopy sim: %s" % e, file=sys.stderr)
        return 2
    if a.pairs < 1 or a.pairs > 32:
        print("arcopy sim: --pairs must be 1..32", file=sys.stderr)
        return 2
    if a.ops in TWO_PAIR_OPS and a.pairs < 2:
        print("arcopy sim: --ops %s needs --pairs 2 or more (the other pairs keep releasing "
              "meanwhile)" % a.ops, file=sys.stderr)
        return 2
    if a.modes is not None:
        print("arcopy sim: --modes runs only with `arcopy sim campaign`", file=sys.stderr)
        return 2
    if a.action == "sweep":
        if a.seeds is None:
            a.seeds = 100
        return sweep(a)
    if a.engine != "local" or a.workers or a.address:
        print("arcopy sim: --engine, --workers and --address run only with `arcopy sim sweep` "
              "and `arcopy sim campaign`", file=sys.stderr)
        return 2
    if a.shard is not None:
        print("arcopy sim: --shard runs only with `arcopy sim sweep`", file=sys.stderr)
        return 2
    if a.seeds is not None:
        print("arcopy sim: --seeds %d runs only with `arcopy sim sweep` (did you mean `arcopy sim "
              "sweep --seeds %d`?); one seed is `arcopy sim --seed N`" % (a.seeds, a.seeds),
              file=sys.stderr)
        return 2
    r = _one(_kwargs(a, a.seed))
    out = dict(r) if a.full else {k: v for k, v in r.items()
                                  if k not in ("secondaries", "fault_options", "op_steps")}
    if a.json_out:
        _sweep.write_json(a.json_out, out)
    if a.json:
        print(json.dumps(out, indent=2, sort_keys=True, default=str))
    else:
        _print_run(r)
    return 1 if failed(r) else 0


def _csv(text, allowed, what):
    """A comma list of names from `allowed` (in the given order); ValueError naming a bad one."""
    names = [x.strip() for x in text.split(",") if x.strip()]
    bad = [x for x in names if x not in allowed]
    if bad or not names:
        raise ValueError("%s %r: not one of %s" % (what, bad[0] if bad else text, ",".join(allowed)))
    return tuple(dict.fromkeys(names))


def campaign(a):
    """`arcopy sim campaign`: every mode x operation x fault class, one table, JSON, replay lines."""
    from host_tools.sim import campaign as _campaign
    try:
        modes = _csv(a.modes or ",".join(_campaign.MODES), _campaign.MODES, "--modes")
        ops = _csv(a.ops or ",".join(_campaign.OPS), _campaign.OPS, "--ops")
        faults = _csv(a.faults or ",".join(_campaign.FAULTS), _campaign.FAULTS, "--faults")
    except ValueError as e:
        print("arcopy sim: %s" % e, file=sys.stderr)
        return 2
    if a.shard is not None:
        print("arcopy sim: --shard runs only with `arcopy sim sweep`", file=sys.stderr)
        return 2
    if a.pairs < 2 and any(op in TWO_PAIR_OPS for op in ops):
        print("arcopy sim: the %s cells need --pairs 2 or more"
              % ", ".join(op for op in ops if op in TWO_PAIR_OPS), file=sys.stderr)
        return 2
    engine = _engine(a)
    if engine is None:
        return 2
    base = params(a)
    try:
        c = _campaign.run_campaign(base, a.seeds or 20, modes, ops, faults, note=_campaign_note,
                                   engine=engine)
    except _engine_errors() as e:
        return _engine_failed(e)
    if a.json_out:
        _sweep.write_json(a.json_out, c)
    if a.json:
        print(json.dumps({k: v for k, v in c.items() if k != "cells"} | {
            "cells": [{k: v for k, v in cell.items() if k != "records"} for cell in c["cells"]]},
            indent=2, sort_keys=True))
    else:
        print("\n".join(_campaign.table_lines(c)))
        print("%d seed(s) in %d cell(s), %.1f s wall, %d worker(s)%s"
              % (c["totals"]["seeds"], c["totals"]["cells"], c["wall_seconds"],
                 c["jobs"], " on a ray cluster" if c["execution"]["engine"] == "ray" else ""))
        for s in c["skipped"]:
            print("skipped             %s %s %s: %s" % (s["mode"], s["op"], s["faults"], s["why"]))
    for f in c["failures"]:
        print("FAIL %s %s %s seed %d (%s; %s): %s" % (f["mode"], f["op"], f["faults"], f["seed"],
                                                      f["class"], f["why"], f["replay"]),
              file=sys.stderr)
    return 1 if c["failures"] else 0


def _campaign_note(done, total):
    from host_tools.cmds import interrupt_note
    interrupt_note("the campaign stopped after %d of %d drills; its workers were stopped: "
                   "nothing keeps running" % (done, total))


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
    print("clock error bound   %s" % ("-" if r["clock_err_us"] is None else "%d us" % r["clock_err_us"]))
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
        print("auto-suspend        pair %d (journal %d slots, %s used at most in the outage), link out "
              "%.1f..%.1f ms, suspended at %s ms (reason %s), writes refused %d"
              % (o["pair"], o["journal_slots"], o["journal_peak_in_outage"], o["outage_ms"][0],
                 o["outage_ms"][1], o["suspended_at_ms"], o["suspend_reason"], o["writes_refused"]))
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


def _note(done, total):
    from host_tools.cmds import interrupt_note
    interrupt_note("the sweep stopped after %d of %d seeds; its workers were stopped: nothing "
                   "keeps running" % (done, total))


def sweep(a):
    p = params(a)
    shard = getattr(a, "shard", None)
    if shard is not None and not getattr(a, "json_out", None):
        print("arcopy sim: --shard needs --json-out FILE (the shard's result, for `arcopy sim "
              "merge`)", file=sys.stderr)
        return 2
    engine = _engine(a)
    if engine is None:
        return 2
    try:
        _, summary, result = _sweep.run_sweep(p, shard, note=_note, engine=engine)
    except _engine_errors() as e:
        return _engine_failed(e)
    return _emit(a, summary, result)


def _engine(a):
    """The engine the options ask for (host_tools/sim/engines.py), or None after a usage
    error on stderr."""
    from host_tools.sim import engines
    try:
        return engines.make(a.engine, jobs=a.jobs, workers=a.workers, address=a.address)
    except engines.EngineUnavailable as e:
        print("arcopy sim: %s" % e, file=sys.stderr)
        return None


def _engine_errors():
    from host_tools.sim import engines
    return (engines.EngineUnavailable, engines.EngineError)


def _engine_failed(e):
    """One line for an engine that could not run the seeds: 2 when it is not installed or
    not usable as asked, 1 when it failed (no cluster at the address, a worker lost)."""
    from host_tools.sim import engines
    print("arcopy sim: %s" % e, file=sys.stderr)
    return 2 if isinstance(e, engines.EngineUnavailable) else 1


def merge(a):
    """`arcopy sim merge FILE...`: shard results -> the summary of one sweep over all their seeds."""
    if not a.files:
        print("arcopy sim: merge needs one or more result files (from `arcopy sim sweep "
              "--shard I/N --json-out FILE`)", file=sys.stderr)
        return 2
    if a.json_out and a.json_out in a.files:
        print("arcopy sim: the output %s is one of the shard files" % a.json_out, file=sys.stderr)
        return 2
    try:
        p, records, shards, wall = _sweep.merge(a.files)
    except _sweep.UsageError as e:
        print("arcopy sim: %s" % e, file=sys.stderr)
        return 2
    except _sweep.MergeError as e:
        print("arcopy sim: %s" % e, file=sys.stderr)
        return 1
    summary = _sweep.build_summary(p, records, wall, {"merged": True, "shards": shards})
    return _emit(a, summary, _sweep.result_file(p, (1, 1), records, summary))


def _emit(a, summary, result):
    """Print a sweep's summary (or its JSON) and the failing seeds, write --json-out; -> exit status."""
    if getattr(a, "json_out", None):
        _sweep.write_json(a.json_out, result)
    if a.json:
        print(json.dumps(summary, indent=2, sort_keys=True))
    else:
        print("\n".join(_sweep.summary_lines(summary)))
    for line in _sweep.failure_lines(summary):
        print(line, file=sys.stderr)
    return 1 if summary["failing"] else 0


def report(a, results, seeds, jobs, wall):
    """Print a sweep's summary (or its JSON) from drill results and the failing seeds; -> exit status."""
    p = params(a)
    records = [_sweep.compact(r, p) for r in results]
    summary = _sweep.build_summary(p, records, wall, {"jobs": jobs, "shard": [1, 1]})
    return _emit(a, summary, None)
