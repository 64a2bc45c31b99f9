"""arcopy verify: read every block of the secondary volumes that hold an image through
their host ports and check them against the saved workload log; a secondary in a resync
holds none and is reported apart (liveness), never checked as if it held one. Exit 1 if
the verdict is not ok or the rig or the log cannot be read."""
import json
import sys

from host_tools.cmds import add_dir, errors, rig_dir


def add_arguments(parser):
    add_dir(parser)
    parser.add_argument("--json", action="store_true", help="print the full report as JSON")


def run(args):
    from host_tools.rig import manager as rigmgr
    from host_tools.rig import session
    try:
        rig = rigmgr.load(rig_dir(args))
        rep, v, stats = session.check(rig)
    except errors() as e:
        print("arcopy verify: error: %s" % e, file=sys.stderr)
        return 1
    if args.json:
        d = rep.to_dict()
        d["reads"] = stats
        d.update({k: v[k] for k in ("safety", "liveness", "ok", "verdict")})
        print(json.dumps(d, indent=1, sort_keys=True))
    else:
        print("read %d blocks from %d secondaries (%d busy retries, %d failed%s)"
              % (stats["reads"], rig["pairs"] - v["liveness"]["no_image"]
                 - v["liveness"]["no_image_yet"], stats["busy_retries"], stats["failed"],
                 ", %d hold writes of earlier runs" % stats["earlier_blocks"]
                 if stats.get("earlier_blocks") else ""))
        print(rep.summary())
        live = v["liveness"]
        if not v["ok"]:
            print("verdict: %s (safety %s; liveness %s)" % (v["verdict"], v["safety"], live))
        elif live["no_image_yet"]:
            print("%d pair(s) without an image yet (first copy not done)" % live["no_image_yet"])
    if not v["ok"]:
        print("arcopy verify: verdict %s (safety %s; liveness %s)" % (v["verdict"], v["safety"],
                                                                     v["liveness"]), file=sys.stderr)
    return 0 if v["ok"] else 1
