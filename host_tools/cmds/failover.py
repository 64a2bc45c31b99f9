"""arcopy failover: recover every secondary to the newest released checkpoint and open
it to the host (C_FAILOVER(n, T) to each, the secondary master first)."""
import json
import sys

from host_tools.cmds import add_dir, bench_dir


def add_arguments(parser):
    add_dir(parser)
    parser.add_argument("--settle", type=float, default=10.0,
                        help="at most this long to let released rounds finish (default 10 s)")
    parser.add_argument("--json", action="store_true")


def run(args):
    from host_tools.rig import manager as rigmgr
    from host_tools.ops import procedures as rigops
    from host_tools.transport.serial_client import ClientError
    try:
        bench = rigmgr.load(bench_dir(args))
        res = rigops.failover(bench, settle_timeout=args.settle,
                                log=None if args.json else print)
    except (rigmgr.BenchError, ClientError) as e:
        print("error: %s" % e, file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(res, indent=1))
    else:
        print("failover to checkpoint %d (T=%d): %s" % (res["target_n"], res["target_t"],
                                                        "ok" if res["ok"] else "FAILED"))
        for n, rc in res["results"].items():
            print("  %s: %s, applied %s" % (n, rc, res["applied"].get(n)))
        if res["unreachable"]:
            print("  unreachable: %s" % ", ".join(res["unreachable"]))
    return 0 if res["ok"] else 1
