"""arcopy suspend: suspend pairs (C_SUSPEND to their primaries). Host writes go on at
the primary and are recorded in its change bitmap; the secondary leaves the consistency
group and keeps its volume at its last applied checkpoint until `arcopy resume`."""
from host_tools.cmds import add_dir, add_pair


def add_pair_selection(parser):
    add_pair(parser, required=True)


def add_arguments(parser):
    add_dir(parser)
    add_pair_selection(parser)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args):
    from host_tools import ops
    from host_tools.cmds import pairverb
    return pairverb.run_verb(args, "SUSPEND", ops.pairs.suspend)
