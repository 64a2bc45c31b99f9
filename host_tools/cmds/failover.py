"""arcopy failover: recover every secondary to the newest released checkpoint and open
it to the host (C_FAILOVER(n, T) to each, the secondary master first)."""
import json

from host_tools.cmds import add_dir, run_on_rig


def add_arguments(parser):
    add_dir(parser)
    parser.add_argument("--settle", type=float, default=10.0,
                        help="at most this long to let released rounds finish (default 10 s)")
    parser.add_argument("--json", action="store_true")


def run(args):
    from host_tools import ops
    from host_tools.rig import manager as rigmgr
    out = run_on_rig(args, lambda rig, t, prog: ops.failover.failover(
        t, [b["name"] for b in rigmgr.secondaries(rig)], settle_timeout=args.settle,
        log=None if args.json else print))
    if out is None:
        return 1
    _, res, _ = out
    if args.json:
        print(json.dumps(res, indent=1))
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
    return 0 if res["ok"] else 1
