"""arcopy verify: read every block of every secondary volume through its host port and
check the images against the saved workload log; exit 1 if inconsistent."""
import json
import sys

from host_tools.cmds import add_dir, bench_dir


def add_arguments(parser):
    add_dir(parser)
    parser.add_argument("--json", action="store_true", help="print the full report as JSON")


def run(args):
    from host_tools.rig import manager as rigmgr
    from host_tools.ops import procedures as rigops
    from host_tools.transport.serial_client import ClientError
    try:
        bench = rigmgr.load(bench_dir(args))
        rep, stats = rigops.verify(bench)
    except (rigmgr.BenchError, ClientError) as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    if args.json:
        d = rep.to_dict()
        d["reads"] = stats
        print(json.dumps(d, indent=1))
    else:
        print("read %d blocks from %d secondaries (%d busy retries, %d failed%s)"
              % (stats["reads"], bench["pairs"], stats["busy_retries"], stats["failed"],
                 ", %d hold writes of earlier runs" % stats["earlier_blocks"]
                 if stats.get("earlier_blocks") else ""))
        print(rep.summary())
    return 0 if rep.consistent else 1
