"""arcopy start-copy: C_START_COPY to the primaries of the rig (the initial copy: the
blocks written since format, or every block with --full), then wait until every pair
is duplex and a first checkpoint has been applied at every secondary, with a progress
bar of the blocks copied. --pair P starts one pair (e.g. after delete-pair, or a
replaced secondary with --full)."""
from host_tools.cmds import add_dir, add_pair, interrupt_note, run_on_rig
from host_tools.cmds.argtypes import positive_float


def add_arguments(parser):
    add_dir(parser)
    add_pair(parser, all_flag=False, help_extra=" (default: every pair)")
    parser.add_argument("--full", action="store_true",
                        help="copy every block (default: only the blocks written since format)")
    parser.add_argument("--no-wait", action="store_true", help="send the commands and return")
    parser.add_argument("--timeout", type=positive_float, default=60.0,
                        help="seconds to wait (default 60)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args):
    from host_tools import ops
    from host_tools.cmds import pairverb

    def start(rig, t, prog):
        pairs = pairverb.pick(args, rig)
        interrupt_note("the copy continues on the boards (`arcopy status --dir %s` shows it)"
                       % rig["dir"])
        res, copied = ops.copy.start_copy(t, pairs, full=args.full, wait=not args.no_wait,
                                          timeout=args.timeout, progress=prog)
        return pairs, res, copied, pairverb.explain(t, res)
    out = run_on_rig(args, start, "initial copy", not (args.no_wait or args.json))
    if out is None:
        return 1
    rig, (pairs, res, copied, why), prog = out
    verb = "START_COPY(full)" if args.full else "START_COPY"
    if args.json:
        return pairverb.report(args, rig, pairs, verb, res, why, {"copied": copied_json(rig, copied)})
    rc = pairverb.report(args, rig, pairs, verb, res, why)
    if copied:
        print(prog.final_line())
        print_copied(rig, copied)
        print("copy active on %d pair(s)" % len(copied))
    return rc


def copied_json(rig, copied):
    from host_tools.rig import session
    labels = session.pair_labels(rig)
    return {labels[i]: c for i, c in sorted(copied.items())}


def print_copied(rig, copied):
    from host_tools.rig import session
    labels = session.pair_labels(rig)
    for i, c in sorted(copied.items()):
        print("pair %s (%s -> %s): %d blocks copied" % (labels[i], c["primary"], c["secondary"],
                                                        c["copied"]))
