"""arcopy verify: read every block of the secondary volumes that hold an image through
their host ports and check them against the saved workload log; a secondary in a resync
holds none and is reported apart (liveness), never checked as if it held one. Exit 1 if
the verdict is not ok or the rig or the log cannot be read.

arcopy verify --sites: read both volumes of every pair and compare them block for block
(after a failback, with the host quiet, they must be identical); exit 1 on any difference."""
import json
import sys

from host_tools.cmds import add_dir, errors, rig_dir


def add_arguments(parser):
    add_dir(parser)
    parser.add_argument("--json", action="store_true", help="print the full report as JSON")
    parser.add_argument("--sites", action="store_true",
                        help="compare each pair's primary and secondary volumes block for block "
                             "(with the host quiet, e.g. after a failback) instead")


def run(args):
    if args.sites:
        return run_sites(args)
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


def run_sites(args):
    from host_tools.rig import manager as rigmgr
    from host_tools.rig import session
    try:
        rig = rigmgr.load(rig_dir(args))
        res = session.compare_sites(rig)
    except errors() as e:
        print("arcopy verify: error: %s" % e, file=sys.stderr)
        return 1
    ok = not res["differ"] and not res["unreadable"]
    if args.json:
        print(json.dumps({"ok": ok, "blocks": res["blocks"], "reads": res["reads"],
                          "differ": {str(i): [list(x) for x in b] for i, b in res["differ"].items()},
                          "unreadable": {str(i): b for i, b in res["unreadable"].items()}},
                         indent=1, sort_keys=True))
    else:
        print("compared %d blocks of %d pair(s), both sites" % (res["blocks"], rig["pairs"]))
        for i, blocks in sorted(res["differ"].items()):
            shown = ", ".join("%d:%d" % vb for vb in blocks[:8])
            print("pair %d: %d block(s) differ (%s%s)" % (i, len(blocks), shown,
                                                          " ..." if len(blocks) > 8 else ""))
        for i, names in sorted(res["unreadable"].items()):
            print("pair %d: could not read %s" % (i, ", ".join(names)))
        if ok:
            print("sites identical")
    if not ok:
        print("arcopy verify: the sites differ in %d pair(s)%s" % (
            len(res["differ"]), ", %d unreadable" % len(res["unreadable"]) if res["unreadable"]
            else ""), file=sys.stderr)
    return 0 if ok else 1
