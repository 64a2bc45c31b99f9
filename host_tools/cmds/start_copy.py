"""arcopy start-copy: C_START_COPY to every primary of the rig (the initial copy: the
blocks written since format, or every block with --full), then wait until every pair
is duplex and a first checkpoint has been applied at every secondary, with a progress
bar of the blocks copied."""
from host_tools.cmds import add_dir, run_on_rig


def add_arguments(parser):
    add_dir(parser)
    parser.add_argument("--full", action="store_true",
                        help="copy every block (default: only the blocks written since format)")
    parser.add_argument("--no-wait", action="store_true", help="send the commands and return")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait (default 60)")


def run(args):
    from host_tools import ops
    from host_tools.rig import session
    from host_tools.transport.messages import status_name
    out = run_on_rig(
        args, lambda rig, t, prog: ops.copy.start_copy(t, session.pairs(rig), full=args.full,
                                                       wait=not args.no_wait,
                                                       timeout=args.timeout, progress=prog),
        "initial copy", not args.no_wait)
    if out is None:
        return 1
    rig, (res, copied), prog = out
    for n, rc in sorted(res.items()):
        print("%s: START_COPY%s -> %s" % (n, "(full)" if args.full else "", status_name(rc)))
    ok = all(rc == 0 for rc in res.values())
    if copied:
        print(prog.final_line())
        print_copied(copied)
        print("copy active on %d pairs" % rig["pairs"])
    return 0 if ok else 1


def print_copied(copied):
    for i, c in sorted(copied.items()):
        print("pair %d (%s -> %s): %d blocks copied" % (i, c["primary"], c["secondary"],
                                                        c["copied"]))
