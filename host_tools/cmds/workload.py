"""arcopy workload: drive host writes into the primaries (or, with --to secondaries, the
failed-over secondaries) in real time (a Workload from host_tools/check/workload.py over the
host ports), with a progress bar; the workload log (issue and completion times of every
write) is saved in the rig directory, and the log it replaces goes into the rig's
history (see host_tools/rig/records.py). Says why writes failed (counts by status) and
which pairs suspended during the run, and how many writes each pair answered OK while it did
not protect them (the reply flag EXPOSED: suspended, or its cut too old); exit 1 when any
write failed or a board was lost."""
import sys

from host_tools.cmds import add_dir, emit_json, interrupt_note, load_rig
from host_tools.cmds.argtypes import nonneg_int, positive_float, positive_int

HINTS = {
    "READ_ONLY": "the board written is a secondary that is not failed over (write to the "
                 "primaries, or `arcopy failover` before --to secondaries)",
    "port gone": "the board's host port closed or does not open (board down?)",
    "no reply": "the board did not answer in time",
    "JOURNAL_FULL": "the journal stayed full (auto_suspend off): the peer link is too slow",
    "FENCED": "the board's secondary failed over (`arcopy failover`): write to the failed-over "
              "secondaries (--to secondaries), or run `arcopy failback`",
}


def add_arguments(parser):
    add_dir(parser)
    parser.add_argument("--kind", default="ims", choices=("ims", "random", "hot", "seq"))
    parser.add_argument("--rate", type=positive_float, default=50.0,
                        help="writes per second (default 50)")
    parser.add_argument("--duration", type=positive_float, default=5.0, help="seconds (default 5)")
    parser.add_argument("--concurrency", type=positive_int, default=4,
                        help="parallel streams (default 4)")
    parser.add_argument("--burst", type=nonneg_int, default=0, help="extra unpaced streams at the start")
    parser.add_argument("--seed", type=nonneg_int, default=1)
    parser.add_argument("--to", default="primaries", choices=("primaries", "secondaries"),
                        help="write into the primaries (default) or, after a failover, into "
                             "the failed-over secondaries")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--json", action="store_true", help="print the run summary as JSON")


def _states(rig, boards):
    """{pair: (copy state name, suspend reason name)} of `boards` now ({} entries for silent)."""
    from host_tools import ops
    from host_tools.rig import session
    with session.transport(rig, 0.5, 1) as t:
        out = {}
        for b in boards:
            s = ops.status.get(t, b["name"])
            if s is not None:
                out[b["pair"]] = (s["copy_state_name"], s.get("suspend_reason_name") or "")
        return out


def _exposed_why(st):
    """Why a pair's writes were answered EXPOSED, from its state after the run."""
    if st is None:
        return "unknown: the board did not answer STATUS"
    if st[0] == "SUSPENDED":
        return "suspended: %s" % (st[1] or "?")
    return "its oldest unacknowledged write was older than cut_age_max_us"


def run(args):
    from host_tools.rig import manager as rigmgr
    from host_tools.rig import records
    from host_tools.rig import session
    from host_tools.rig import workload as rigwl
    rig = load_rig(args)
    if rig is None:
        return 1
    err = sys.stderr
    boards = rigmgr.secondaries(rig) if args.to == "secondaries" else rigmgr.primaries(rig)
    labels = session.pair_labels(rig)
    wl = rigwl.make_workload(rig, args.kind, args.rate, args.duration, args.seed,
                             args.concurrency, args.burst)
    drv = rigwl.SerialDriver(rig, wl, boards=boards)
    if len(drv.unopened) == len(drv.boards):
        drv.close()
        for why in drv.unopened.values():
            print("arcopy workload: error: %s" % why, file=err)
        print("arcopy workload: error: no %s answers: nothing was written" % args.to[:-1], file=err)
        return 1
    for why in drv.unopened.values():
        print("arcopy workload: warning: %s: its writes fail" % why, file=err)
    before = _states(rig, boards)
    cb, close = rigwl.tqdm_progress(args.duration, not args.no_progress and not args.json)
    interrupted = False
    try:
        log = drv.run(progress=cb)
    except KeyboardInterrupt:
        interrupted = True
        drv.close()
        log = wl.log
        log.close(rigwl.mono_us())
    finally:
        close()
    path = records.save_log(rig, log)
    if interrupted:
        interrupt_note("writes stopped after %d issued (log saved in %s); the boards keep copying "
                       "what they acknowledged" % (wl.issued, path))
        raise KeyboardInterrupt
    after = _states(rig, boards)
    summ = drv.summary()
    summ["log"] = path
    summ["to"] = args.to
    summ["dead_pairs"] = [labels[i] for i in summ["dead_pairs"]]
    summ["suspended_pairs"] = {
        labels[i]: st[1] or "suspended" for i, st in sorted(after.items())
        if st[0] == "SUSPENDED" and before.get(i, ("",))[0] != "SUSPENDED"}
    summ["exposed"] = {labels[i]: {"writes": n, "why": _exposed_why(after.get(i))}
                       for i, n in summ["exposed"].items()}
    summ["ok"] = summ["failed"] == 0 and not summ["dead_pairs"] and summ["issued"] > 0
    names = {b["pair"]: b["name"] for b in boards}
    if args.json:
        emit_json(summ)
    else:
        print("%d writes issued, %d acknowledged, %d failed, %d in flight; latency p50 %s ms, "
              "p99 %s ms; log %s" % (summ["issued"], summ["completed_ok"], summ["failed"],
                                     summ["in_flight"], summ["latency_ms_p50"],
                                     summ["latency_ms_p99"], path))
    for why, n in sorted(summ["failed_by_status"].items(), key=lambda kv: -kv[1]):
        print("arcopy workload: %d write(s) failed: %s%s"
              % (n, why, ": " + HINTS[why] if why in HINTS else ""), file=err)
    for lab, reason in summ["suspended_pairs"].items():
        i = [k for k, v in labels.items() if v == lab][0]
        print("arcopy workload: warning: pair %s (%s) suspended during the run (%s): its writes are "
              "marked for `arcopy resume`, not copied" % (lab, names.get(i), reason), file=err)
    for lab, e in summ["exposed"].items():
        print("arcopy workload: warning: %d write(s) answered while pair %s was not protected (%s)"
              % (e["writes"], lab, e["why"]), file=err)
    for lab in summ["dead_pairs"]:
        i = [k for k, v in labels.items() if v == lab][0]
        print("arcopy workload: %s's host port closed or did not open (board down?): its writes "
              "failed, those in flight when it went have an unknown outcome" % names.get(i), file=err)
    return 0 if summ["ok"] else 1
