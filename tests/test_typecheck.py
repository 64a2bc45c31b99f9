"""The firmware and the rp2 board support type-check against the MicroPython rp2 stubs.

mypy runs with the stubs as its typeshed (typings/, installed by `make typings`), so a call
to something the rp2 port does not have (machine.UART.flushx, a misspelt keyword, a module
MicroPython lacks) fails here. Settings and the few documented relaxations for firmware
idioms: tests/typecheck/mypy-rp2.ini. Local stubs for drivers outside the port (the SD
card driver): tests/typecheck/stubs/.
"""
import glob
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TYPINGS = os.path.join(ROOT, "typings")
CONFIG = os.path.join(ROOT, "tests", "typecheck", "mypy-rp2.ini")
LOCAL_STUBS = os.path.join(ROOT, "tests", "typecheck", "stubs")
BOARD_FILES = ["boards/rp2/rp2_hal.py", "boards/rp2/pico.py", "boards/rp2/boot_main.py"]


def modules():
    files = sorted(glob.glob(os.path.join(ROOT, "firmware", "*.py")))
    mods = ["firmware." + os.path.splitext(os.path.basename(f))[0] for f in files
            if not f.endswith("__init__.py")]
    return mods + [os.path.splitext(os.path.basename(f))[0] for f in BOARD_FILES]


def stubs_missing():
    return not (os.path.exists(os.path.join(TYPINGS, "machine.pyi"))
                and os.path.exists(os.path.join(TYPINGS, "stdlib", "builtins.pyi")))


def run_mypy(mods):
    env = dict(os.environ)
    env["MYPYPATH"] = os.pathsep.join([TYPINGS, LOCAL_STUBS, ROOT,
                                      os.path.join(ROOT, "boards", "rp2")])
    cmd = [sys.executable, "-m", "mypy", "--config-file", CONFIG, "--custom-typeshed-dir", TYPINGS,
           "--no-error-summary"]
    for m in mods:
        cmd += ["-m", m]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_firmware_and_rp2_hal_typecheck_against_rp2_stubs():
    if stubs_missing():
        pytest.fail("MicroPython rp2 stubs are missing from typings/: run `make typings` "
                    "(`make test` does it)")
    mods = modules()
    assert {"rp2_hal", "pico", "boot_main", "firmware.main", "firmware.node", "firmware.store"} <= set(mods)
    proc = run_mypy(mods)
    assert proc.returncode == 0, "mypy (rp2 stubs) found problems:\n" + proc.stdout + proc.stderr


def test_typecheck_catches_rp2_api_misuse(tmp_path):
    # the check has teeth: an rp2 UART method that does not exist, a wrong keyword
    if stubs_missing():
        pytest.fail("MicroPython rp2 stubs are missing from typings/: run `make typings`")
    bad = tmp_path / "badhal.py"
    bad.write_text(
        "import machine\n"
        "def f() -> None:\n"
        "    machine.UART(1, baudrate=115200, rxbuff=512)\n"
        "    u = machine.UART(0, baudrate=115200, rxbuf=512)\n"
        "    u.flushx()\n")
    env = dict(os.environ)
    env["MYPYPATH"] = os.pathsep.join([TYPINGS, str(tmp_path)])
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", CONFIG, "--custom-typeshed-dir", TYPINGS,
         "--cache-dir", str(tmp_path / "cache"), "-m", "badhal"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "flushx" in proc.stdout and "rxbuff" in proc.stdout
