"""The host-port rules of protocol/SPEC.md section 8, on the firmware's own receive path
(firmware/main.py's Board over a fake HAL: PortRx, Deframer, Node): the golden exchanges of
protocol/vectors.json ("host_port"), answered byte for byte, plus the rules that need time or
chunking (one BAD_FRAME per run of bad input, the quiet-line limit) and the SPEC's tables."""
import json
import os

import pytest

from firmware import main, wire
from firmware.deframer import Deframer
from firmware.portrx import QUIET_US
from test_main_loop import FakeHal
from protocol import frames as F
from protocol import hostcodec

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
with open(os.path.join(ROOT, "protocol", "vectors.json")) as _f:
    VEC = json.load(_f)
with open(os.path.join(ROOT, "protocol", "SPEC.md")) as _f:
    SPEC = _f.read()


class Hal(FakeHal):
    """One board alone (its site has only itself): enough for everything the host port does."""

    def __init__(self, node, role):
        super().__init__()
        self.node, self.role = node, role

    def config(self):
        peer = 129 if self.role == wire.ROLE_PRIMARY else 1
        return dict(node=self.node, role=self.role, peer=peer, site_nodes=[self.node],
                    vol_blocks=64, journal_slots=32, autostart=False)

    def wait(self, us):
        pass                      # time moves only when the test moves it


def board(node=1, role=wire.ROLE_PRIMARY):
    hal = Hal(node, role)
    b = main.Board(hal)
    b.node.boot(hal.ticks_us())
    b.flush()
    hal.portlist[0].sent.clear()
    return hal, b


def answers(hal):
    """Frames the board sent on its host port: [(frame bytes, parsed)]."""
    host = hal.portlist[0]
    d = Deframer()
    d.feed(bytes(host.sent))
    host.sent.clear()
    out = []
    while d.next():
        frame = bytes(d.frame)
        out.append((frame, F.parse_frame(frame)))
    return out


def send(hal, b, data, chunk=64, gap_us=1000):
    """Bytes to the host port in chunks, one loop step per chunk (so a run of bad input
    arrives in several reads, as on a real UART)."""
    host = hal.portlist[0]
    for i in range(0, len(data), chunk):
        host.inbox += data[i:i + chunk]
        b.step()
        hal.now += gap_us
    for _ in range(3):
        b.step()


@pytest.mark.parametrize("vec", VEC["host_port"], ids=lambda v: v["name"])
def test_golden_host_port_exchange(vec):
    hal, b = board(vec["board"]["node"], vec["board"]["role"])
    send(hal, b, bytes.fromhex(vec["send"]))
    got = answers(hal)
    assert len(got) == len(vec["answers"]), (vec["rule"], [p for _, p in got])
    for (frame, p), want in zip(got, vec["answers"]):
        assert p["name"] == want["message"], vec["rule"]
        for k in ("flags", "src", "dst", "seq"):
            assert p[k] == want[k], (vec["rule"], k)
        for k, v in want["fields"].items():
            assert (p["payload"][k].hex() if isinstance(p["payload"][k], bytes) else p["payload"][k]) == v, \
                (vec["rule"], k)
        if "hex" in want:
            assert frame.hex() == want["hex"], vec["rule"]


def test_a_request_for_another_board_is_not_done():
    hal, b = board(1)
    blk = (7).to_bytes(4, "little")
    send(hal, b, hostcodec.encode(wire.T_H_WRITE, 0, 129, bytes([0]) + blk + b"\x33" * 512, seq=3))
    assert answers(hal) == [] and b.node.c["host_writes"] == 0 and b.node.c["not_mine"] == 1
    buf = bytearray(512)
    b.store.read_block(0, 7, buf)
    assert buf == bytes(512)                 # the write addressed to node 129 did not run here
    send(hal, b, hostcodec.encode(wire.T_H_WRITE, 0, 1, bytes([0]) + blk + b"\x33" * 512, seq=4))
    assert [p["payload"]["status"] for _, p in answers(hal)] == [wire.S_OK]


def test_tag_0_is_refused_and_the_request_not_executed():
    hal, b = board(1)
    blk = (5).to_bytes(4, "little")
    send(hal, b, hostcodec.encode(wire.T_H_WRITE, 0, 1, bytes([0]) + blk + b"\x44" * 512, seq=0))
    (_, p), = answers(hal)
    assert (p["name"], p["seq"], p["payload"]["code"], p["payload"]["mtype"]) == \
        ("error", 0, wire.S_BAD_FRAME, wire.T_H_WRITE)
    assert b.node.c["host_writes"] == 0


def test_one_bad_frame_per_run_of_garbage_split_over_many_reads():
    hal, b = board(1)
    garbage = bytes((i * 37 + 11) & 0xFF for i in range(1500)).replace(b"\xa5", b"\x17")
    send(hal, b, garbage, chunk=100)          # 15 reads, all garbage, close together
    assert answers(hal) == []                 # the run has not ended yet
    hal.now += QUIET_US + 1                   # the line goes quiet: the run ends
    b.step()
    (_, p), = answers(hal)
    assert (p["name"], p["seq"], p["payload"]["code"], p["payload"]["detail"]) == \
        ("error", 0, wire.S_BAD_FRAME, len(garbage))
    # a damaged frame, more garbage and a truncated frame in one run: one error, then the answer
    good = hostcodec.encode(wire.T_H_STATUS, 0, 1, b"", seq=8)
    bad = bytearray(good)
    bad[-1] ^= 1
    run = bytes(bad) + garbage[:200] + good[:10]
    send(hal, b, run + good, chunk=30)
    got = [p for _, p in answers(hal)]
    assert [g["name"] for g in got] == ["error", "h_reply"]
    assert got[0]["payload"]["detail"] == len(run) and got[1]["seq"] == 8
    assert b.node.c["bad_frames"] == 2


def test_a_frame_cut_short_is_given_up_after_the_quiet_limit():
    hal, b = board(1)
    whole = hostcodec.encode(wire.T_H_WRITE, 0, 1, bytes(5 + 512), seq=1)
    send(hal, b, whole[:100])
    hal.now += QUIET_US // 2
    b.step()
    assert answers(hal) == [] and b.rx_ports[0].d.abandoned == 0      # not quiet long enough
    hal.now += QUIET_US // 2 + 1
    b.step()
    (_, p), = answers(hal)
    assert p["payload"]["code"] == wire.S_BAD_FRAME and p["payload"]["detail"] == 100
    assert b.rx_ports[0].d.abandoned == 1


def test_status_and_commands_by_role():
    hal, b = board(1)
    cmd = bytearray(13)

    def command(c, arg=0, tag=20):
        hostcodec.pack_h_command(cmd, 0, c, arg, 0)
        send(hal, b, hostcodec.encode(wire.T_H_COMMAND, 0, 1, bytes(cmd), seq=tag))
        (_, p), = answers(hal)
        return p["payload"]["status"]

    for arg in (3, 4, 0xFFFFFFFF):
        assert command(wire.C_START_COPY, arg) == wire.S_BAD_COMMAND
    assert b.store.sb.copy_state == wire.CS_SIMPLEX          # nothing started
    assert command(wire.C_FAILOVER) == wire.S_WRONG_ROLE
    assert command(wire.C_SET_POLICY, 1) == wire.S_WRONG_ROLE
    assert command(wire.C_REBOOT) == wire.S_BAD_COMMAND
    assert command(wire.C_RESUME) == wire.S_BAD_STATE        # a primary's command, simplex pair
    assert command(wire.C_START_COPY, 2) == wire.S_OK        # NOCOPY


# -- SPEC.md states these rules -------------------------------------------------------------------
def test_spec_states_the_host_port_rules():
    sec8 = SPEC[SPEC.index("## 8. Host port"):SPEC.index("## 9.")]
    for phrase in ("BROADCAST", "tag 0", "BAD_FRAME", "100 ms", "once per run", "WRONG_ROLE"):
        assert phrase in sec8, phrase
    assert "100 ms" in SPEC[SPEC.index("### Receiving"):SPEC.index("## 2. Flags")]


def test_spec_says_how_every_status_is_sent():
    sec = SPEC[SPEC.index("### Which frame carries which status"):]
    rows = {}
    for line in sec.splitlines()[1:]:
        if line.startswith("#"):
            break
        if line.startswith("|") and not line.startswith("|--") and not line.startswith("| Status"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            rows[cells[0]] = cells[1]
    assert set(rows) == set(F.STATUS), "every status code has a row"
    for name, how in rows.items():
        assert how in ("H_REPLY", "ERROR", "H_REPLY, ERROR"), (name, how)
    for name in ("BAD_FRAME", "UNKNOWN_TYPE", "BAD_LENGTH"):
        assert rows[name] == "ERROR"
    for name in ("OK", "BAD_COMMAND", "BAD_STATE", "WRONG_ROLE", "READ_ONLY"):
        assert rows[name] == "H_REPLY"


def test_host_tools_send_a_board_id_or_broadcast_and_never_tag_0():
    import inspect
    from host_tools.transport import messages, serial_client
    assert inspect.signature(serial_client.HostClient).parameters["node"].default == wire.BROADCAST
    for dst, tag in ((0, 1), (1, 0), (256, 1), (1, 65536)):
        with pytest.raises(ValueError):
            messages.encode_request(wire.T_H_STATUS, dst, b"", tag)
    p = F.parse_frame(messages.encode_request(wire.T_H_STATUS, wire.BROADCAST, b"", 1))
    assert (p["src"], p["dst"], p["seq"]) == (wire.HOST_ID, wire.BROADCAST, 1)
