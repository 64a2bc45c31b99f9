"""arcopy start-copy: C_START_COPY to every primary of the bench, then wait until every
pair is duplex and a first checkpoint has been applied at every secondary."""
import sys

from host_tools.cmds import add_dir, bench_dir


def add_arguments(parser):
    add_dir(parser)
    parser.add_argument("--no-wait", action="store_true", help="send the commands and return")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds to wait (default 20)")


def run(args):
    from host_tools import benchrig, benchops
    from host_tools.client import ClientError, status_name
    try:
        bench = benchrig.load(bench_dir(args))
        res = benchops.start_copy(bench, wait=not args.no_wait, timeout=args.timeout)
    except (benchrig.BenchError, ClientError) as e:
        print("error: %s" % e, file=sys.stderr)
        return 1
    for n, rc in sorted(res.items()):
        print("%s: START_COPY -> %s" % (n, status_name(rc)))
    if not args.no_wait:
        print("copy active on %d pairs" % bench["pairs"])
    return 0 if all(rc == 0 for rc in res.values()) else 1
