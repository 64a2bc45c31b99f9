"""CLI commands of the rig and of the operator's tool chain (one module per command, each
with add_arguments(parser) and run(args) -> int; see host_tools/cli.py)."""
import os


def add_dir(parser):
    parser.add_argument("--dir", default=None,
                        help="rig directory (default: $ARCOPY_RIG or <tmp>/arcopy-rig-<uid>)")


def rig_dir(args):
    from host_tools.rig import manager as rigmgr
    return os.path.abspath(args.dir or rigmgr.default_dir())


def load_rig(args):
    """The rig named by --dir, or None after saying why on stderr."""
    import sys
    from host_tools.rig import manager as rigmgr
    try:
        return rigmgr.load(rig_dir(args))
    except rigmgr.RigError as e:
        print("error: %s" % e, file=sys.stderr)
        return None


def errors():
    """The exceptions a rig command reports as `error: ...` (exit 1)."""
    from host_tools.rig import manager as rigmgr
    from host_tools.ops.errors import OpError
    from host_tools.transport import TransportError
    return (rigmgr.RigError, OpError, TransportError)


def run_on_rig(args, call, progress_label=None, show=False):
    """Load the rig named by --dir, open its transport, then call(rig, transport, progress)
    with a copy progress bar when `show` (else None); the bar and the transport are closed in
    every case. -> (rig, result, progress), or None after printing the error on stderr."""
    import sys
    from host_tools.ops import copy as opscopy
    from host_tools.rig import manager as rigmgr
    from host_tools.rig import session
    prog = opscopy.CopyProgress(progress_label) if show else None
    t = None
    try:
        rig = rigmgr.load(rig_dir(args))
        t = session.transport(rig, 2.0)
        return rig, call(rig, t, prog), prog
    except errors() as e:
        print("error: %s" % e, file=sys.stderr)
        return None
    finally:
        if prog is not None:
            prog.close()
        if t is not None:
            t.close()


# -- Ctrl-C: what keeps running ----------------------------------------------------------------
_NOTE = [None]


def interrupt_note(text=False):
    """Set (text) or read (no argument) the line host_tools/cli.py prints after Ctrl-C:
    what keeps running on the boards, e.g. "the copy continues on the boards"."""
    if text is not False:
        _NOTE[0] = text
    return _NOTE[0]


def rig_note(d, what="the rig keeps running"):
    """"<what> (stop it: arcopy rig down --dir D)"."""
    return "%s (stop it: arcopy rig down --dir %s)" % (what, d)


# -- pairs named as the rig file names them ------------------------------------------------------
def add_pair(parser, required=False, all_flag=True, help_extra=""):
    """--pair P (a pair's number as the rig file's board names number it, or the name of
    one of its boards) and, with all_flag, --all; exactly one when required."""
    text = ("a pair: its number as the rig file numbers it (p1/s1 are pair 1) or one of its "
            "boards' names (p1 or s1)" + help_extra)
    if all_flag:
        g = parser.add_mutually_exclusive_group(required=required)
        g.add_argument("--pair", default=None, metavar="PAIR", help=text)
        g.add_argument("--all", action="store_true", help="every pair")
    else:
        parser.add_argument("--pair", default=None, metavar="PAIR", help=text)


class PairChoiceError(Exception):
    """--pair names no pair of the rig (a usage error: exit 2)."""


def chosen_pairs(args, rig, say=None):
    """The pair indexes --pair / --all pick (default: every pair); says which pair --pair
    picked (say(text), default stderr). Raises PairChoiceError for a pair not on the rig."""
    from host_tools.rig import session
    pair = getattr(args, "pair", None)
    if pair is None:
        return list(range(rig["pairs"]))
    try:
        i, desc = session.resolve_pair(rig, pair)
    except ValueError as e:
        raise PairChoiceError(str(e))
    import sys
    (say or (lambda m: print(m, file=sys.stderr)))("--pair %s: %s" % (pair, desc))
    return [i]


def emit_json(obj):
    """JSON on stdout: sorted keys, numbers as numbers."""
    import json
    print(json.dumps(obj, indent=1, sort_keys=True, default=str))


def take_down(d, rig=None):
    """Stop whatever runs of the rig in directory `d` (a rig half brought up included);
    never raises. -> names stopped."""
    from host_tools.rig import manager as rigmgr
    try:
        stopped = rigmgr.down(rig if rig is not None else rigmgr.load(d))
    except Exception:
        stopped = []
    return stopped + _stop_strays(d)


def _stop_strays(d):
    """Rig processes of directory `d` that the rig file does not list yet (a bring-up cut
    short between starting them and recording their pids): found by their command line
    (`-m host_tools.rig.board|hub --config <d>/...`, `-m host_tools.rig.agent --dir <d>`),
    killed. -> names stopped."""
    import signal
    prefix = (os.path.abspath(d) + os.sep).encode()
    stopped = []
    try:
        pids = [int(x) for x in os.listdir("/proc") if x.isdigit()]
    except OSError:
        return stopped
    for pid in pids:
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if not any(a in (b"host_tools.rig.board", b"host_tools.rig.hub", b"host_tools.rig.agent")
                   for a in argv):
            continue
        opt = b"--config" if b"--config" in argv else b"--dir" if b"--dir" in argv else None
        k = argv.index(opt) + 1 if opt else len(argv)
        conf = argv[k] if k < len(argv) else b""
        if (conf + b"/").startswith(prefix) if opt == b"--dir" else conf.startswith(prefix):
            try:
                os.kill(pid, signal.SIGKILL)
                stopped.append(os.path.basename(conf.decode(errors="replace")).rsplit(".", 1)[0])
            except OSError:
                pass
    return stopped
