"""arcopy resume: resume suspended pairs (C_RESUME to their primaries): each copies the
blocks marked in its change bitmap, then joins the consistency group again; waits (with
a progress bar) until the pairs are duplex with a checkpoint applied, and prints how
many blocks each pair copied."""
import sys

from host_tools.cmds import add_dir, bench_dir
from host_tools.cmds.suspend import add_pair_selection


def add_arguments(parser):
    add_dir(parser)
    add_pair_selection(parser)
    parser.add_argument("--no-wait", action="store_true", help="send the commands and return")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait (default 60)")


def run(args):
    from host_tools import benchrig, pairops
    from host_tools.client import ClientError, status_name
    from host_tools.cmds.start_copy import print_copied
    prog = None
    try:
        bench = benchrig.load(bench_dir(args))
        pairs = pairops.select_pairs(bench, args.pair, args.all)
        prog = None if args.no_wait else pairops.CopyProgress("resync")
        res, copied = pairops.resume(bench, pairs, wait=not args.no_wait, timeout=args.timeout,
                                     progress=prog)
    except (benchrig.BenchError, ClientError) as e:
        if prog is not None:
            prog.close()
        print("error: %s" % e, file=sys.stderr)
        return 1
    if prog is not None:
        prog.close()
    for n, rc in sorted(res.items()):
        print("%s: RESUME -> %s" % (n, status_name(rc)))
    if copied:
        print(prog.final_line())
        print_copied(copied)
    return 0 if all(rc == 0 for rc in res.values()) else 1
