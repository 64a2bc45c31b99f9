"""arcopy disaster: kill -9 every primary board of the bench (the primary site is lost)."""
import sys

from host_tools.cmds import add_dir, load_bench


def add_arguments(parser):
    add_dir(parser)


def run(args):
    from host_tools.ops import procedures as rigops
    bench = load_bench(args)
    if bench is None:
        return 1
    if bench.get("hardware"):
        print("error: this bench is real hardware: a disaster there is switching the primary "
              "boards off (or pulling their power), not a command", file=sys.stderr)
        return 2
    rec = rigops.disaster(bench)
    print("disaster at %d us: killed %s" % (rec["disaster_us"], ", ".join(rec["killed"]) or "nothing"))
    return 0
