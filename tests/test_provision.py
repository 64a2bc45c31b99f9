"""arcopy provision: rig-file checks (every error names its line), the dry run over the
sample 4 + 4 rig (every mpremote step printed, no port opened), and the real-run logic
(copy only what the board's manifest says differs) with the board I/O replaced."""
import json
import os
import re

import pytest

from host_tools import cli
from host_tools.provision import installer as provision

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(ROOT, "boards", "rig.sample.toml")


@pytest.fixture
def no_ports(monkeypatch):
    """Fail the test if anything opens a serial port or runs mpremote."""
    import serial
    import subprocess

    def boom(*a, **k):
        raise AssertionError("a serial port was opened during a dry run")

    real_run = subprocess.run

    def guarded_run(argv, *a, **k):
        if any("mpremote" in str(x) for x in argv):
            raise AssertionError("mpremote was run during a dry run: %r" % (argv,))
        return real_run(argv, *a, **k)

    monkeypatch.setattr(serial, "Serial", boom)
    monkeypatch.setattr(provision, "escape_to_repl", boom)
    monkeypatch.setattr(provision, "find_port", boom)
    monkeypatch.setattr(subprocess, "run", guarded_run)


def sample_boards():
    return provision.parse_rig_file(SAMPLE)["boards"]


# -- dry run ----------------------------------------------------------------------------------
def test_sample_rig_file_parses_as_four_plus_four():
    bench = provision.parse_rig_file(SAMPLE)
    boards = bench["boards"]
    assert [b["id"] for b in boards] == ["p1", "p2", "p3", "p4", "s1", "s2", "s3", "s4"]
    for b in boards:
        other = next(o for o in boards if o["id"] == b["peer"])
        assert other["peer"] == b["id"] and other["role"] != b["role"]
    assert boards[0]["site_nodes"] == [1, 2, 3, 4] and boards[4]["site_nodes"] == [101, 102, 103, 104]


def test_dry_run_prints_every_mpremote_step_for_the_sample_rig(tmp_path, capsys, no_ports):
    build_dir = tmp_path / "build"
    rc = cli.main(["provision", "--rig", SAMPLE, "--dry-run", "--build-dir", str(build_dir),
                   "--dir", str(tmp_path / "bench")])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "dry run: no port is opened" in out
    lines = out.splitlines()
    fw_modules = sorted(n[:-3] for n in os.listdir(os.path.join(ROOT, "firmware")) if n.endswith(".py"))
    for name in fw_modules + ["rp2_hal", "pico"]:
        assert any(l.startswith("build: mpy-cross") and l.endswith("%s.py" % name) for l in lines), name
    for b in sample_boards():
        mine = [l for l in lines if l.startswith("[%s] " % b["id"])]
        steps = [l.split("] ", 1)[1] for l in mine]
        target = "mpremote connect id:%s" % b["serial"]
        mp = [s for s in steps if s.startswith("mpremote")]
        assert all(s.startswith(target + " ") for s in mp), mp
        kinds = [s.split()[0] if not s.startswith("mpremote") else s[len(target) + 1:].split()[0]
                 for s in steps]
        # order: who, escape, probe, copy summary, copy, sd driver, reset, check
        assert kinds == [b["role"] + ",", "escape:", "exec", "copy:", "exec", "mip", "reset", "check:"], steps
        assert "exec '<probe" in steps[2]
        cp = steps[4]
        for name in fw_modules:
            assert "fw/firmware/%s.mpy" % name in cp, name
        for name in ["rp2_hal", "pico"]:
            assert "fw/%s.mpy" % name in cp, name
        assert re.search(r"fs cp \S+/fw/\S+\.mpy .*:/fw/ \+", cp)
        assert re.search(r"fs cp \S+/fw/firmware/\S+\.mpy .*:/fw/firmware/ \+", cp)
        assert re.search(r"fs cp \S+/boards/%s/config\.json :/config\.json" % b["id"], cp)
        assert re.search(r"fs cp \S+/main\.py :/main\.py", cp)
        assert cp.endswith("fs cp %s/boards/%s/manifest.json :/fw/manifest.json" % (build_dir, b["id"]))
        assert steps[5] == target + " mip install sdcard"
        assert steps[6] == target + " reset"
        assert "send STATUS" in steps[7] and ("node %d" % b["node"]) in steps[7]
    assert "would write %s" % (tmp_path / "bench" / "rig.json") in out
    assert not (tmp_path / "bench" / "rig.json").exists()

    # what was built: .mpy files, the board's main.py, one config per board
    for name in ["firmware/" + m for m in fw_modules] + ["rp2_hal", "pico"]:
        data = (build_dir / "fw" / (name + ".mpy")).read_bytes()
        assert data[:2] == b"M\x06", name            # .mpy version 6
    with open(os.path.join(ROOT, "boards", "rp2", "boot_main.py"), "rb") as f:
        assert (build_dir / "main.py").read_bytes() == f.read()
    p1 = json.loads((build_dir / "boards" / "p1" / "config.json").read_text())
    assert p1["board"] == "p1" and p1["site"] == "primary" and p1["serial"] == "E6614103E7A52F2B"
    c = p1["config"]
    assert (c["node"], c["role"], c["peer"], c["site_nodes"]) == (1, 1, 101, [1, 2, 3, 4])
    assert (c["bus_baud"], c["peer_baud"], c["nvol"], c["vol_blocks"]) == (115200, 115200, 1, 4096)
    assert c["ckpt_interval_us"] == 200000 and c["autostart"] is False
    s3 = json.loads((build_dir / "boards" / "s3" / "config.json").read_text())["config"]
    assert (s3["node"], s3["role"], s3["peer"], s3["site_nodes"]) == (103, 2, 3, [101, 102, 103, 104])
    # the firmware accepts every config it is given
    from firmware.config import Config
    for b in sample_boards():
        Config.from_dict(json.loads((build_dir / "boards" / b["id"] / "config.json").read_text())["config"])


def test_dry_run_of_one_board(tmp_path, capsys, no_ports):
    rc = cli.main(["provision", "--rig", SAMPLE, "--board", "s2", "--dry-run", "--build-dir",
                   str(tmp_path / "b"), "--dir", str(tmp_path / "d")])
    out = capsys.readouterr().out
    assert rc == 0
    ids = set(re.findall(r"^\[(\w+)\]", out, re.M))
    assert ids == {"s2"}
    assert "1 of 8 boards" in out


def test_unknown_board_is_refused(tmp_path, capsys, no_ports):
    rc = cli.main(["provision", "--rig", SAMPLE, "--board", "p9", "--dry-run", "--build-dir",
                   str(tmp_path / "b"), "--dir", str(tmp_path / "d")])
    assert rc == 1
    assert "no board p9" in capsys.readouterr().err


# -- rig file errors name their line -----------------------------------------------------------
HEAD = """[rig]
name = "t"
"""
PAIR = """
[[board]]
id = "p1"
role = "primary"
node = 1
peer = "s1"
serial = "E6614103E7A52F2B"

[[board]]
id = "s1"
role = "secondary"
node = 101
peer = "p1"
serial = "E6614864D3417B2C"
"""

# (name, bench text with "#<-" on the line the error must name, words of the message)
CASES = [
    ("duplicate id", HEAD + PAIR + """
[[board]]
id = "p1"   #<-
role = "primary"
node = 2
peer = "s1"
serial = "E6614103E7A53A31"
""", "duplicate board id 'p1' (first defined on line 5)"),
    ("primary without a peer", HEAD + PAIR + """
[[board]]   #<-
id = "p2"
role = "primary"
node = 2
serial = "E6614103E7A53A31"
""", "primary p2 has no peer"),
    ("peer does not point back", HEAD + PAIR + """
[[board]]
id = "p2"
role = "primary"
node = 2
peer = "s1"   #<-
serial = "E6614103E7A53A31"
""", "p2's peer s1 does not point back (its peer is 'p1')"),
    ("peer is not on the bench", HEAD + PAIR + """
[[board]]
id = "p2"
role = "primary"
node = 2
peer = "s9"   #<-
serial = "E6614103E7A53A31"
""", "p2's peer 's9' is not a board of this rig"),
    ("peer on the same site", HEAD + """
[[board]]
id = "p1"
role = "primary"
node = 1
peer = "p2"   #<-
serial = "E6614103E7A52F2B"

[[board]]
id = "p2"
role = "primary"
node = 2
peer = "p1"
serial = "E6614103E7A53A31"
""", "p1's peer p2 is also a primary"),
    ("bad serial number", HEAD + PAIR.replace('serial = "E6614864D3417B2C"',
                                             'serial = "E6614864-D341"   #<-'),
     "is not a USB serial number"),
    ("bad port", HEAD + PAIR.replace('serial = "E6614864D3417B2C"', 'port = "ttyACM0"   #<-'),
     "port 'ttyACM0' is not a serial port name"),
    ("serial and port", HEAD + PAIR.replace('serial = "E6614864D3417B2C"',
                                           'serial = "E6614864D3417B2C"\nport = "/dev/ttyACM1"   #<-'),
     "give serial or port, not both"),
    ("neither serial nor port", HEAD + PAIR.replace('\n[[board]]\nid = "s1"', '\n[[board]]   #<-\nid = "s1"')
     .replace('serial = "E6614864D3417B2C"\n', ''), "needs a USB serial number"),
    ("duplicate serial", HEAD + PAIR.replace('serial = "E6614864D3417B2C"',
                                            'serial = "E6614103E7A52F2B"   #<-'),
     "serial E6614103E7A52F2B is also board p1's"),
    ("bad role", HEAD + PAIR.replace('role = "secondary"', 'role = "backup"   #<-'),
     "role 'backup'"),
    ("bad baud", HEAD + 'bus_baud = 115201   #<-\n' + PAIR, "bus_baud 115201 is not a supported baud rate"),
    ("baud not a number", HEAD + 'peer_baud = "fast"   #<-\n' + PAIR, "peer_baud must be an integer"),
    ("bad mode", HEAD + 'mode = "async"   #<-\n' + PAIR, "mode 'async'"),
    ("unknown rig key", HEAD + 'bauds = 9600   #<-\n' + PAIR, "unknown [rig] key 'bauds'"),
    ("unknown board key", HEAD + PAIR.replace('node = 101', 'node = 101\nnodes = 5   #<-'),
     "unknown board key 'nodes'"),
    ("node id out of range", HEAD + PAIR.replace('node = 101', 'node = 300   #<-'), "node id 300"),
    ("duplicate node on a site", HEAD + PAIR + """
[[board]]
id = "p2"
role = "primary"
node = 1   #<-
peer = "s2"
serial = "E6614103E7A53A31"

[[board]]
id = "s2"
role = "secondary"
node = 102
peer = "p2"
serial = "E6614864D3418C3D"
""", "node id 1 is also p1's on the primary site bus"),
    ("toml syntax", HEAD + PAIR.replace('node = 101', 'node = = 101   #<-'), "TOML syntax"),
    ("no boards", HEAD.replace("[rig]", "[rig]   #<-"), "no [[board]] tables"),
]


@pytest.mark.parametrize("name,text,words", CASES, ids=[c[0] for c in CASES])
def test_rig_file_errors_name_the_line(tmp_path, name, text, words):
    path = tmp_path / "bench.toml"
    path.write_text(text)
    want = [i for i, l in enumerate(text.splitlines(), 1) if "#<-" in l]
    assert len(want) == 1, "test case must mark one line"
    with pytest.raises(provision.RigFileError) as ei:
        provision.parse_rig_file(str(path))
    lines = ei.value.lines()
    expect = "%s:%d: " % (path, want[0])
    assert any(l.startswith(expect) and words in l for l in lines), "\n".join(lines)


def test_all_errors_are_reported_at_once_and_nothing_is_done(tmp_path, capsys, no_ports):
    text = HEAD + 'bus_baud = 7\n' + PAIR.replace('role = "secondary"', 'role = "mirror"') \
        .replace('serial = "E6614103E7A52F2B"', 'serial = "xyz"')
    path = tmp_path / "bench.toml"
    path.write_text(text)
    rc = cli.main(["provision", "--rig", str(path), "--dry-run", "--build-dir", str(tmp_path / "b")])
    err = capsys.readouterr().err
    assert rc == 1
    assert "%s:3: bus_baud 7" % path in err
    assert re.search(r"bench\.toml:\d+: serial 'xyz'", err)
    assert re.search(r"bench\.toml:\d+: role 'mirror'", err)
    assert "nothing was done" in err
    assert not (tmp_path / "b").exists()


def test_sample_serials_and_ports_formats():
    assert provision.SERIAL_RE.match("E6614103E7A52F2B")
    assert not provision.SERIAL_RE.match("E6614103E7A52F2")
    for good in ("/dev/ttyACM0", "/dev/cu.usbmodem1101", "COM3", "/dev/serial/by-id/usb-x-if00"):
        assert provision.PORT_RE.match(good), good
    for bad in ("ttyACM0", "/tmp/x", "COM", "com3x"):
        assert not provision.PORT_RE.match(bad), bad


# -- real run, with the board I/O replaced -------------------------------------------------------
class FakeBoards:
    """Stands in for mpremote, the serial escape and the STATUS check."""

    def __init__(self, manifest, version=(1, 24, 1), sdcard=True):
        self.manifest = manifest
        self.version = list(version)
        self.sdcard = sdcard
        self.calls = []
        self.escaped = []

    def call(self, argv):
        i = argv.index("connect")
        args = argv[i + 2:]
        self.calls.append(args)
        if args[:1] == ["exec"] and args[1] == provision.PROBE:
            probe = {"mpy": 6 | (3 << 8) | (4 << 10), "version": self.version,
                     "machine": "Raspberry Pi Pico with RP2040", "manifest": self.manifest,
                     "sdcard": self.sdcard}
            return 0, "ARCOPY-PROBE " + json.dumps(probe) + "\n", ""
        return 0, "", ""

    def status(self, b, port):
        return ({"role_name": b["role"], "node": b["node"], "copy_state_name": "SIMPLEX", "master": 0,
                 "journal_depth": 0, "journal_capacity": 512}, port)


def _provisioner(tmp_path, fake, force=False):
    import io
    bench = provision.parse_rig_file(SAMPLE)
    p = provision.Provisioner(bench, out=io.StringIO(), force=force, build_dir=str(tmp_path / "build"),
                              rig_dir=str(tmp_path / "bench"))
    p.call = fake.call
    p.find_port = lambda serial: "/dev/fake-" + serial[-4:]
    p.escape = fake.escaped.append
    p.check_status = fake.status
    p.sleep = lambda s: None
    return p


def _local_manifest(tmp_path, board_id):
    import io
    bench = provision.parse_rig_file(SAMPLE)
    built = provision.build(bench, str(tmp_path / "ref"), io.StringIO().write)
    m = dict(built["manifest"])
    m["/config.json"] = provision._sha256(built["configs"][board_id])
    return m


def test_real_run_copies_only_what_differs_and_writes_the_bench_file(tmp_path):
    have = _local_manifest(tmp_path, "p2")
    have["/fw/firmware/node.mpy"] = "0" * 64                   # the board has an older node.py
    fake = FakeBoards(have)
    p = _provisioner(tmp_path, fake)
    p.run(["p2"])
    assert fake.escaped == ["/dev/fake-3A31"]
    kinds = [c[0] for c in fake.calls]
    assert kinds == ["exec", "exec", "reset"]          # probe, copy, reset: no mip (driver present)
    cp = fake.calls[1]
    copied = [a for a in cp if a.endswith((".mpy", ".json", ".py")) and not a.startswith(":")]
    assert [os.path.basename(a) for a in copied] == ["node.mpy", "manifest.json"]
    assert cp[-1] == ":/fw/manifest.json"
    doc = json.loads((tmp_path / "bench" / "rig.json").read_text())
    assert doc["hardware"] and doc["pairs"] == 4
    p2 = next(b for b in doc["boards"] if b["name"] == "p2")
    assert p2["host"] == "/dev/fake-3A31" and p2["pair"] == 1 and p2["role"] == "primary"
    s2 = next(b for b in doc["boards"] if b["name"] == "s2")
    assert s2["pair"] == 1 and s2["host"] is None      # not provisioned in this run


def test_real_run_with_everything_up_to_date_copies_nothing(tmp_path):
    fake = FakeBoards(_local_manifest(tmp_path, "s1"))
    p = _provisioner(tmp_path, fake)
    p.run(["s1"])
    assert [c[0] for c in fake.calls] == ["exec", "reset"]


def test_real_run_force_copies_everything_and_installs_the_driver(tmp_path):
    fake = FakeBoards(_local_manifest(tmp_path, "s1"), sdcard=False)
    p = _provisioner(tmp_path, fake, force=True)
    p.run(["s1"])
    assert [c[0] for c in fake.calls] == ["exec", "exec", "mip", "reset"]
    assert fake.calls[2] == ["mip", "install", "sdcard"]
    n_fw = len([a for a in fake.calls[1] if a.endswith(".mpy")])
    assert n_fw == len(provision.sources())


def test_old_micropython_is_refused(tmp_path):
    fake = FakeBoards({}, version=(1, 20, 0))
    p = _provisioner(tmp_path, fake)
    with pytest.raises(provision.ProvisionError, match="too old"):
        p.run(["p1"])


def test_provision_is_a_cli_command():
    assert "provision" in cli.COMMANDS
    parser = cli.build_parser("provision")
    args = parser.parse_args(["provision", "--rig", "x.toml", "--dry-run", "--board", "p1"])
    assert args.dry_run and args.board == ["p1"]


def test_old_bench_table_and_option_are_read_with_a_warning(tmp_path, capsys, no_ports):
    old = tmp_path / "old.toml"
    with open(SAMPLE) as f:
        old.write_text(f.read().replace("\n[rig]\n", "\n[bench]\n", 1))
    rig = provision.parse_rig_file(str(old))
    assert len(rig["boards"]) == 8 and "old name of the [rig] table" in rig["warnings"][0]
    rc = cli.main(["provision", "--bench", str(old), "--dry-run", "--build-dir", str(tmp_path / "b"),
                   "--dir", str(tmp_path / "d"), "--board", "p1"])
    err = capsys.readouterr().err
    assert rc == 0 and "--bench is deprecated" in err and "[bench] is the old name" in err
