"""arcopy delete-pair: end pairs (C_STOP_COPY to their primaries); the primary goes SIMPLEX and keeps serving writes."""
# arcopy delete-pair: end pairs (C_STOP_COPY to their primaries): the primary goes SIMPLEX
# and keeps serving writes (recorded in its change bitmap), the secondary keeps its volume;
# `arcopy start-copy --pair P` makes the pair again (copying the marked blocks).
from host_tools.cmds import add_dir, add_pair, interrupt_note, run_on_rig


def add_arguments(parser):
    add_dir(parser)
    add_pair(parser, required=True)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args):
    from host_tools import ops
    from host_tools.cmds import pairverb

    def stop(rig, t, prog):
        pairs = pairverb.pick(args, rig)
        interrupt_note("STOP_COPY may have reached some primaries: `arcopy status` shows which "
                       "pairs are SIMPLEX")
        res = ops.pairs.stop_copy(t, pairs)
        return pairs, res, pairverb.explain(t, res)
    out = run_on_rig(args, stop)
    if out is None:
        return 1
    rig, (pairs, res, why), _ = out
    return pairverb.report(args, rig, pairs, "STOP_COPY", res, why)
