"""arcopy set-mode sync|async: the copy mode of the whole group (C_SET_MODE to every board, in order)."""
# sync completes a host write once its secondary journaled it (failover rolls forward, RPO 0),
# async completes it at once and copies it in sequence-consistent checkpoints. The mode is the
# group's: to sync the primaries switch first and the secondaries once every asynchronous record
# is applied; to async the secondaries switch first (host_tools/ops/pairs.py set_mode).
import sys

from firmware import wire

from host_tools.cmds import add_dir, run_on_rig


def add_arguments(parser):
    parser.add_argument("mode", choices=("sync", "async"), help="sync or async")
    add_dir(parser)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args):
    from host_tools import ops
    from host_tools.cmds import pairverb

    def set_mode(rig, t, prog):
        from host_tools.rig import session
        pairs = session.pairs(rig)          # the whole group: a mode per pair is not recoverable
        res = ops.pairs.set_mode(t, pairs, args.mode)
        why = pairverb.explain(t, res)
        for b, rc in res.items():
            if rc == wire.S_BAD_COMMAND:
                why[b] = "this firmware does not change the mode at run time"
            elif rc == wire.S_BAD_STATE:
                why[b] += ": a clockless board keeps its mode" if "clockless" in why[b] else \
                    ": its journal still holds writes copied asynchronously; try again"
        for i in sorted(pairs):
            if pairs[i][0] in res and res[pairs[i][0]] != wire.S_OK:
                why.setdefault(pairs[i][1], "not asked: its primary refused")
        return pairs, res, why
    out = run_on_rig(args, set_mode)
    if out is None:
        return 1
    rig, (pairs, res, why), _ = out
    rc = pairverb.report(args, rig, pairs, "SET_MODE(%s)" % args.mode, res, why,
                         {"mode": args.mode})
    if any(v == wire.S_BAD_COMMAND for v in res.values()):
        print("arcopy set-mode: the boards refused SET_MODE: their mode is configured: set `mode = "
              "\"%s\"` in the rig file and run `arcopy provision` again (emulated rig: `arcopy rig "
              "up --set mode=%d`)" % ("sync" if args.mode == "sync" else "clock",
                                      ops.pairs.MODES[args.mode]), file=sys.stderr)
    return rc
