# Boot the real firmware on the rp2 HAL, without hardware: two boards (a primary and
# its secondary) in one interpreter, stepped alternately on a virtual clock.
#
# Everything between the firmware and the pins is the code that runs on a Pico:
# boards/rp2/boot_main.py (escape pin, config.json, HAL, Board), boards/rp2/rp2_hal.py (the
# HAL, built from boards/rp2/pico.py's pin map) and firmware/*. Below that sit stand-ins
# (tests/mpy/support/): `machine` (Pin/UART/SPI with the rp2's pin rules and a line
# model at the configured baud rate), `sdcard` (memory cards that can silently reject
# a block like the real driver) and the rig that wires them: UART1 <-> UART1 is the
# peer link, each UART0 is alone on its site's RS-485 bus, USB CDC is a pipe.
#
# Checked: boot and store format; copy starts; host writes and reads over the host
# port; a checkpoint round (RELEASE and apply at the secondary) makes the writes
# visible there; a silently rejected SD block is caught by the verified writes, and
# a block that never sticks becomes a StoreError; the bus transceiver's DE covers
# every byte up to the last stop bit; no UART RX overrun with the computed ring
# sizes; peer writes never block; the board clock (30-bit ticks) wraps during the run; the
# host-port escape gives the REPL back; the escape pin skips the service.
#
# Heap: under the MicroPython runner this script runs in chunks (mp_continue below),
# and the heap is collected between chunks, so gc.mem_alloc() sampled after every
# round is the heap in use plus at most one chunk's garbage. Printed at the end.
import gc
import sys

for _p in (".", "boards/rp2", "tests/mpy/support"):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import rig

MP = sys.implementation.name == "micropython"
CHUNK = 4                         # rounds between heap collections (MicroPython runner)
KIB = 1024


def mem():
    return gc.mem_alloc() if hasattr(gc, "mem_alloc") else 0


def check(cond, what):
    if not cond:
        raise AssertionError(what)


# ---- the bench -----------------------------------------------------------------------
# the raw tick counter starts 0.3 s before it wraps (2**30 us), so it wraps during the run
VT = rig.VirtualTime(start_raw=rig.TICKS_PERIOD - 300000)
BAUD = 115200
CFG = {
    "P": {"board": "p1", "site": "primary",
          "config": {"node": 1, "role": 1, "peer": 101, "site_nodes": [1], "autostart": True,
                     "bus_baud": BAUD, "peer_baud": BAUD, "nvol": 1, "vol_blocks": 256,
                     "journal_slots": 512, "ckpt_interval_us": 200000}},
    "S": {"board": "s1", "site": "secondary",
          "config": {"node": 101, "role": 2, "peer": 1, "site_nodes": [101], "autostart": True,
                     "bus_baud": BAUD, "peer_baud": BAUD, "nvol": 1, "vol_blocks": 256,
                     "journal_slots": 512, "ckpt_interval_us": 200000}},
}
DEV_BLOCKS = 2 + 1 + 2 * 512 + 2 + 2 * 256 + 256 + 64   # sb, bitmap, journal, intent, image area, volume, spare
R = rig.Rig(VT)
R.card("P", DEV_BLOCKS)
R.card("S", DEV_BLOCKS)
R.card("X", DEV_BLOCKS)
R.link(("P", 1), ("S", 1))
R.bus([("P", 0, 2)])
R.bus([("S", 0, 2)])
PIPES = {"P": rig.HostPipe(), "S": rig.HostPipe()}
IDLERS = {"P": rig.Idler(), "S": rig.Idler()}

STATS = {"phase": "harness", "retained": {}, "peak": 0, "rounds": 0}


def write_configs():
    import json
    for d in ("build", "build/t_boot"):
        try:
            import os
            os.mkdir(d)
        except OSError:
            pass
    paths = {}
    for name, conf in CFG.items():
        path = "build/t_boot/config_%s.json" % name
        f = open(path, "w")
        f.write(json.dumps(conf))
        f.close()
        paths[name] = path
    return paths


# ---- host side: frames over the USB pipe ----------------------------------------------
class Host:
    """The PC's end of the host ports. It builds its requests in place with the firmware's
    codec (one buffer, block contents written into it) and reads replies through one
    deframer per pipe: what the PC allocates lands on the same heap as the boards in this
    interpreter, and its garbage is not the boards'."""

    def __init__(self, codec, wire, Deframer):
        self.codec = codec
        self.w = wire
        self.tag = 0
        self.buf = bytearray(wire.MAX_FRAME)
        self.view = memoryview(self.buf)
        self.d = {n: Deframer() for n in PIPES}
        self.replies = {n: {} for n in PIPES}
        self.errors = {n: [] for n in PIPES}

    def collect(self, name):
        data = PIPES[name].take()
        if len(data) == 0:
            return
        d = self.d[name]
        d.feed(data)
        while d.next():
            if d.mtype == self.w.T_H_REPLY:
                self.replies[name][d.seq] = (d.payload[0], bytes(d.payload[1:]))
            else:
                self.errors[name].append((d.mtype, bytes(d.payload)))

    def _send(self, name, node, mtype, plen):
        self.tag = (self.tag + 1) & 0xFFFF
        n = self.codec.build_frame(self.buf, mtype, 0, self.w.HOST_ID, node, 0, self.tag, 0, plen)
        PIPES[name].send(self.view[0:n])
        return self.tag

    def send(self, name, node, mtype, payload=b""):
        h = self.w.HDR_SIZE
        self.buf[h:h + len(payload)] = payload
        return self._send(name, node, mtype, len(payload))

    def send_write(self, name, node, blk, i):
        """H_WRITE of block(i) to volume 0, block blk."""
        h = self.w.HDR_SIZE
        self.buf[h] = 0
        self.buf[h + 1:h + 5] = blk.to_bytes(4, "little")
        fill_block(self.buf, h + 5, i)
        return self._send(name, node, self.w.T_H_WRITE, 5 + 512)


_Z512 = bytes(512)


def fill_block(buf, off, i):
    """The test pattern of block(i), written into buf at off."""
    buf[off:off + 512] = _Z512
    for k in range(0, 512, 16):
        buf[off + k] = (i * 7 + k) & 0xFF
    buf[off + 511] = i & 0xFF


def block(i):
    b = bytearray(512)
    fill_block(b, 0, i)
    return bytes(b)


# ---- the scenario (a generator: one yield per round of both boards) --------------------
# the board's modules, leaves first, each imported in a chunk of its own (the runner
# collects the heap between chunks), so the heap each adds (its bytecode and module
# objects, with any import not listed before it) is measured on its own: printed as
# `code_by_module`. All of them are imported here, before the boards are built (boot_main
# imports firmware.main only when it boots), so the code is not counted as board data.
CODE_MODULES = ("firmware.wire", "firmware.codec", "firmware.config", "firmware.pairstate",
                "firmware.store", "firmware.ticks", "firmware.peerlink", "firmware.busmac", "firmware.deframer",
                "firmware.portrx", "firmware.primary", "firmware.secondary", "firmware.node",
                "firmware.main", "pico", "rp2_hal", "boot_main")


def scenario():
    for name in CODE_MODULES:
        __import__(name)
        STATS["phase"] = "code:" + name
        yield
    from firmware import wire
    from firmware import codec
    from firmware.deframer import Deframer
    from firmware.store import Store, StoreError
    import boot_main
    import rp2_hal
    import pico
    STATS["phase"] = "code"
    yield

    paths = write_configs()
    from protocol import hostcodec      # the host side's encoder: not part of a board
    host = Host(codec, wire, Deframer)
    STATS["phase"] = "host"
    yield

    # the escape pin: a jumper on GP22 at reset keeps the service from starting
    R.board = "X"
    R.force("X", pico.ESCAPE_PIN, 0)
    check(boot_main.boot(paths["P"], clock=VT) is None, "escape pin held, yet the service was built")
    R.force("X", pico.ESCAPE_PIN, None)

    hals = {}
    boards = {}
    for name in ("P", "S"):
        R.board = name
        got = boot_main.boot(paths[name], clock=VT, idle=IDLERS[name],
                             host=(PIPES[name], PIPES[name], PIPES[name].ready))
        check(got is not None, "boot returned None without the escape pin")
        hals[name], boards[name] = got
    R.board = None
    check(not R.problems, "rig problems at build: %r" % R.problems)
    for name in ("P", "S"):
        h = hals[name]
        check(any("formatting" in line for line in h.logs), "first boot did not format: %r" % h.logs)
        b = boards[name]
        b.node.boot(h.ticks_us())
        b.flush()
        h.open()
    P, S = boards["P"], boards["S"]
    hP, hS = hals["P"], hals["S"]
    STATS["phase"] = "built"
    yield
    STATS["phase"] = "run"

    def round_():
        for name in ("P", "S"):
            IDLERS[name].want = 0
            boards[name].step()
            host.collect(name)
        want = IDLERS["P"].want
        if IDLERS["S"].want < want:
            want = IDLERS["S"].want
        nxt = R.next_arrival_us()
        if nxt is not None and nxt - VT.now < want:
            want = nxt - VT.now
        if want > 2000:
            want = 2000
        if want < 20:
            want = 20
        VT.sleep_us(want)

    def run_for(us):
        end = VT.now + us
        while VT.now < end:
            round_()
            yield

    def request(name, mtype, payload=b"", limit=2000):
        node = CFG[name]["config"]["node"]
        tag = host.send(name, node, mtype, payload)
        yield from wait_reply(name, tag, limit, mtype)

    def wait_reply(name, tag, limit=2000, mtype=None):
        for _ in range(limit):
            round_()
            yield
            if tag in host.replies[name]:
                res.append(host.replies[name].pop(tag))
                return
        raise AssertionError("no reply from %s to type 0x%02x" % (name, mtype or wire.T_H_WRITE))

    res = []

    def status(name):
        yield from request(name, wire.T_H_STATUS)
        st, body = res.pop()
        check(st == wire.S_OK, "STATUS status %d" % st)
        res.append(hostcodec.unpack_status_body(body))

    def write(name, blk, i):
        """H_WRITE of block(i) to block blk."""
        node = CFG[name]["config"]["node"]
        tag = host.send_write(name, node, blk, i)
        yield from wait_reply(name, tag)

    def read(name, blk):
        yield from request(name, wire.T_H_READ, bytes([0]) + blk.to_bytes(4, "little"))

    # 1. copy starts by itself (autostart): the pair reaches duplex, each site elects a master
    for _ in range(100):
        yield from status("P")
        sp = res.pop()
        yield from status("S")
        ss = res.pop()
        if sp[2] == wire.CS_DUPLEX and ss[2] == wire.CS_DUPLEX and sp[6] and ss[6]:
            break
        yield from run_for(50000)
    else:
        raise AssertionError("copy did not become active: P %r S %r" % (sp[:8], ss[:8]))
    check(sp[6] == 1 and ss[6] == 101, "each board is its site master: %r %r" % (sp, ss))
    t_duplex = VT.now

    # 2. host writes complete at once at the primary, and read back from its volume
    for i in range(8):
        for _ in range(100):         # a new master warms up before it stamps writes
            yield from write("P", 10 + i, i)
            st, _ = res.pop()
            if st != wire.S_NOT_READY:
                break
            yield from run_for(20000)
        check(st == wire.S_OK, "write %d: status %d" % (i, st))
    yield from read("P", 13)
    st, body = res.pop()
    check(st == wire.S_OK and body == block(3), "read back from the primary")
    yield from status("P")
    sp = res.pop()
    n_after_writes = sp[8]          # writes are stamped after this checkpoint

    # 3. one checkpoint round: RELEASE and apply at the secondary, then the data is there
    for _ in range(200):
        yield from status("S")
        ss = res.pop()
        if ss[11] > n_after_writes and ss[13] == 0:
            break
        yield from run_for(20000)
    else:
        raise AssertionError("no checkpoint applied at the secondary: %r" % (ss,))
    check(ss[10] >= ss[11], "released_n >= applied_n")
    yield from read("S", 13)
    st, body = res.pop()
    check(st == wire.S_OK and body == block(3), "secondary shows the write after the checkpoint")
    t_applied = VT.now

    # 3b. SET_MODE / SET_POLICY at run time (SPEC section 6): saved, shown in STATUS; in
    #     sync mode a write completes on the secondary's ACK
    import struct

    def command(name, cmd, arg=0):
        yield from request(name, wire.T_H_COMMAND, struct.pack(wire.P_H_COMMAND, cmd, arg, 0))

    for name in ("P", "S"):
        yield from command(name, wire.C_SET_MODE, wire.MODE_CLOCKLESS)
        check(res.pop()[0] == wire.S_BAD_COMMAND, "SET_MODE clockless refused")
        yield from command(name, wire.C_SET_MODE, wire.MODE_SYNC)
        check(res.pop()[0] == wire.S_OK, "SET_MODE sync on %s" % name)
        yield from status(name)
        check(res.pop()[4] == wire.MODE_SYNC, "STATUS shows sync on %s" % name)
    yield from write("P", 12, 2)
    check(res.pop()[0] == wire.S_OK, "sync write")
    check(P.node.role.acked_lseq >= P.node.role.next_lseq - 1, "sync write acked first")
    yield from command("S", wire.C_SET_POLICY, wire.POLICY_CONTINUE)
    check(res.pop()[0] == wire.S_OK, "SET_POLICY continue")
    yield from status("S")
    check(res.pop()[5] == wire.POLICY_CONTINUE, "STATUS shows the policy set")
    for name, cmd, arg in (("S", wire.C_SET_POLICY, wire.POLICY_FREEZE),
                           ("S", wire.C_SET_MODE, wire.MODE_CLOCK),
                           ("P", wire.C_SET_MODE, wire.MODE_CLOCK)):
        yield from command(name, cmd, arg)
        check(res.pop()[0] == wire.S_OK, "back: %s %d %d" % (name, cmd, arg))
    check(P.store.sb.mode & 0x7F == wire.MODE_CLOCK, "clock saved")

    # 4. a data block the card silently rejects is caught by the read-back and rewritten
    R.cards["S"].reject_next = 1
    R.cards["P"].reject_next = 1
    yield from write("P", 40, 40)
    st, _ = res.pop()
    check(st == wire.S_OK, "write with a rejected block")
    yield from status("P")
    n2 = res.pop()[8]
    for _ in range(200):
        yield from status("S")
        ss = res.pop()
        if ss[11] > n2 and ss[13] == 0:
            break
        yield from run_for(20000)
    yield from read("S", 40)
    st, body = res.pop()
    check(st == wire.S_OK and body == block(40), "block rewritten after a silent rejection")
    check(hP.bdev.mismatches >= 1 and hS.bdev.mismatches >= 1, "verify did not see the rejection")
    check(hP.bdev.failed == 0 and hS.bdev.failed == 0, "a transient rejection became a failure")

    # 5. a burst of writes: the primary streams full batches; the peer port queues frames
    #    that do not fit the TX ring instead of blocking the loop
    tags = []
    for _ in range(3000):
        if len(tags) < 32:           # two more writes per round: faster than the link drains
            for i in (len(tags), len(tags) + 1):
                tags.append(host.send_write("P", 1, 100 + i, 100 + i))
        round_()
        yield
        if len(tags) == 32 and all(t in host.replies["P"] for t in tags):
            break
    check(all(host.replies["P"].pop(t, (None,))[0] == wire.S_OK for t in tags), "burst writes")
    yield from status("P")
    n3 = res.pop()[8]
    for _ in range(400):
        yield from status("S")
        ss = res.pop()
        if ss[11] > n3 and ss[13] == 0:
            break
        yield from run_for(20000)
    else:
        raise AssertionError("burst not applied at the secondary: %r" % (ss,))
    yield from read("S", 131)
    st, body = res.pop()
    check(st == wire.S_OK and body == block(131), "secondary shows the last burst write")
    check(hP.peer.queued > 0, "the burst never filled the peer TX ring (test too weak)")

    # 6. the host-port escape: Ctrl-C right after traffic is only garbage...
    yield from status("P")
    res.pop()
    PIPES["P"].send(b"\x03")
    yield from run_for(5000)
    check(hP.host.serving, "a Ctrl-C inside traffic stopped the service")
    yield from run_for(1100000)     # ...but after a second of quiet it gives the REPL back
    PIPES["P"].send(b"\r\x03")
    stopped = False
    try:
        P.step()
    except KeyboardInterrupt:
        stopped = True
    check(stopped and not hP.host.serving, "the escape did not stop the service")
    hP.close()

    # 7. what the line models saw
    check(not R.problems, "%d rig problems, first: %r" % (len(R.problems), R.problems[:4]))
    over, blocked = R.totals()
    check(over == 0, "UART RX overrun: %d bytes lost" % over)
    check(R.uarts[("P", 1)].blocked_us == 0 and R.uarts[("S", 1)].blocked_us == 0,
          "a peer-link write blocked the loop")
    check(hP.bus.frames > 10 and hS.bus.frames > 10, "the bus masters sent their beacons")
    check(hP.clock.wraps >= 1, "ticks_us did not wrap during the run")
    yield

    # 8. a block that never sticks: the store gets StoreError(S_IO_ERROR), not silence
    STATS["phase"] = "faults"
    R.board = "X"
    import machine
    import sdcard
    spi = machine.SPI(1, sck=10, mosi=11, miso=12)
    cs = machine.Pin(13, machine.Pin.OUT, value=1)
    dev = rp2_hal.VerifiedCard(sdcard.SDCard(spi, cs))
    Store.format(dev, 1, 9, 10, 0, 1, 16, 8)
    st = Store(dev)
    st.mount()
    R.cards["X"].reject_always = True
    try:
        st.write_block(0, 1, b"\x5a" * 512)
        raise AssertionError("a write that never sticks went unnoticed")
    except StoreError as e:
        check(e.code == wire.S_IO_ERROR, "StoreError code %r" % e.code)
    R.cards["X"].reject_always = False
    R.cards["X"].raise_next = 5     # a driver that keeps raising: -EIO after the retries
    try:
        st.write_block(0, 1, b"\x5a" * 512)
        raise AssertionError("a failing driver went unnoticed")
    except StoreError as e:
        check(e.code == wire.S_IO_ERROR, "StoreError code %r" % e.code)

    # figures
    for name in ("P", "S"):
        top = {}
        BUFFERS[name] = top
        seen = {}
        buffers(hals[name], "hal", top, seen, 0)
        buffers(boards[name], "board", top, seen, 0)
        items = sorted(top.items(), key=lambda kv: -kv[1])
        total = 0
        for _, n in items:
            total += n
        print("board %s buffers: %d B total; largest: %s" % (name, total, ", ".join(
            "%s %d" % kv for kv in items[:8])))
    print("virtual time: duplex at %d ms, first checkpoint applied at %d ms, end %d ms; rounds %d"
          % (t_duplex // 1000, t_applied // 1000, VT.now // 1000, STATS["rounds"]))
    print("bus frames P/S %d/%d, peer frames P/S %d/%d (queued %d/%d), sd verify mismatches P/S %d/%d"
          % (hP.bus.frames, hS.bus.frames, hP.peer.frames, hS.peer.frames, hP.peer.queued,
             hS.peer.queued, hP.bdev.mismatches, hS.bdev.mismatches))
    print("uart rings: bus rx %d tx %d, peer rx %d tx %d bytes"
          % (R.uarts[("P", 0)].rxbuf, R.uarts[("P", 0)].txbuf, R.uarts[("P", 1)].rxbuf,
             R.uarts[("P", 1)].txbuf))


BUFFERS = {}
SCRATCH = {}                     # id of a deframer scratch -> (owner path, bytes counted)
CODE_BY_MODULE = []
GEN = scenario()
DONE = False


def mp_continue():
    """Run up to CHUNK rounds; True while there is more. Called by the runner with the
    heap collected before each call (and by the loop at the bottom under CPython)."""
    global DONE
    if DONE:
        return False
    ph = STATS["phase"]
    m = mem()
    if ph not in STATS["retained"] or m > STATS["retained"][ph]:
        STATS["retained"][ph] = m
    for _ in range(CHUNK):
        try:
            next(GEN)
        except StopIteration:
            DONE = True
            report()
            return False
        STATS["rounds"] += 1
        m = mem()
        if m > STATS["peak"] and ph in ("built", "run") and STATS["phase"] == ph:
            STATS["peak"] = m
        if STATS["phase"] != ph:
            break                    # a new phase starts on a freshly collected heap
    return True


def buffers(obj, path, out, seen, depth):
    """Add up the bytes of every bytearray/bytes reachable from obj, by attribute path."""
    if isinstance(obj, (bytearray, bytes)):
        if id(obj) not in seen:      # a buffer shared by two owners counts once (first path)
            seen[id(obj)] = True
            out[path] = out.get(path, 0) + len(obj)
        return
    if depth > 6 or isinstance(obj, (int, str, float, bool)) or obj is None:
        return
    if id(obj) in seen:
        return
    seen[id(obj)] = True
    if isinstance(obj, dict):
        for k in obj:
            buffers(obj[k], path, out, seen, depth + 1)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            buffers(v, path, out, seen, depth + 1)
    elif hasattr(obj, "__dict__") and not hasattr(obj, "__name__"):
        d = obj.__dict__
        if "capacity" in d and "_in" in d:
            # a Deframer resizes its buffers in place: the allocation stays at capacity. Its
            # frame scratch (_s) may be shared by several deframers: counted once, at the
            # largest capacity among them (what Deframer.scratch_for allocated)
            cap = d["capacity"]
            out[path] = out.get(path, 0) + cap
            k = id(d["_s"])
            if k not in seen:
                seen[k] = True
                out[path + "._s"] = out.get(path + "._s", 0) + cap
                SCRATCH[k] = (path + "._s", cap)
            elif k in SCRATCH and SCRATCH[k][1] < cap:
                p0, c0 = SCRATCH[k]
                out[p0] += cap - c0
                SCRATCH[k] = (p0, cap)
            return
        for k in d:
            if k not in ("rig", "_st", "card", "cards", "_ports"):  # stand-ins; _ports: seen as bus, peer, host
                buffers(d[k], path + "." + k, out, seen, depth + 1)


def report():
    r = STATS["retained"]
    if MP and r.get("harness"):
        base = r["harness"]
        code = r.get("code", base) - base
        host = r.get("host", base)
        built = r.get("built", host) - host
        run = r.get("run", host) - host
        peak = STATS["peak"] - host
        print("heap (MicroPython): firmware+HAL code %d B; two boards: %d B after boot, %d B "
              "retained while running, <= %d B peak in use (incl. up to %d rounds of garbage)"
              % (code, built, run, peak, CHUNK))
        print("peak heap in use per board <= %.1f KiB (code %.1f KiB + half the two boards' "
              "peak %.1f KiB); goal 64 KiB" % ((code + peak / 2) / KIB, code / KIB, peak / 2 / KIB))
        # the numbers, for `arcopy perf heap`: bytes
        prev = base
        for name in CODE_MODULES:
            m = r.get("code:" + name, prev)
            CODE_BY_MODULE.append([name, m - prev])
            prev = m
        import json
        print("heap-json: " + json.dumps({
            "code": code, "code_by_module": CODE_BY_MODULE, "boards_after_boot": built,
            "boards_retained": run, "boards_peak": peak, "garbage_rounds": CHUNK,
            "buffers": BUFFERS}))
    else:
        print("heap: not measured (%s)" % ("run in one piece" if MP else "CPython"))
    print("ALL OK")


if not globals().get("__mp_chunks__"):
    while mp_continue():
        pass
