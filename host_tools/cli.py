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
    "delete-pair": ("host_tools.cmds.delete_pair", "end pairs (STOP_COPY): the primary goes simplex, writes go on"),
    "set-mode": ("host_tools.cmds.set_mode", "copy mode of pairs: sync or async (SET_MODE)"),
    "set-policy": ("host_tools.cmds.set_policy", "what the secondaries do when a pair is lost: freeze|continue"),
    "failback": ("host_tools.cmds.failback", "after a failover: copy the changes back, swap the roles"),
    "status": ("host_tools.cmds.status", "one line per pair: states, RPO, journals, released checkpoint, why"),
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


def version():
    """The installed arcopy version (pyproject.toml's when run from a checkout)."""
    try:
        from importlib.metadata import version as _v
        return _v("arcopy")
    except Exception:
        import os
        import re
        path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "pyproject.toml")
        try:
            with open(path) as f:
                m = re.search(r'^version\s*=\s*"([^"]+)"', f.read(), re.M)
            return m.group(1) if m else "unknown"
        except OSError:
            return "unknown"


EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_CODES = """exit status: 0 success; 1 a failure (a write failed or was refused, nothing answered,
a check failed); 2 usage; 130 interrupted (Ctrl-C: one line says what keeps running)."""


def build_parser(command=None):
    """The argument parser; only `command`'s module is imported (for its add_arguments)."""
    parser = argparse.ArgumentParser(
        prog="arcopy",
        description="Sequence-consistent asynchronous remote copy on MicroPython boards.",
        epilog=EXIT_CODES,
        formatter_class=lambda prog: argparse.HelpFormatter(prog, max_help_position=30),
    )
    parser.add_argument("--version", action="version", version="arcopy " + version())
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


def _one_line(e):
    return str(e).strip() or type(e).__name__


def main(argv=None):
    """_main(argv); Ctrl-C before a command runs (while importing, parsing) is 130 too."""
    try:
        return _main(argv)
    except KeyboardInterrupt:
        _interrupted(None)
        return EXIT_INTERRUPTED


def _main(argv=None):
    """Parse and run one command. -> exit status (see EXIT_CODES). Ctrl-C ends any command
    with 130 and one line saying what keeps running on the boards (the command's
    interrupt note, host_tools.cmds.interrupt_note); an unreachable port, a rig that is not
    there, a refusal the command did not handle: one line, exit 1, never a traceback
    (ARCOPY_DEBUG=1 shows it)."""
    import os
    from host_tools import cmds
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command if command in COMMANDS or command in ALIASES else None)
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_USAGE
    cmds.interrupt_note(None)
    try:
        mod = importlib.import_module(args._module)
        rc = mod.run(args)
        return EXIT_OK if rc is None else rc
    except KeyboardInterrupt:
        _interrupted(args.command)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_FAIL
    except SystemExit:
        raise
    except cmds.PairChoiceError as e:
        print("arcopy %s: error: %s" % (args.command, e), file=sys.stderr)
        return EXIT_USAGE
    except Exception as e:
        if os.environ.get("ARCOPY_DEBUG"):
            raise
        from host_tools.cmds import errors
        known = errors() + (OSError,)
        if isinstance(e, known):
            print("arcopy %s: error: %s" % (args.command, _one_line(e)), file=sys.stderr)
        else:
            print("arcopy %s: internal error: %s: %s (ARCOPY_DEBUG=1 shows the traceback)"
                  % (args.command, type(e).__name__, _one_line(e)), file=sys.stderr)
        return EXIT_FAIL


def _interrupted(command):
    """The one line after Ctrl-C: what keeps running on the boards."""
    from host_tools import cmds
    note = cmds.interrupt_note()
    try:
        sys.stdout.flush()
    except Exception:
        pass
    try:
        print("%sarcopy%s: interrupted: %s" % ("\n" if _tty(sys.stderr) else "",
                                              " " + command if command else "",
                                              note or "nothing was changed on the boards"),
              file=sys.stderr)
    except Exception:
        pass


def _tty(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _quiet_stdout():
    import os
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


if __name__ == "__main__":
    sys.exit(main())
