"""arcopy delete-pair: end pairs (C_STOP_COPY to their primaries); the primary goes SIMPLEX and keeps serving writes."""
# arcopy delete-pair: end pairs (C_STOP_COPY to their primaries): the primary goes SIMPLEX
# and keeps serving writes (recorded in its change bitmap), the secondary keeps its volume;
# `arcopy start-copy --pair P` makes the pair again (copying the marked blocks).
from host_tools.cmds import add_dir, add_pair


def add_arguments(parser):
    add_dir(parser)
    add_pair(parser, required=True)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args):
    from host_tools import ops
    from host_tools.cmds import pairverb
    return pairverb.run_verb(args, "STOP_COPY", ops.pairs.stop_copy,
                             note="STOP_COPY may have reached some primaries: `arcopy status` "
                                  "shows which pairs are SIMPLEX")
