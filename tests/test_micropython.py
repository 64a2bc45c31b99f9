"""Run every tests/mpy/t_*.py script under the real MicroPython (WebAssembly port, via Node) and
under CPython. Each script must exit 0 and end with the line "ALL OK"; a hang is a failure."""
import glob
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNNER = os.path.join(ROOT, "tests", "mpy", "runner.mjs")
PACKAGE = os.path.join(ROOT, "node_modules", "@micropython", "micropython-webassembly-pyscript",
                       "micropython.mjs")
SCRIPTS = sorted(glob.glob(os.path.join(ROOT, "tests", "mpy", "t_*.py")))
TIMEOUT = 60


def _ids(paths):
    return [os.path.basename(p)[:-3] for p in paths]


def _check(proc, label):
    out = proc.stdout.strip().splitlines()
    detail = "%s\n--- stdout ---\n%s\n--- stderr ---\n%s" % (label, proc.stdout, proc.stderr)
    assert proc.returncode == 0, "exit status %d: %s" % (proc.returncode, detail)
    assert out and out[-1].strip() == "ALL OK", "no final ALL OK line: " + detail


def _run(cmd, label):
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired as e:
        pytest.fail("%s: no result within %d s (hang?)\n%s" % (label, TIMEOUT, e.stdout or ""))
    _check(proc, label)
    return proc


def test_scripts_exist():
    assert {"t_codec", "t_heap"} <= set(_ids(SCRIPTS))


@pytest.mark.micropython
@pytest.mark.parametrize("script", SCRIPTS, ids=_ids(SCRIPTS))
def test_under_micropython(script):
    node = shutil.which("node")
    if node is None:
        pytest.fail("node (Node.js) not found: it runs MicroPython for these tests; install Node.js "
                    ">= 18, then run `make node`")
    if not os.path.exists(PACKAGE):
        pytest.fail("MicroPython WebAssembly package missing under node_modules/: run `make node`")
    proc = _run([node, RUNNER, script], "MicroPython " + os.path.basename(script))
    print(proc.stdout)


@pytest.mark.parametrize("script", SCRIPTS, ids=_ids(SCRIPTS))
def test_under_cpython(script):
    code = ("import runpy, sys; sys.path.insert(0, '.'); "
            "runpy.run_path(%r, run_name='__main__')" % script)
    proc = _run([sys.executable, "-c", code], "CPython " + os.path.basename(script))
    print(proc.stdout)


@pytest.mark.micropython
def test_runner_reports_python_errors(tmp_path):
    # a failing script must give a non-zero exit, not a silent pass
    node = shutil.which("node")
    if node is None or not os.path.exists(PACKAGE):
        pytest.fail("node or node_modules missing: run `make node`")
    bad = tmp_path / "t_fails.py"
    bad.write_text("from firmware import codec\nprint('ALL OK')\nraise ValueError('boom')\n")
    proc = subprocess.run([node, RUNNER, str(bad)], cwd=ROOT, capture_output=True, text=True,
                          timeout=TIMEOUT)
    assert proc.returncode == 1
    assert "ValueError" in proc.stderr and "boom" in proc.stderr
