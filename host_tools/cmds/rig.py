"""arcopy rig up|down|ls|kill|restart|hub: the emulated rig's processes.

Also reachable as ``arcopy bench up|down|ls`` (the benchmark command hands these
sections over to this module)."""
import argparse
import json
import sys

from host_tools.cmds import add_dir, rig_dir

ACTIONS = ("up", "down", "ls", "kill", "restart", "hub")


def add_arguments(parser):
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    p = sub.add_parser("up", help="format images, start the hub and one process per board")
    add_dir(p)
    p.add_argument("--pairs", type=int, default=4, help="primary/secondary pairs (default 4)")
    p.add_argument("--baud", type=int, default=115200, help="site bus baud rate (default 115200)")
    p.add_argument("--peer-baud", type=int, default=None, help="peer link baud rate (default: --baud)")
    p.add_argument("--host-baud", type=int, default=1000000, help="host port pacing (default 1000000)")
    p.add_argument("--vol-blocks", type=int, default=256, help="blocks per volume (default 256)")
    p.add_argument("--nvol", type=int, default=1, help="volumes per board (default 1)")
    p.add_argument("--journal-slots", type=int, default=512, help="journal entries (default 512)")
    p.add_argument("--ckpt-ms", type=float, default=200.0, help="checkpoint interval (default 200 ms)")
    p.add_argument("--latency-us", type=int, default=0, help="extra one-way peer link latency")
    p.add_argument("--set", action="append", default=[], metavar="[BOARD.]KEY=VALUE",
                   help="config override for all boards, 'p'/'s' (all primaries/secondaries) or "
                        "one board, e.g. --set s1.disk_delay_us=3000 (repeatable)")
    p.add_argument("--force", action="store_true", help="take down a running rig in --dir first")
    p.add_argument("--json", action="store_true", help="print the rig file")
    p = sub.add_parser("down", help="stop every process of the rig")
    add_dir(p)
    p = sub.add_parser("ls", help="list the boards, their host ports and processes")
    add_dir(p)
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("kill", help="kill -9 boards by name")
    add_dir(p)
    p.add_argument("names", nargs="+")
    p = sub.add_parser("restart", help="(re)start boards by name (a live one is killed first)")
    add_dir(p)
    p.add_argument("names", nargs="+")
    p = sub.add_parser("hub", help="talk to the hub: stats | mute BOARD [rx|tx|both|off] | "
                                   "cut BOARD [on|off] | inject BOARD bus|peer HEX | raw JSON")
    add_dir(p)
    p.add_argument("words", nargs="+")


def _hub_request(words):
    w = words
    if w[0] == "stats":
        return {"cmd": "stats"}
    if w[0] == "ping":
        return {"cmd": "ping"}
    if w[0] == "mute" and len(w) >= 2:
        how = w[2] if len(w) > 2 else "rx"
        return {"cmd": "mute", "board": w[1], "rx": how in ("rx", "both"), "tx": how in ("tx", "both")}
    if w[0] == "cut" and len(w) >= 2:
        return {"cmd": "cut", "board": w[1], "on": (w[2] if len(w) > 2 else "on") != "off"}
    if w[0] == "inject" and len(w) == 4:
        return {"cmd": "inject", "board": w[1], "port": w[2], "hex": w[3]}
    if w[0].startswith("{"):
        return json.loads(" ".join(w))
    raise SystemExit("hub: unknown request %r" % " ".join(w))


def run(args):
    from host_tools.rig import manager as rigmgr
    d = rig_dir(args)
    try:
        if args.action == "up":
            rig = rigmgr.up(d, pairs=args.pairs, baud=args.baud, peer_baud=args.peer_baud,
                                host_baud=args.host_baud, nvol=args.nvol,
                                vol_blocks=args.vol_blocks, journal_slots=args.journal_slots,
                                ckpt_interval_us=int(args.ckpt_ms * 1000), sets=args.set,
                                force=args.force, peer_latency_us=args.latency_us)
            if args.json:
                print(json.dumps(rig, indent=1))
            else:
                print("rig up in %s: %d pairs, bus %d baud, peer %d baud"
                      % (rig["dir"], rig["pairs"], rig["baud"], rig["peer_baud"]))
                _print_ls(rigmgr.listing(rig))
            return 0
        rig = rigmgr.load(d)
        if args.action == "down":
            stopped = rigmgr.down(rig)
            print("stopped: %s" % (", ".join(stopped) if stopped else "nothing was running"))
            return 0
        if args.action == "ls":
            rows = rigmgr.listing(rig)
            if args.json:
                print(json.dumps(rows, indent=1))
            else:
                print("rig %s: %d pairs" % (rig["dir"], rig["pairs"]))
                _print_ls(rows)
            return 0
        if args.action == "kill":
            killed = rigmgr.kill(rig, args.names)
            print("killed: %s" % (", ".join(killed) or "none (not running)"))
            return 0
        if args.action == "restart":
            rigmgr.restart(rig, args.names)
            print("started: %s" % ", ".join(args.names))
            return 0
        if args.action == "hub":
            print(json.dumps(rigmgr.hub_call(rig, _hub_request(args.words)), indent=1))
            return 0
    except rigmgr.RigError as e:
        print("error: %s" % e, file=sys.stderr)
        return 1
    return 2


def _print_ls(rows):
    print("%-5s %-9s %5s %5s %4s %8s %-6s %s" % ("name", "role", "node", "peer", "pair", "pid",
                                                "state", "host port"))
    for r in rows:
        print("%-5s %-9s %5s %5s %4s %8s %-6s %s%s" % (
            r["name"], r["role"], r["node"] if r["node"] is not None else "-",
            r["peer"] if r["peer"] is not None else "-",
            r["pair"] if r["pair"] is not None else "-", r["pid"] or "-",
            "up" if r["alive"] else "down", r["host"], " -> %s" % r["tty"] if r["tty"] else ""))


def run_argv(argv):
    """Entry for other commands that hand over `up|down|ls|...` (e.g. `arcopy bench up`)."""
    p = argparse.ArgumentParser(prog="arcopy bench")
    add_arguments(p)
    return run(p.parse_args(list(argv)))


# -- `arcopy bench up|down|ls`: the benchmark command hands these sections over -------------------
BENCH_ACTIONS = ("up", "down", "ls")
_BENCH_OPTS = (("--pairs", int), ("--baud", int), ("--peer-baud", int), ("--host-baud", int),
               ("--vol-blocks", int), ("--nvol", int), ("--journal-slots", int),
               ("--ckpt-ms", float), ("--dir", str))


def add_bench_aliases(parser):
    """Hidden options on `arcopy bench` so that `arcopy bench up --pairs 2 ...` parses."""
    import argparse as _ap
    for opt, typ in _BENCH_OPTS:
        parser.add_argument(opt, type=typ, default=None, dest="rig_" + opt[2:].replace("-", "_"),
                            help=_ap.SUPPRESS)
    parser.add_argument("--set", action="append", default=None, dest="rig_set", help=_ap.SUPPRESS)
    parser.add_argument("--force", action="store_true", dest="rig_force", help=_ap.SUPPRESS)


def wants(args):
    s = getattr(args, "sections", None)
    return bool(s) and s[0] in BENCH_ACTIONS


def run_from_bench(args):
    """Run `arcopy bench up|down|ls [...]` as `arcopy rig up|down|ls [...]`."""
    action = args.sections[0]
    argv = [action]
    for opt, _ in _BENCH_OPTS:
        v = getattr(args, "rig_" + opt[2:].replace("-", "_"), None)
        if v is not None and (action == "up" or opt == "--dir"):
            argv += [opt, str(v)]
    if action == "up":
        for s in getattr(args, "rig_set", None) or ():
            argv += ["--set", s]
        if getattr(args, "rig_force", False):
            argv.append("--force")
    return run_argv(argv)
