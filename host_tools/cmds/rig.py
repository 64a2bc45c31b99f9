"""arcopy rig up|down|ls|kill|restart|hub: the emulated rig's processes.

Also reachable as ``arcopy bench up|down|ls`` (the benchmark command hands these
sections over to this module)."""
import argparse
import json
import os
import re
import sys
import time

from host_tools.cmds import add_dir, emit_json, interrupt_note, rig_dir, rig_note, take_down
from host_tools.cmds.argtypes import nonneg_int, positive_float, positive_int

ACTIONS = ("up", "down", "ls", "kill", "restart", "hub")


def add_arguments(parser):
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    p = sub.add_parser("up", help="format images, start the hub and one process per board")
    add_dir(p)
    p.add_argument("--pairs", type=positive_int, default=4, help="primary/secondary pairs (default 4)")
    p.add_argument("--baud", type=positive_int, default=115200,
                   help="site bus baud rate (default 115200)")
    p.add_argument("--peer-baud", type=positive_int, default=None,
                   help="peer link baud rate (default: --baud)")
    p.add_argument("--host-baud", type=positive_int, default=1000000,
                   help="host port pacing (default 1000000)")
    p.add_argument("--vol-blocks", type=positive_int, default=256, help="blocks per volume (default 256)")
    p.add_argument("--nvol", type=positive_int, default=1, help="volumes per board (default 1)")
    p.add_argument("--journal-slots", type=positive_int, default=512, help="journal entries (default 512)")
    p.add_argument("--ckpt-ms", type=positive_float, default=200.0,
                   help="checkpoint interval (default 200 ms)")
    p.add_argument("--latency-us", type=nonneg_int, default=0, help="extra one-way peer link latency")
    p.add_argument("--set", action="append", default=[], metavar="[BOARD.]KEY=VALUE",
                   help="config override for all boards, 'p'/'s' (all primaries/secondaries) or "
                        "one board, e.g. --set s1.disk_delay_us=3000 (repeatable)")
    p.add_argument("--force", action="store_true", help="take down a running rig in --dir first")
    p.add_argument("--tcp", "--host-tcp", action="store_true", dest="tcp",
                   help="the hub also serves every board's host port on TCP; the rig file then "
                        "names them socket://ADDR:PORT")
    p.add_argument("--bind", default="127.0.0.1", metavar="ADDR",
                   help="address of the --tcp host ports (default 127.0.0.1; any other prints a "
                        "warning: a host port takes destructive commands from anyone)")
    p.add_argument("--no-agent", action="store_true",
                   help="no rig agent: each command opens the host ports itself, one at a time")
    p.add_argument("--runtime", choices=("cpython", "micropython"), default="cpython",
                   help="what every board runs in: this Python (default) or the MicroPython unix "
                        "port (real MicroPython, the firmware precompiled, a Pico's heap)")
    p.add_argument("--heap", default=None, metavar="SIZE",
                   help="a MicroPython board's heap as -X heapsize takes it (default 209936w: "
                        "the heap a Pico has free after boot, scaled to this build's word size)")
    p.add_argument("--json", action="store_true", help="print the rig file")
    p = sub.add_parser("down", help="stop every process of the rig")
    add_dir(p)
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("ls", help="list the boards, their host ports and processes")
    add_dir(p)
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("kill", help="kill -9 boards by name")
    add_dir(p)
    p.add_argument("names", nargs="+")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("restart", help="(re)start boards by name (a live one is killed first)")
    add_dir(p)
    p.add_argument("names", nargs="+")
    p.add_argument("--json", action="store_true")
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
    raise ValueError("hub: unknown request %r (stats | ping | mute BOARD [rx|tx|both|off] | "
                     "cut BOARD [on|off] | inject BOARD bus|peer HEX | raw JSON)" % " ".join(w))


def check_sets(sets, pairs):
    """Refuse a --set naming a board or a config key that does not exist (before anything
    starts). -> None, or the error line."""
    from firmware.config import _FIELDS
    from host_tools.rig.board import HAL_KEYS
    keys = set(n for n, _ in _FIELDS) | set(HAL_KEYS)
    boards = set("%s%d" % (x, i) for x in "ps" for i in range(pairs))
    for s in sets or ():
        if "=" not in s:
            return "--set wants [BOARD.]KEY=VALUE, got %r" % s
        k = s.split("=", 1)[0]
        sel, key = k.split(".", 1) if "." in k else (None, k)
        if sel is not None and sel not in boards | {"p", "s"}:
            return ("--set %s: no board %r on this rig (boards: %s, or p / s for every primary / "
                    "secondary)" % (s, sel, " ".join(sorted(boards))))
        if key not in keys:
            return "--set %s: unknown config key %r (known: %s)" % (s, key, ", ".join(sorted(keys)))
    return None


def check_configs(args):
    """Build every board's firmware config as `rig up` will, --set applied, and check it as
    the firmware will at boot. -> None, or the error line naming the board and the key."""
    import json as _json
    from firmware import wire
    from firmware.config import Config, ConfigError
    from host_tools.rig.board import HAL_KEYS
    n = args.pairs
    prim = [i + 1 for i in range(n)]
    sec = [129 + i for i in range(n)]
    sets = []
    for s in args.set or ():
        k, v = s.split("=", 1)
        try:
            v = _json.loads(v)
        except ValueError:
            pass
        sel, key = k.split(".", 1) if "." in k else (None, k)
        sets.append((sel, key, v, s))
    for i in range(n):
        for name, role, me, peer, site in (("p%d" % i, wire.ROLE_PRIMARY, prim[i], sec[i], prim),
                                           ("s%d" % i, wire.ROLE_SECONDARY, sec[i], prim[i], sec)):
            fw = {"node": me, "role": role, "peer": peer, "site_nodes": site,
                  "nvol": args.nvol, "vol_blocks": args.vol_blocks,
                  "journal_slots": args.journal_slots, "bus_baud": args.baud,
                  "peer_baud": args.peer_baud or args.baud,
                  "ckpt_interval_us": int(args.ckpt_ms * 1000)}
            given = []
            for sel, key, v, text in sets:
                if key in HAL_KEYS:
                    continue
                if sel is None or sel == name or sel == name[0]:
                    fw[key] = v
                    given.append(text)
            try:
                Config(**fw)
            except (ConfigError, TypeError, ValueError) as e:
                return "%s%s: %s" % (name, " (%s)" % ", ".join(given) if given else "", e)
    return None


def run(args):
    from host_tools.rig import manager as rigmgr
    d = rig_dir(args)
    try:
        if args.action == "up":
            bad = check_sets(args.set, args.pairs) or check_configs(args)
            if args.heap is not None and not re.match(r"^[1-9][0-9]*w?[KM]?$", args.heap):
                bad = "--heap %s: a size as -X heapsize takes it (209936w, 400000, 512K)" % args.heap
            if bad:
                print("arcopy rig up: error: %s" % bad, file=sys.stderr)
                return 2
            interrupt_note("the rig's processes started so far were stopped: nothing keeps running")
            try:
                rig = rigmgr.up(d, pairs=args.pairs, baud=args.baud, peer_baud=args.peer_baud,
                                host_baud=args.host_baud, nvol=args.nvol,
                                vol_blocks=args.vol_blocks, journal_slots=args.journal_slots,
                                ckpt_interval_us=int(args.ckpt_ms * 1000), sets=args.set,
                                force=args.force, peer_latency_us=args.latency_us,
                                tcp=args.tcp, bind=args.bind, agent=not args.no_agent,
                                runtime=args.runtime, heap=args.heap or rigmgr.PICO_HEAP)
            except BaseException as e:
                # a rig half brought up is taken down, whatever stopped it
                if not (isinstance(e, rigmgr.RigError) and "already running" in str(e)):
                    stopped = take_down(d)
                    if stopped and not isinstance(e, KeyboardInterrupt):
                        print("arcopy rig up: stopped what had started: %s" % ", ".join(stopped),
                              file=sys.stderr)
                raise
            interrupt_note(None)
            time.sleep(0.2)
            dead = [r["name"] for r in rigmgr.listing(rig) if not r["alive"]]
            if dead:
                stopped = take_down(d)
                print("arcopy rig up: error: %s died at start-up (see %s); stopped %s"
                      % (", ".join(dead), ", ".join(os.path.join(d, x + ".log") for x in dead),
                         ", ".join(stopped) or "nothing"), file=sys.stderr)
                return 1
            if args.json:
                print(json.dumps(rig, indent=1))
            else:
                print("rig up in %s: %d pairs, bus %d baud, peer %d baud, %s boards%s"
                      % (rig["dir"], rig["pairs"], rig["baud"], rig["peer_baud"], args.runtime,
                         " (heap %s)" % rig["heap"] if rig.get("heap") else ""))
                _print_ls(rigmgr.listing(rig))
            return 0
        rig = rigmgr.load(d)
        if args.action == "down":
            interrupt_note(rig_note(d, "some of the rig's processes may still run; `arcopy rig ls` "
                                       "shows which"))
            stopped = rigmgr.down(rig)
            if args.json:
                emit_json({"dir": rig["dir"], "stopped": stopped})
            else:
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
        if args.action in ("kill", "restart"):
            for n in args.names:
                rigmgr.board(rig, n)        # an unknown name: refused before anything is done
        if args.action == "kill":
            killed = rigmgr.kill(rig, args.names)
            if args.json:
                emit_json({"killed": killed})
            else:
                print("killed: %s" % (", ".join(killed) or "none (not running)"))
            return 0
        if args.action == "restart":
            interrupt_note(rig_note(d, "boards started so far keep running"))
            rigmgr.restart(rig, args.names)
            if args.json:
                emit_json({"started": args.names})
            else:
                print("started: %s" % ", ".join(args.names))
            return 0
        if args.action == "hub":
            try:
                req = _hub_request(args.words)
            except ValueError as e:
                print("arcopy rig hub: error: %s" % e, file=sys.stderr)
                return 2
            print(json.dumps(rigmgr.hub_call(rig, req), indent=1))
            return 0
    except rigmgr.RigError as e:
        print("arcopy rig %s: error: %s" % (args.action, e), file=sys.stderr)
        return 1
    return 2


def _print_ls(rows):
    print("%-5s %-9s %5s %5s %4s %8s %-6s %-11s %9s %s" % ("name", "role", "node", "peer", "pair",
                                                          "pid", "state", "runtime", "heap peak",
                                                          "host port"))
    for r in rows:
        hp = r.get("heap_peak")
        print("%-5s %-9s %5s %5s %4s %8s %-6s %-11s %9s %s%s" % (
            r["name"], r["role"], r["node"] if r["node"] is not None else "-",
            r["peer"] if r["peer"] is not None else "-",
            r["pair"] if r["pair"] is not None else "-", r["pid"] or "-",
            "up" if r["alive"] else "down", r.get("runtime") or "-",
            hp if hp is not None else "-", r["host"], " -> %s" % r["tty"] if r["tty"] else ""))


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
