"""arcopy status: per pair, copy state, checkpoints (seen at the primary, held, released
and applied at the secondary), journal depths, lag and clock skew; --watch refreshes."""
import json
import sys
import time

from host_tools.cmds import add_dir, load_bench


def add_arguments(parser):
    add_dir(parser)
    parser.add_argument("--watch", action="store_true", help="refresh until Ctrl-C")
    parser.add_argument("--interval", type=float, default=0.5, help="--watch period (s)")
    parser.add_argument("--json", action="store_true", help="print raw STATUS of every board")


def run(args):
    from host_tools.ops import procedures as rigops
    bench = load_bench(args)
    if bench is None:
        return 1
    if args.json:
        print(json.dumps(rigops.collect_status(bench), indent=1, sort_keys=True))
        return 0
    try:
        while True:
            st = rigops.collect_status(bench)
            text = rigops.format_table(rigops.pair_rows(bench, st))
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
