"""arcopy status: one line per pair (states, RPO estimate, journals, last released
checkpoint, why) that fits the terminal; --wide shows every column (checkpoints seen,
held, released and applied, dirty blocks, pacing, skew...); --json is keyed by pair name;
--watch redraws in place on a terminal and appends plain lines otherwise.
Exit 1 when a board does not answer."""
import shutil
import sys
import time

from host_tools.cmds import add_dir, add_pair, chosen_pairs, emit_json, interrupt_note, load_rig
from host_tools.cmds.argtypes import positive_float


def add_arguments(parser):
    add_dir(parser)
    add_pair(parser, all_flag=False, help_extra=" (default: every pair)")
    parser.add_argument("--watch", action="store_true", help="refresh until Ctrl-C")
    parser.add_argument("--interval", type=positive_float, default=0.5,
                        help="--watch period in seconds (default 0.5)")
    g = parser.add_mutually_exclusive_group()
    g.add_argument("--wide", action="store_true", help="every column (lines wider than 100)")
    g.add_argument("--json", action="store_true",
                   help="JSON keyed by pair name: the row and every board's raw STATUS")


def width(args):
    """Columns to fit: the terminal's ($COLUMNS first), else 100; at most 100."""
    return min(100, shutil.get_terminal_size((100, 24)).columns)


def as_json(rows, st):
    out = {}
    for r in rows:
        d = {k: v for k, v in r.items() if k != "pair"}
        d["boards"] = {r["p_name"]: st.get(r["p_name"]), r["s_name"]: st.get(r["s_name"])}
        out[str(r["pair"])] = d
    return out


def render(args, rows):
    from host_tools import ops
    if args.wide:
        return ops.status.format_table(rows)
    return ops.status.format_short(rows, width(args))


def run(args):
    from host_tools import ops
    from host_tools.rig import session
    rig = load_rig(args)
    if rig is None:
        return 1
    which = chosen_pairs(args, rig)
    pairs = session.pairs(rig, which)
    names = [n for i in sorted(pairs) for n in pairs[i]]
    labels = session.pair_labels(rig)
    tty = sys.stdout.isatty()
    interrupt_note("stopped watching: nothing was changed on the boards")
    with session.transport(rig, 0.5, 1) as t:
        while True:
            st = ops.status.collect(t, names)
            rows = ops.status.pair_rows(pairs, st, labels)
            down = sorted(n for n, s in st.items() if s is None)
            if args.json:
                emit_json(as_json(rows, st))
            else:
                text = render(args, rows)
                if args.watch and tty:
                    sys.stdout.write("\x1b[H\x1b[J%s  every %.1f s, Ctrl-C to stop\n%s\n"
                                     % (time.strftime("%H:%M:%S"), args.interval, text))
                elif args.watch:
                    sys.stdout.write("-- %s\n%s\n" % (time.strftime("%H:%M:%S"), text))
                else:
                    sys.stdout.write(text + "\n")
                sys.stdout.flush()
            if not args.watch:
                if down:
                    print("arcopy status: not answering: %s" % ", ".join(down), file=sys.stderr)
                return 1 if down else 0
            time.sleep(args.interval)
