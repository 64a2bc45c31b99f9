"""arcopy demo: the whole story on an emulated rig, in one go.

rig up -> start copy -> a database-like (ims) workload on every pair -> disaster
(kill -9 every primary while writes are in flight) -> failover of the secondaries to
the newest released checkpoint -> read every secondary block back and check it
against the workload log -> short report (and JSON with --json) -> rig down.

With --runtime micropython every board is the MicroPython unix port with a Pico's heap; the
report then gives each board's peak heap, and a board above its heap fails the demo. `make soak`
is this demo for 30 minutes of board uptime, the board clocks started just below 2**30 us
(--clock-offset-us), so they pass that point early in the run.

Failover, read-back and the verdict are the operator procedures of host_tools/ops/
(ops.drill.recover), the same the simulator's drills run."""
import json
import os
import shutil
import sys
import tempfile
import time

from host_tools.cmds import add_dir, interrupt_note, rig_note, take_down
from host_tools.cmds.argtypes import nonneg_int, positive_float, positive_int


def add_arguments(parser):
    add_dir(parser)
    parser.add_argument("--pairs", type=positive_int, default=4, help="subsystem pairs (default 4)")
    parser.add_argument("--seed", type=nonneg_int, default=1, help="workload seed (default 1)")
    parser.add_argument("--baud", type=positive_int, default=115200,
                        help="bus and peer baud (default 115200)")
    parser.add_argument("--kind", default="ims", choices=("ims", "random", "hot", "seq"))
    parser.add_argument("--rate", type=positive_float, default=40.0,
                        help="writes per second (default 40)")
    parser.add_argument("--duration", type=positive_float, default=6.0,
                        help="workload length in seconds (default 6)")
    parser.add_argument("--disaster-at", type=positive_float, default=4.5,
                        help="seconds into the workload when the primaries die (default 4.5)")
    parser.add_argument("--vol-blocks", type=positive_int, default=256)
    parser.add_argument("--runtime", choices=("cpython", "micropython"), default="cpython",
                        help="what every board runs in: this Python (default) or the MicroPython "
                             "unix port, with a Pico's heap")
    parser.add_argument("--clock-offset-us", type=nonneg_int, default=0,
                        help="start every board's microsecond clock at this value (e.g. just "
                             "below 2**30, to pass that point early)")
    parser.add_argument("--keep", action="store_true", help="leave the rig files (and --dir)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    parser.add_argument("--no-progress", action="store_true")


class _Stop(object):
    def __init__(self):
        self.flag = False
        self.at_us = None

    def is_set(self):
        return self.flag


def run(args):
    from host_tools import ops
    from host_tools.rig import manager as rigmgr
    from host_tools.rig import records
    from host_tools.rig import session
    from host_tools.rig import workload as rigwl
    out = sys.stderr if args.json else sys.stdout

    def say(msg=""):
        print(msg, file=out)
        out.flush()

    tmp = None
    d = args.dir
    if d is None:
        tmp = d = tempfile.mkdtemp(prefix="arcopy-demo-")
    d = os.path.abspath(d)
    interrupt_note(rig_note(d, "the demo's rig keeps running in %s" % d) if args.keep else
                   "the demo's rig was taken down: nothing keeps running")
    width = min(100, shutil.get_terminal_size((100, 24)).columns)

    def table(st):
        return ops.status.format_short(session.pair_rows(rig, st), width)
    t_start = time.monotonic()
    phases = {}
    rig = None
    result = {}
    try:
        t = time.monotonic()
        say("== rig up: %d pairs, %d baud buses and peer links, %s boards, dir %s"
            % (args.pairs, args.baud, args.runtime, d))
        rig = rigmgr.up(d, pairs=args.pairs, baud=args.baud, vol_blocks=args.vol_blocks,
                        force=True, runtime=args.runtime,
                        sets=["clock_offset_us=%d" % args.clock_offset_us] if args.clock_offset_us
                        else ())
        phases["up_s"] = time.monotonic() - t
        t = time.monotonic()
        say("== start copy")
        session.start_copy(rig)
        phases["start_copy_s"] = time.monotonic() - t
        say(table(session.collect_status(rig)))
        say("== workload: %s, %.0f writes/s for %.1f s; disaster at %.1f s"
            % (args.kind, args.rate, args.duration, args.disaster_at))
        wl = rigwl.make_workload(rig, args.kind, args.rate, args.duration, args.seed)
        drv = rigwl.SerialDriver(rig, wl)
        stop = _Stop()
        t0 = rigwl.mono_us()
        snap = {}

        def on_tick(now, drv_):
            if stop.flag:
                return
            if now - t0 >= args.disaster_at * 1e6:
                snap["status"] = session.collect_status(rig, timeout=0.3)
                rec = session.disaster(rig)
                stop.at_us = rec["disaster_us"]
                stop.flag = True

        cb, close = rigwl.tqdm_progress(min(args.duration, args.disaster_at),
                                        not args.no_progress and not args.json)
        t = time.monotonic()
        try:
            log = drv.run(stop=stop, progress=cb, on_tick=on_tick)
        finally:
            close()
        phases["workload_s"] = time.monotonic() - t
        if not stop.flag:                       # the workload ended first: disaster now
            snap["status"] = session.collect_status(rig, timeout=0.3)
            rec = session.disaster(rig)
        else:
            rec = records.load_disaster(rig)
        records.save_log(rig, log)
        summ = drv.summary()
        say("just before the disaster:")
        say(table(snap["status"]))
        say("== disaster: killed %s (kill -9); %d writes issued, %d acknowledged, %d in flight"
            % (", ".join(rec["killed"]), summ["issued"], summ["completed_ok"], summ["in_flight"]))
        t = time.monotonic()
        say("== failover, read back, verify")
        history = records.load_history(rig)
        with session.transport(rig, 1.0) as tr:
            res = ops.drill.recover(
                tr, session.secondaries(rig), log, rig["nvol"], rig["vol_blocks"],
                disaster_us=rec["disaster_us"], say=say, reader=session.reader(rig),
                adjust=lambda images: records.set_aside_history(images, log, history))
        phases["failover_verify_s"] = time.monotonic() - t
        fo, rep, v = res["failover"], res["report"], res["verdict"]
        say("recovered to checkpoint %d on every secondary: %s"
            % (fo["target_n"], "ok" if fo["ok"] else "FAILED %s" % fo["results"]))
        say("read %d blocks from %d secondaries" % (res["reads"]["reads"], len(fo["recovered"])))
        say(rep.summary())
        hub = {}
        try:
            hub = rigmgr.hub_call(rig, {"cmd": "stats"})["lines"]
        except Exception:
            pass
        pre = snap.get("status") or {}
        skew = [s["clock_err_us"] for s in pre.values()
                if s and s["role_name"] == "primary" and s["clock_err_us"] is not None]
        result = {
            "consistent": rep.consistent,
            "safety": v["safety"],
            "liveness": v["liveness"],
            "ok": v["ok"],
            "verdict": v["verdict"],
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
            "clock_err_us": max(skew) if skew else None,
            "bus_collisions": sum(v["collisions"] for k, v in hub.items() if k.startswith("bus")),
            "bus_garbled_bytes": sum(v["garbled"] for k, v in hub.items() if k.startswith("bus")),
            "phases_s": {k: round(v, 2) for k, v in phases.items()},
            "runtime": args.runtime,
        }
        figs = {b["name"]: rigmgr.heap(b) or {} for b in rig["boards"]
                if b.get("runtime") == "micropython"}
        if figs:
            heaps = {n: f.get("heap_peak") for n, f in figs.items()}
            caps = {n: f["mem_alloc"] + f["mem_free"] for n, f in figs.items() if "mem_free" in f}
            result["heap_peak"] = heaps
            result["heap_cap"] = caps
            result["heap_code"] = {n: f.get("code") for n, f in figs.items()}
            result["heap_ok"] = len(caps) == len(figs) and all(
                heaps[n] is not None and heaps[n] <= caps[n] for n in figs)
            say("peak heap per board (bytes, MicroPython, heap %s each): %s%s"
                % (", ".join(sorted(set(str(c) for c in caps.values()))) or "?",
                   ", ".join("%s %s" % kv for kv in sorted(heaps.items())),
                   "" if result["heap_ok"] else " (a board has no figure or is above its heap)"))
    finally:
        if not args.keep:
            take_down(d, rig)
        if tmp and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    result["wall_s"] = round(time.monotonic() - t_start, 2)
    say("== %s: %d of %d acknowledged writes recovered in a consistent image; RPO %.0f ms; "
        "%.1f s in all" % ("CONSISTENT" if result["consistent"] else "INCONSISTENT",
                           result["writes_completed"] - result["lost_acked"],
                           result["writes_completed"], result["rpo_ms"], result["wall_s"]))
    if args.keep and rig is not None:
        running = [r["name"] for r in rigmgr.listing(rig) if r["alive"]]
        result["kept_running"] = running
        say("kept running: %s (the secondaries failed over, open to host writes); files in %s; "
            "stop them: arcopy rig down --dir %s"
            % (", ".join(running) or "nothing", d, d) if running else "rig files kept in %s" % d)
    if args.json:
        print(json.dumps(result, indent=1, sort_keys=True))
    return 0 if result["consistent"] and result["failover_ok"] and result["ok"] and \
        result.get("heap_ok", True) else 1
