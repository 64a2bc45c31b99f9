"""arcopy workload: drive host writes into the primaries (or, with --to secondaries, the
failed-over secondaries) in real time (a Workload from host_tools/check/workload.py over the
host ports), with a progress bar; the workload log (issue and completion times of every
write) is saved in the rig directory, and the log it replaces goes into the rig's
history (see host_tools/rig/records.py)."""
import json

from host_tools.cmds import add_dir, load_rig


def add_arguments(parser):
    add_dir(parser)
    parser.add_argument("--kind", default="ims", choices=("ims", "random", "hot", "seq"))
    parser.add_argument("--rate", type=float, default=50.0, help="writes per second (default 50)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds (default 5)")
    parser.add_argument("--concurrency", type=int, default=4, help="parallel streams (default 4)")
    parser.add_argument("--burst", type=int, default=0, help="extra unpaced streams at the start")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--to", default="primaries", choices=("primaries", "secondaries"),
                        help="write into the primaries (default) or, after a failover, into "
                             "the failed-over secondaries")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--json", action="store_true", help="print the run summary as JSON")


def run(args):
    from host_tools.rig import manager as rigmgr
    from host_tools.rig import records
    from host_tools.rig import workload as rigwl
    rig = load_rig(args)
    if rig is None:
        return 1
    wl = rigwl.make_workload(rig, args.kind, args.rate, args.duration, args.seed,
                             args.concurrency, args.burst)
    boards = rigmgr.secondaries(rig) if args.to == "secondaries" else None
    drv = rigwl.SerialDriver(rig, wl, boards=boards)
    cb, close = rigwl.tqdm_progress(args.duration, not args.no_progress and not args.json)
    try:
        log = drv.run(progress=cb)
    except KeyboardInterrupt:
        log = wl.log
        log.close(rigwl.mono_us())
    finally:
        close()
    path = records.save_log(rig, log)
    summ = drv.summary()
    summ["log"] = path
    if args.json:
        print(json.dumps(summ, indent=1))
    else:
        print("%d writes issued, %d acknowledged, %d failed, %d in flight; latency p50 %s ms, "
              "p99 %s ms; log %s" % (summ["issued"], summ["completed_ok"], summ["failed"],
                                     summ["in_flight"], summ["latency_ms_p50"],
                                     summ["latency_ms_p99"], path))
    return 0
