"""arcopy failback: after `arcopy failover` (and host writes at the secondaries), make
the failed-over secondaries the primaries and copy back only what changed:
FAILBACK(secondary) to the old primaries, their changed blocks merged into their peers'
bitmaps, FAILBACK(primary) to the old secondaries, then wait (progress bar) until every
pair is duplex in the new direction. The rig file records the swapped roles, so that
workload, disaster, failover and verify follow. First it lists the blocks written at the old
primaries after the failover (a fenced old primary with fence_writes off takes writes as
change-bitmap marks) and refuses, exit 1, when there are any, unless --force."""
import json

import sys

from host_tools.cmds import add_dir, interrupt_note, run_on_rig
from host_tools.cmds.argtypes import positive_float


def add_arguments(parser):
    add_dir(parser)
    parser.add_argument("--pair", default=None, metavar="PAIR",
                        help="not supported: a failback swaps the roles of both whole sites, "
                             "every pair at once")
    parser.add_argument("--no-wait", action="store_true",
                        help="return once the commands are sent (the copy back runs on)")
    parser.add_argument("--timeout", type=positive_float, default=120.0,
                        help="seconds to wait (default 120)")
    parser.add_argument("--force", action="store_true",
                        help="go on even when the old primaries hold blocks written after the "
                             "failover (the failback overwrites them)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args):
    from host_tools import ops
    from host_tools.rig import manager as rigmgr
    from host_tools.rig import session

    if args.pair is not None:
        print("arcopy failback: error: --pair %s: a failback swaps the roles of both sites, every "
              "pair at once (one pair alone would leave both roles on one site bus); run "
              "`arcopy failback` without --pair" % args.pair, file=sys.stderr)
        return 2

    def failback(rig, t, prog):
        interrupt_note("failback interrupted part-way: what the boards took stays done and the "
                       "copy back continues on them; run `arcopy failback --dir %s` again to "
                       "finish (it is safe to repeat)" % rig["dir"])
        return ops.failback.failback(t, session.pairs(rig), rig["nvol"], rig["vol_blocks"],
                                     wait=not args.no_wait, timeout=args.timeout, progress=prog,
                                     log=None if args.json else print,
                                     on_swapped=lambda done: rigmgr.swap_roles(rig, done),
                                     force=args.force)
    out = run_on_rig(args, failback, "copy back", not (args.no_wait or args.json))
    if out is None:
        return 1
    rig, res, prog = out
    if args.json:
        res = dict(res, pairs={session.pair_labels(rig)[i]: p for i, p in res["pairs"].items()})
        print(json.dumps(res, indent=1, sort_keys=True))
        return 0 if res["ok"] else 1
    if not res["ok"]:
        print("failback FAILED: %s" % ", ".join("%s %s" % kv for kv in sorted(res["results"].items())))
        return 1
    if prog is not None:
        print(prog.final_line())
    labels = session.pair_labels(rig)
    for i, p in sorted(res["pairs"].items()):
        line = "pair %s: primary %s -> secondary %s" % (labels[i], p["old_secondary"], p["old_primary"])
        if "copied" in p:
            line += ": %d blocks copied (%d marked at %s merged)" % (
                p["copied"], p["merged"], p["old_primary"])
        print(line)
    print("failback done: primaries now %s" % ", ".join(
        b["name"] for b in rigmgr.primaries(rigmgr.load(rig["dir"]))))
    return 0
