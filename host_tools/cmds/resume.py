"""arcopy resume: resume suspended pairs (C_RESUME to their primaries): each copies the
blocks marked in its change bitmap, then joins the consistency group again; waits (with
a progress bar) until the pairs are duplex with a checkpoint applied, and prints how
many blocks each pair copied."""
from host_tools.cmds import add_dir, run_on_rig
from host_tools.cmds.suspend import add_pair_selection


def add_arguments(parser):
    add_dir(parser)
    add_pair_selection(parser)
    parser.add_argument("--no-wait", action="store_true", help="send the commands and return")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait (default 60)")


def run(args):
    from host_tools import ops
    from host_tools.rig import session
    from host_tools.transport.messages import status_name
    from host_tools.cmds.start_copy import print_copied

    def resume(rig, t, prog):
        which = ops.pairs.select_pairs(rig["pairs"], args.pair, args.all)
        return ops.pairs.resume(t, session.pairs(rig, which), wait=not args.no_wait,
                                timeout=args.timeout, progress=prog)
    out = run_on_rig(args, resume, "resync", not args.no_wait)
    if out is None:
        return 1
    rig, (res, copied), prog = out
    for n, rc in sorted(res.items()):
        print("%s: RESUME -> %s" % (n, status_name(rc)))
    if copied:
        print(prog.final_line())
        print_copied(copied)
    return 0 if all(rc == 0 for rc in res.values()) else 1
