"""arcopy report [--record] RUN_DIR: record an observed simulator run, render its plots and summary."""
import os
import sys

from host_tools.cmds.argtypes import nonneg_int, positive_float, positive_int
from host_tools.perf.report import FILES, record, render


def add_arguments(p):
    p.add_argument("run_dir", metavar="RUN_DIR", help="directory of a recorded run")
    p.add_argument("--record", action="store_true",
                   help="run and record a simulator drill into RUN_DIR first, then render it")
    p.add_argument("--quick", action="store_true", help="record a short, small run (2 pairs, 4 s)")
    p.add_argument("--seed", type=nonneg_int, default=1)
    p.add_argument("--pairs", type=positive_int, default=None, help="subsystem pairs (default 4; --quick 2)")
    p.add_argument("--duration", type=positive_float, default=None,
                   help="simulated seconds until the disaster (default 12; --quick 4)")
    p.add_argument("--rate", type=positive_float, default=None,
                   help="host writes per second, all pairs (ims workload; default 8 per pair, about "
                        "40%% of what a peer link carries)")
    p.add_argument("--ckpt-ms", type=positive_float, default=200.0, help="checkpoint interval (ms)")
    p.add_argument("--burst", type=nonneg_int, default=None,
                   help="extra transactions (3 writes each) started at once at 40%% of the run, "
                        "overrunning the peer links (default 6 per pair)")
    p.add_argument("--sample-ms", type=positive_float, default=50.0, help="time-series sampling period (ms)")


def run(args):
    d = args.run_dir
    if args.record:
        pairs = args.pairs or (2 if args.quick else 4)
        summary = record(d, seed=args.seed, pairs=pairs,
                         duration_s=args.duration or (4.0 if args.quick else 12.0),
                         rate=args.rate or 8.0 * pairs, ckpt_ms=args.ckpt_ms, sample_ms=args.sample_ms,
                         burst=6 * pairs if args.burst is None else args.burst)
        print("recorded %s: consistent %s, RPO %.1f ms, %d writes, %d checkpoint rounds"
              % (d, summary["consistent"], summary["rpo_ms"], summary["writes_completed"],
                 summary["rounds"]))
    elif not os.path.exists(os.path.join(d, FILES["run"])):
        print("arcopy report: %s holds no %s (record one with `arcopy report --record %s`)"
              % (d, FILES["run"], d), file=sys.stderr)
        return 2
    out = render(d)
    print("wrote " + ", ".join(os.path.join(d, f) for f in out))
    return 0
