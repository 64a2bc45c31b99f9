"""arcopy suspend: suspend pairs (C_SUSPEND to their primaries). Host writes go on at
the primary and are recorded in its change bitmap; the secondary leaves the consistency
group and keeps its volume at its last applied checkpoint until `arcopy resume`."""
import sys

from host_tools.cmds import add_dir, bench_dir


def add_pair_selection(parser):
    g = parser.add_mutually_exclusive_group(required=True)
    g.add_argument("--pair", type=int, default=None, help="pair index (as `arcopy status` shows)")
    g.add_argument("--all", action="store_true", help="every pair")


def add_arguments(parser):
    add_dir(parser)
    add_pair_selection(parser)


def run(args):
    from host_tools.rig import manager as rigmgr
    from host_tools.ops import pairs as pairops
    from host_tools.transport.serial_client import ClientError, status_name
    try:
        bench = rigmgr.load(bench_dir(args))
        pairs = pairops.select_pairs(bench, args.pair, args.all)
        res = pairops.suspend(bench, pairs)
    except (rigmgr.BenchError, ClientError) as e:
        print("error: %s" % e, file=sys.stderr)
        return 1
    for n, rc in sorted(res.items()):
        print("%s: SUSPEND -> %s" % (n, status_name(rc)))
    return 0 if all(rc == 0 for rc in res.values()) else 1
