"""arcopy demo: the whole story on an emulated bench, in one go.

bench up -> start copy -> a database-like (ims) workload on every pair -> disaster
(kill -9 every primary while writes are in flight) -> failover of the secondaries to
the newest released checkpoint -> read every secondary block back and check it
against the workload log -> short report (and JSON with --json) -> bench down."""
import json
import os
import shutil
import sys
import tempfile
import time

from host_tools.cmds import add_dir


def add_arguments(parser):
    add_dir(parser)
    parser.add_argument("--pairs", type=int, default=4, help="subsystem pairs (default 4)")
    parser.add_argument("--seed", type=int, default=1, help="workload seed (default 1)")
    parser.add_argument("--baud", type=int, default=115200, help="bus and peer baud (default 115200)")
    parser.add_argument("--kind", default="ims", choices=("ims", "random", "hot", "seq"))
    parser.add_argument("--rate", type=float, default=40.0, help="writes per second (default 40)")
    parser.add_argument("--duration", type=float, default=6.0,
                        help="workload length in seconds (default 6)")
    parser.add_argument("--disaster-at", type=float, default=4.5,
                        help="seconds into the workload when the primaries die (default 4.5)")
    parser.add_argument("--vol-blocks", type=int, default=256)
    parser.add_argument("--keep", action="store_true", help="leave the bench files (and --dir)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    parser.add_argument("--no-progress", action="store_true")


class _Stop(object):
    def __init__(self):
        self.flag = False
        self.at_us = None

    def is_set(self):
        return self.flag


def run(args):
    from host_tools.rig import manager as rigmgr
    from host_tools.ops import procedures as rigops
    out = sys.stderr if args.json else sys.stdout

    def say(msg=""):
        print(msg, file=out)
        out.flush()

    tmp = None
    d = args.dir
    if d is None:
        tmp = d = tempfile.mkdtemp(prefix="arcopy-demo-")
    t_start = time.monotonic()
    phases = {}
    bench = None
    result = {}
    try:
        t = time.monotonic()
        say("== bench up: %d pairs, %d baud buses and peer links, dir %s" % (args.pairs, args.baud, d))
        bench = rigmgr.up(d, pairs=args.pairs, baud=args.baud, vol_blocks=args.vol_blocks,
                            force=True)
        phases["up_s"] = time.monotonic() - t
        t = time.monotonic()
        say("== start copy")
        rigops.start_copy(bench)
        phases["start_copy_s"] = time.monotonic() - t
        say(rigops.format_table(rigops.pair_rows(bench, rigops.collect_status(bench))))

        say("== workload: %s, %.0f writes/s for %.1f s; disaster at %.1f s"
            % (args.kind, args.rate, args.duration, args.disaster_at))
        wl = rigops.make_workload(bench, args.kind, args.rate, args.duration, args.seed)
        drv = rigops.SerialDriver(bench, wl)
        stop = _Stop()
        t0 = rigops.mono_us()
        snap = {}

        def on_tick(now, drv_):
            if stop.flag:
                return
            if now - t0 >= args.disaster_at * 1e6:
                snap["status"] = rigops.collect_status(bench, timeout=0.3)
                rec = rigops.disaster(bench)
                stop.at_us = rec["disaster_us"]
                stop.flag = True
        cb, close = rigops.tqdm_progress(min(args.duration, args.disaster_at),
                                           not args.no_progress and not args.json)
        t = time.monotonic()
        try:
            log = drv.run(stop=stop, progress=cb, on_tick=on_tick)
        finally:
            close()
        phases["workload_s"] = time.monotonic() - t
        if not stop.flag:                       # the workload ended first: disaster now
            snap["status"] = rigops.collect_status(bench, timeout=0.3)
            rec = rigops.disaster(bench)
        else:
            rec = rigops.load_disaster(bench)
        rigops.save_log(bench, log)
        summ = drv.summary()
        say("just before the disaster:")
        say(rigops.format_table(rigops.pair_rows(bench, snap["status"])))
        say("== disaster: killed %s (kill -9); %d writes issued, %d acknowledged, %d in flight"
            % (", ".join(rec["killed"]), summ["issued"], summ["completed_ok"], summ["in_flight"]))

        t = time.monotonic()
        say("== failover")
        fo = rigops.failover(bench, log=say)
        phases["failover_s"] = time.monotonic() - t
        say("recovered to checkpoint %d on every secondary: %s"
            % (fo["target_n"], "ok" if fo["ok"] else "FAILED %s" % fo["results"]))

        t = time.monotonic()
        say("== verify")
        rep, rstats = rigops.verify(bench, log=log, disaster_us=rec["disaster_us"])
        phases["verify_s"] = time.monotonic() - t
        say("read %d blocks from %d secondaries" % (rstats["reads"], args.pairs))
        say(rep.summary())
        hub = {}
        try:
            hub = rigmgr.hub_call(bench, {"cmd": "stats"})["lines"]
        except Exception:
            pass
        pre = snap.get("status") or {}
        skew = [s["skew_max_us"] for s in pre.values() if s and s["role_name"] == "primary"]
        result = {
            "consistent": rep.consistent,
            "pairs": args.pairs,
            "seed": args.seed,
            "kind": args.kind,
            "writes_total": rep.writes_total,
            "writes_completed": rep.writes_completed,
            "writes_inflight": rep.writes_inflight,
            "writes_failed": rep.writes_failed,
            "writes_recovered": rep.writes_recovered,
            "lost_acked": rep.lost_acked,
            "violations": rep.violations_total,
            "rpo_ms": rep.rpo_ms,
            "failover_ok": fo["ok"],
            "failover_checkpoint": fo["target_n"],
            "write_latency_ms_p50": summ["latency_ms_p50"],
            "write_latency_ms_p99": summ["latency_ms_p99"],
            "skew_max_us": max(skew) if skew else None,
            "bus_collisions": sum(v["collisions"] for k, v in hub.items() if k.startswith("bus")),
            "bus_garbled_bytes": sum(v["garbled"] for k, v in hub.items() if k.startswith("bus")),
            "phases_s": {k: round(v, 2) for k, v in phases.items()},
        }
    finally:
        if bench is not None and not args.keep:
            rigmgr.down(bench)
        if tmp and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    result["wall_s"] = round(time.monotonic() - t_start, 2)
    say("== %s: %d of %d acknowledged writes recovered in a consistent image; RPO %.0f ms; "
        "%.1f s in all" % ("CONSISTENT" if result["consistent"] else "INCONSISTENT",
                           result["writes_completed"] - result["lost_acked"],
                           result["writes_completed"], result["rpo_ms"], result["wall_s"]))
    if args.json:
        print(json.dumps(result, indent=1))
    elif args.keep:
        say("bench files kept in %s" % os.path.abspath(d))
    return 0 if result["consistent"] and result["failover_ok"] else 1
