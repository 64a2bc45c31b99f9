"""arcopy suspend: suspend pairs (C_SUSPEND to their primaries). Host writes go on at
the primary and are recorded in its change bitmap; the secondary leaves the consistency
group and keeps its volume at its last applied checkpoint until `arcopy resume`."""
from host_tools.cmds import add_dir, run_on_rig


def add_pair_selection(parser):
    g = parser.add_mutually_exclusive_group(required=True)
    g.add_argument("--pair", type=int, default=None, help="pair index (as `arcopy status` shows)")
    g.add_argument("--all", action="store_true", help="every pair")


def add_arguments(parser):
    add_dir(parser)
    add_pair_selection(parser)


def run(args):
    from host_tools import ops
    from host_tools.rig import session
    from host_tools.transport.messages import status_name

    def suspend(rig, t, prog):
        which = ops.pairs.select_pairs(rig["pairs"], args.pair, args.all)
        return ops.pairs.suspend(t, session.pairs(rig, which))
    out = run_on_rig(args, suspend)
    if out is None:
        return 1
    _, res, _ = out
    for n, rc in sorted(res.items()):
        print("%s: SUSPEND -> %s" % (n, status_name(rc)))
    return 0 if all(rc == 0 for rc in res.values()) else 1
