"""Run the `arcopy` CLI in this process and capture what it prints (shared by the sweep tests)."""
import contextlib
import io

from host_tools.cli import main as arcopy
from host_tools.sim import sweep as simsweep


def cli(argv):
    """-> (exit status, stdout, stderr) of `arcopy argv`."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = arcopy(argv)
    return rc, out.getvalue(), err.getvalue()


def seedless(summary):
    """A sweep summary without its wall-clock fields (those differ between two runs)."""
    return {k: v for k, v in summary.items() if k not in simsweep.WALL_CLOCK_KEYS}
