"""arcopy perf [SECTION ...] [--quick] [--json FILE]: measure and print figures (never a test).

`arcopy bench` is kept as a deprecated alias: it says so on stderr, then runs the same sections
(and `arcopy bench up|down|ls` hands over to `arcopy rig up|down|ls`, as it used to).
"""
import json
import platform
import sys
import time

from host_tools.perf.registry import SECTIONS, load_sections, print_table


def add_arguments(parser):
    parser.add_argument("sections", nargs="*", metavar="SECTION",
                        help="sections to run (default: all; --list shows them)")
    parser.add_argument("--quick", action="store_true", help="shorter measurements (less precise)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    parser.add_argument("--list", action="store_true", help="list the sections and exit")
    parser.add_argument("--runtime", choices=("cpython", "micropython"), default="cpython",
                        help="what the boards of an emulated rig run in (copy-latency's rig part)")
    if parser.prog.endswith(" bench"):
        from host_tools.cmds import rig     # `arcopy bench up|down|ls` = `arcopy rig up|down|ls`
        rig.add_bench_aliases(parser)


def run(args):
    if args.command == "bench":
        from host_tools.cmds import rig
        if rig.wants(args):
            print("arcopy: `arcopy bench %s` is deprecated: use `arcopy rig %s`"
                  % (args.sections[0], args.sections[0]), file=sys.stderr)
            return rig.run_from_bench(args)
        print("arcopy: `arcopy bench` is deprecated: use `arcopy perf`", file=sys.stderr)
    from host_tools.cmds import interrupt_note
    interrupt_note("perf stopped; a section's own emulated rig is taken down: nothing keeps running")
    load_sections()
    from host_tools.perf import rig_latency
    rig_latency.RUNTIME = getattr(args, "runtime", "cpython")
    if args.list:
        for name, (_, help) in sorted(SECTIONS.items()):
            print("%-12s %s" % (name, help))
        return 0
    names = args.sections or sorted(SECTIONS)
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        print("arcopy perf: unknown section(s): %s (known: %s)"
              % (", ".join(unknown), ", ".join(sorted(SECTIONS))), file=sys.stderr)
        return 2
    results = {}
    for name in names:
        fn, help = SECTIONS[name]
        print("== %s: %s" % (name, help))
        res = fn(args.quick)
        results[name] = res
        for table in res.get("tables", ()):
            print_table(table)
        for note in res.get("notes", ()):
            print("  note: " + note)
        print()
    if args.json:
        doc = dict(meta=dict(python=platform.python_version(), implementation=platform.python_implementation(),
                             machine=platform.machine(), quick=bool(args.quick),
                             time=time.strftime("%Y-%m-%dT%H:%M:%S")),
                   sections=results)
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1)
        print("wrote " + args.json)
    return 0
