"""arcopy status: per pair, copy state, checkpoints (seen at the primary, held, released
and applied at the secondary), journal depths, lag and clock skew; --watch refreshes."""
import json
import sys
import time

from host_tools.cmds import add_dir, load_rig


def add_arguments(parser):
    add_dir(parser)
    parser.add_argument("--watch", action="store_true", help="refresh until Ctrl-C")
    parser.add_argument("--interval", type=float, default=0.5, help="--watch period (s)")
    parser.add_argument("--json", action="store_true", help="print raw STATUS of every board")


def run(args):
    from host_tools import ops
    from host_tools.rig import session
    rig = load_rig(args)
    if rig is None:
        return 1
    names = [b["name"] for b in rig["boards"]]
    with session.transport(rig, 0.5, 1) as t:
        if args.json:
            print(json.dumps(ops.status.collect(t, names), indent=1, sort_keys=True))
            return 0
        try:
            while True:
                st = ops.status.collect(t, names)
                text = ops.status.format_table(ops.status.pair_rows(session.pairs(rig), st))
                down = sorted(n for n, s in st.items() if s is None)
                if down:
                    text += "\nnot answering: " + ", ".join(down)
                if not args.watch:
                    print(text)
                    return 0
                sys.stdout.write("\x1b[H\x1b[J%s  (every %.1f s, Ctrl-C to stop)\n%s\n"
                                 % (time.strftime("%H:%M:%S"), args.interval, text))
                sys.stdout.flush()
                time.sleep(args.interval)
        except (KeyboardInterrupt, BrokenPipeError):
            return 0
