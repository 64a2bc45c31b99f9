"""arcopy failover: recover every secondary to the newest released checkpoint and open
it to the host (C_FAILOVER(n, T) to each, the secondary master first)."""
import json
import sys

from host_tools.cmds import add_dir, add_pair, interrupt_note, run_on_rig
from host_tools.cmds.argtypes import positive_float


def add_arguments(parser):
    add_dir(parser)
    add_pair(parser, all_flag=False,
             help_extra=" (default: every pair; one pair alone recovers to the newest cut its "
                        "secondary knows released)")
    parser.add_argument("--settle", type=positive_float, default=10.0,
                        help="at most this long to let released rounds finish (default 10 s)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args):
    from host_tools import ops
    from host_tools.cmds import pairverb

    def failover(rig, t, prog):
        pairs = pairverb.pick(args, rig)
        interrupt_note("secondaries that took FAILOVER stay failed over and open to writes; "
                       "run `arcopy failover --dir %s` again to finish" % rig["dir"])
        return ops.failover.failover(t, [pairs[i][1] for i in sorted(pairs)],
                                     settle_timeout=args.settle, log=None if args.json else print)
    out = run_on_rig(args, failover)
    if out is None:
        return 1
    _, res, _ = out
    if args.json:
        print(json.dumps(res, indent=1, sort_keys=True))
    else:
        print("failover to checkpoint %d (T=%d): %s" % (res["target_n"], res["target_t"],
                                                        "ok" if res["ok"] else "FAILED"))
        for n, rc in res["results"].items():
            print("  %s: %s, applied %s" % (n, rc, res["applied"].get(n)))
        for key, what in (("no_image", "no image (a resync was running)"),
                          ("no_image_yet", "no image yet (first copy not done)"),
                          ("silent", "no answer to FAILOVER"), ("unreachable", "unreachable")):
            if res[key]:
                print("  %s: %s" % (what, ", ".join(res[key])))
        if res["no_common_cut"]:
            print("  no common cut: a secondary never received checkpoint %d" % res["target_n"])
    if not res["ok"]:
        what = [k for k in ("no_image", "no_image_yet", "silent", "unreachable") if res[k]]
        print("arcopy failover: failed: %s" % ("; ".join(
            "%s %s" % (k.replace("_", " "), ", ".join(res[k])) for k in what)
            or "no common cut"), file=sys.stderr)
    return 0 if res["ok"] else 1
