"""arcopy disaster: kill -9 every primary board of the rig (the primary site is lost)."""
import sys

from host_tools.cmds import add_dir, emit_json, load_rig


def add_arguments(parser):
    add_dir(parser)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args):
    from host_tools.rig import session
    rig = load_rig(args)
    if rig is None:
        return 1
    if rig.get("hardware"):
        print("error: this rig is real hardware: a disaster there is switching the primary "
              "boards off (or pulling their power), not a command", file=sys.stderr)
        return 2
    rec = session.disaster(rig)
    if args.json:
        emit_json(rec)
        return 0
    print("disaster at %d us: killed %s" % (rec["disaster_us"], ", ".join(rec["killed"]) or "nothing"))
    return 0
