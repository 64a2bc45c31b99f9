"""CLI commands of the emulated bench and of the operator's tool chain (one module per
command, each with add_arguments(parser) and run(args) -> int; see host_tools/cli.py)."""
import os


def add_dir(parser):
    parser.add_argument("--dir", default=None,
                        help="rig directory (default: $ARCOPY_RIG or <tmp>/arcopy-rig-<uid>)")


def bench_dir(args):
    from host_tools.rig import manager as rigmgr
    return os.path.abspath(args.dir or rigmgr.default_dir())


def load_bench(args):
    """The bench named by --dir, or None after saying why on stderr."""
    import sys
    from host_tools.rig import manager as rigmgr
    try:
        return rigmgr.load(bench_dir(args))
    except rigmgr.BenchError as e:
        print("error: %s" % e, file=sys.stderr)
        return None


def run_with_copy_progress(args, label, show, call):
    """Load the bench named by --dir, then call(bench, progress) with a copy progress bar
    (None when not shown); the bar is closed in every case. -> (bench, result, progress),
    or None after printing the error on stderr."""
    import sys
    from host_tools.rig import manager as rigmgr
    from host_tools.ops import pairs as pairops
    from host_tools.transport.serial_client import ClientError
    prog = pairops.CopyProgress(label) if show else None
    try:
        bench = rigmgr.load(bench_dir(args))
        return bench, call(bench, prog), prog
    except (rigmgr.BenchError, ClientError) as e:
        print("error: %s" % e, file=sys.stderr)
        return None
    finally:
        if prog is not None:
            prog.close()
