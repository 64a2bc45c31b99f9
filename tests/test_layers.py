"""Layer rules, checked on the syntax tree of every module (imports at any depth count).

- firmware/ imports only firmware/ and what MicroPython has (the detail of which MicroPython
  modules is tests/test_firmware_rules.py);
- the replication core (every firmware module but the board loop, main.py) imports no HAL and
  no clock: no `time`, `machine`, `select`, `os`, no board support;
- the checker (host_tools/check/) imports nothing of the replication core nor of the parts that
  drive it (firmware, sim, ops, rig, transport);
- ops/ imports no concrete transport (the serial client, pyserial, the simulator, the rig);
- sim/ reaches operator procedures only through ops/: it imports no CLI command, and no sim
  module names an operator command code (C_FAILOVER, C_START_COPY, ...) except the transport
  that carries requests.
"""
import ast
import glob
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def modules(folder):
    return sorted(glob.glob(os.path.join(ROOT, folder, "**", "*.py"), recursive=True))


def rel(path):
    return os.path.relpath(path, ROOT)


def imports(path):
    """Every module name imported by the file at `path` (absolute names; `from a import b`
    yields both a and a.b, so that a module imported from its package is seen)."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    pkg = os.path.relpath(os.path.dirname(path), ROOT).replace(os.sep, ".")
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")
                base = base[:len(base) - (node.level - 1)] if node.level > 1 else base
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module
            out.add(mod)
            out.update("%s.%s" % (mod, a.name) for a in node.names)
    return out


def offending(path, banned):
    """Imports of `path` that are, or sit under, one of the `banned` module names."""
    return sorted(m for m in imports(path)
                  if any(m == b or m.startswith(b + ".") for b in banned))


MICROPYTHON = {"struct", "binascii", "micropython", "gc", "array", "collections", "time", "machine",
               "select", "os", "sys", "errno", "io", "json", "sdcard"}
HAL_AND_CLOCK = ["time", "utime", "machine", "select", "uselect", "os", "uos", "sdcard", "boards",
                 "host_tools"]
CORE_DRIVERS = ["firmware", "host_tools.sim", "host_tools.ops", "host_tools.rig",
                "host_tools.transport", "host_tools.cmds", "serial"]
CONCRETE_TRANSPORTS = ["serial", "host_tools.transport.serial_client", "host_tools.sim",
                       "host_tools.rig", "host_tools.cmds", "boards"]
OPERATOR_CODES = ("C_START_COPY", "C_STOP_COPY", "C_SUSPEND", "C_RESUME", "C_FAILOVER", "C_FAILBACK",
                  "C_DIRTY_LIST", "C_MARK_DIRTY")


@pytest.mark.parametrize("path", modules("firmware"), ids=rel)
def test_firmware_imports_only_firmware_and_micropython(path):
    bad = sorted(m for m in imports(path)
                 if m.split(".")[0] not in MICROPYTHON | {"firmware"})
    assert not bad, "%s imports %s" % (rel(path), bad)


@pytest.mark.parametrize("path", [p for p in modules("firmware")
                                  if os.path.basename(p) != "main.py"], ids=rel)
def test_core_imports_no_hal_and_no_clock(path):
    bad = offending(path, HAL_AND_CLOCK)
    assert not bad, "%s (replication core) imports %s" % (rel(path), bad)


@pytest.mark.parametrize("path", modules("host_tools/check"), ids=rel)
def test_checker_imports_nothing_of_the_replication_core(path):
    bad = offending(path, CORE_DRIVERS)
    assert not bad, "%s imports %s" % (rel(path), bad)


@pytest.mark.parametrize("path", modules("host_tools/ops"), ids=rel)
def test_ops_import_no_concrete_transport(path):
    bad = offending(path, CONCRETE_TRANSPORTS)
    assert not bad, "%s imports %s" % (rel(path), bad)


@pytest.mark.parametrize("path", modules("host_tools/sim"), ids=rel)
def test_sim_reaches_operator_procedures_only_through_ops(path):
    bad = offending(path, ["host_tools.cmds", "host_tools.rig", "host_tools.transport.serial_client"])
    assert not bad, "%s imports %s" % (rel(path), bad)
    if os.path.basename(path) == "transport.py":
        return                        # it carries requests; it does not decide them
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    names |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    used = sorted(set(OPERATOR_CODES) & names)
    assert not used, "%s sends operator commands itself (%s): call host_tools/ops instead" % (rel(path), used)


def test_sim_drills_call_the_operator_layer():
    for name in ("scenario.py", "drills.py"):
        path = os.path.join(ROOT, "host_tools", "sim", name)
        assert any(m.startswith("host_tools.ops") for m in imports(path)), name


def test_the_scanner_sees_nested_and_relative_imports(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def f():\n    import time\nfrom firmware import wire\n")
    assert {"time", "firmware", "firmware.wire"} <= imports(str(f))
    assert offending(str(f), ["time"]) == ["time"]
    assert offending(str(f), ["firmware.codec"]) == []


@pytest.mark.parametrize("path", modules("firmware") + modules("host_tools") + modules("boards")
                         + modules("protocol"), ids=rel)
def test_every_module_opens_with_a_line_saying_what_it_is(path):
    with open(path) as f:
        first = f.readline().strip()
    assert first.startswith(("#", '"""')) and len(first.strip('#" ')) >= 10, \
        "%s: the first line should say what the module is" % rel(path)
