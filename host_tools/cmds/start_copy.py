"""arcopy start-copy: C_START_COPY to every primary of the bench (the initial copy: the
blocks written since format, or every block with --full), then wait until every pair
is duplex and a first checkpoint has been applied at every secondary, with a progress
bar of the blocks copied."""
from host_tools.cmds import add_dir, run_with_copy_progress


def add_arguments(parser):
    add_dir(parser)
    parser.add_argument("--full", action="store_true",
                        help="copy every block (default: only the blocks written since format)")
    parser.add_argument("--no-wait", action="store_true", help="send the commands and return")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait (default 60)")


def run(args):
    from host_tools.ops import pairs as pairops
    from host_tools.transport.serial_client import status_name
    out = run_with_copy_progress(
        args, "initial copy", not args.no_wait,
        lambda bench, prog: pairops.start_copy(bench, full=args.full, wait=not args.no_wait,
                                               timeout=args.timeout, progress=prog))
    if out is None:
        return 1
    bench, (res, copied), prog = out
    for n, rc in sorted(res.items()):
        print("%s: START_COPY%s -> %s" % (n, "(full)" if args.full else "", status_name(rc)))
    ok = all(rc == 0 for rc in res.values())
    if copied:
        print(prog.final_line())
        print_copied(copied)
        print("copy active on %d pairs" % bench["pairs"])
    return 0 if ok else 1


def print_copied(copied):
    for i, c in sorted(copied.items()):
        print("pair %d (%s -> %s): %d blocks copied" % (i, c["primary"], c["secondary"],
                                                        c["copied"]))
