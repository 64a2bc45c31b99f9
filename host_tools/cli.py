"""arcopy: one command table over the host tools.

Each command lives in its own module, which exposes ``add_arguments(parser)`` and
``run(args) -> int``. Modules are imported only when their command runs, so a broken
or slow import in one command never affects another.
"""
import argparse
import importlib
import sys

# command name -> (module, one-line help)
COMMANDS = {
    "sim": ("host_tools.cmds.sim", "run the deterministic simulator (one seed, or `sim sweep`)"),
    "perf": ("host_tools.cmds.perf", "perf figures: measure, print, optionally write JSON"),
    "report": ("host_tools.cmds.report", "record a simulator run (--record) and render plots + report.md"),
    "rig": ("host_tools.cmds.rig", "emulated rig: rig up|down|ls|kill|restart|hub"),
    "start-copy": ("host_tools.cmds.start_copy", "initial copy on every pair (progress bar), wait until duplex"),
    "suspend": ("host_tools.cmds.suspend", "suspend pairs: writes go on, changes recorded in a bitmap"),
    "resume": ("host_tools.cmds.resume", "resume suspended pairs: copy the changed blocks, rejoin"),
    "failback": ("host_tools.cmds.failback", "after a failover: copy the changes back, swap the roles"),
    "status": ("host_tools.cmds.status", "per-pair copy state, checkpoints, journals, lag, skew"),
    "workload": ("host_tools.cmds.workload", "drive host writes into the primaries in real time"),
    "disaster": ("host_tools.cmds.disaster", "kill -9 every primary board of the rig"),
    "failover": ("host_tools.cmds.failover", "recover the secondaries to the newest released checkpoint"),
    "verify": ("host_tools.cmds.verify", "read the secondaries back and check them against the workload log"),
    "demo": ("host_tools.cmds.demo", "rig up, copy, workload, disaster, failover, verify, in one go"),
    "provision": ("host_tools.cmds.provision", "install firmware + config on real RP2040 boards (rig file)"),
}
# deprecated names: still accepted, hidden from the help, and they say what replaced them
ALIASES = {
    "bench": ("host_tools.cmds.perf", "deprecated: use `arcopy perf` (figures) or `arcopy rig` (boards)"),
}


def build_parser(command=None):
    """The argument parser; only `command`'s module is imported (for its add_arguments)."""
    parser = argparse.ArgumentParser(
        prog="arcopy",
        description="Sequence-consistent asynchronous remote copy on MicroPython boards.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (modname, helptext) in list(COMMANDS.items()) + list(ALIASES.items()):
        if name in ALIASES:
            p = sub.add_parser(name, description=helptext)
        else:
            p = sub.add_parser(name, help=helptext, description=helptext)
        p.set_defaults(_module=modname)
        if name == command:
            importlib.import_module(modname).add_arguments(p)
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command if command in COMMANDS or command in ALIASES else None)
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    mod = importlib.import_module(args._module)
    return mod.run(args) or 0


if __name__ == "__main__":
    sys.exit(main())
