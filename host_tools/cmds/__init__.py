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
