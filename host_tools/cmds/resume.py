"""arcopy resume: resume suspended pairs (C_RESUME to their primaries): each copies the
blocks marked in its change bitmap, then joins the consistency group again; waits (with
a progress bar) until the pairs are duplex with a checkpoint applied, and prints how
many blocks each pair copied."""
from host_tools.cmds import add_dir, interrupt_note, run_on_rig
from host_tools.cmds.argtypes import positive_float
from host_tools.cmds.suspend import add_pair_selection


def add_arguments(parser):
    add_dir(parser)
    add_pair_selection(parser)
    parser.add_argument("--no-wait", action="store_true", help="send the commands and return")
    parser.add_argument("--timeout", type=positive_float, default=60.0,
                        help="seconds to wait (default 60)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args):
    from host_tools import ops
    from host_tools.cmds import pairverb
    from host_tools.cmds.start_copy import copied_json, print_copied

    def resume(rig, t, prog):
        pairs = pairverb.pick(args, rig)
        interrupt_note("the resync continues on the boards (`arcopy status --dir %s` shows it)"
                       % rig["dir"])
        res, copied = ops.pairs.resume(t, pairs, wait=not args.no_wait, timeout=args.timeout,
                                       progress=prog)
        return pairs, res, copied, pairverb.explain(t, res)
    out = run_on_rig(args, resume, "resync", not (args.no_wait or args.json))
    if out is None:
        return 1
    rig, (pairs, res, copied, why), prog = out
    if args.json:
        return pairverb.report(args, rig, pairs, "RESUME", res, why,
                               {"copied": copied_json(rig, copied)})
    rc = pairverb.report(args, rig, pairs, "RESUME", res, why)
    if copied:
        print(prog.final_line())
        print_copied(rig, copied)
    return rc
