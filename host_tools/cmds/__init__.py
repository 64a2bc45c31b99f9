"""CLI commands of the emulated bench and of the operator's tool chain (one module per
command, each with add_arguments(parser) and run(args) -> int; see host_tools/cli.py)."""
import os


def add_dir(parser):
    parser.add_argument("--dir", default=None,
                        help="bench directory (default: $ARCOPY_BENCH or <tmp>/arcopy-bench-<uid>)")


def bench_dir(args):
    from host_tools import benchrig
    return os.path.abspath(args.dir or benchrig.default_dir())
