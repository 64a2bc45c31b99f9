"""Checkpoint markers ride inside WRITE_BATCH (a record of no data, vol MARKER_VOL): the batch stays full, order is kept."""
import json

from corenet import Net, block_of
from firmware import codec
from firmware.store import J_CHECKPOINT, J_RECORD
from firmware.wire import MARKER_VOL, PORT_PEER, T_MARKER, T_WRITE_BATCH
from protocol import frames as F
from protocol import hostcodec, make_vectors


def _peer_frames(net, dst):
    """Record every peer-link frame delivered to board `dst`: [(mtype, payload)]."""
    seen = []
    deliver = net._deliver

    def spy(to, port, frame):
        if to == dst and port == PORT_PEER:
            d = hostcodec.decode(frame)
            seen.append((d[0], bytes(d[7])))
        deliver(to, port, frame)
    net._deliver = spy
    return seen


def test_a_marker_after_records_travels_inside_their_batch_in_stream_order():
    net = Net(pairs=2, ckpt_interval_us=10 ** 9)     # checkpoints only when the test says
    net.advance(1000000)
    p1, s1 = net.prim(1), net.sec(1)
    net.hold(("peer", p1.id))
    for i in range(4):                               # 4 one-record frames: the window is full
        net.write(p1, 0, 10 + i, block_of("w%d" % i))
        net.advance(20000)
    net.write(p1, 0, 1, block_of("x"))
    net.write(p1, 0, 2, block_of("y"))
    net.prim(1).node.role.next_ckpt = 0              # pair 1's primary is the master
    net.advance(100000)
    net.write(p1, 0, 3, block_of("z"))
    kinds = [e[1] for e in p1.store.j_entries()][-4:]
    assert kinds == [J_RECORD, J_RECORD, J_CHECKPOINT, J_RECORD]
    n, T = p1.node.role.ckpt_n, p1.node.role.ckpt_t
    seen = _peer_frames(net, s1.id)
    net.release(("peer", p1.id))
    net.advance(300000)
    batches = [p for m, p in seen if m == T_WRITE_BATCH]
    assert T_MARKER not in [m for m, _ in seen]       # no frame of its own
    # the batch that carries the marker: x, y, marker (n, T), z
    recs = [hostcodec.unpack_write_batch(p) for p in batches]
    with_marker = [r for r in recs if any(x[0] == MARKER_VOL for x in r)]
    assert len(with_marker) == 1
    r = with_marker[0]
    assert [(x[0], x[1]) for x in r] == [(0, 1), (0, 2), (MARKER_VOL, 0), (0, 3)]
    assert r[2][2:4] == (T, n) and len(r[2][4]) == 0 and r[1][2] <= T < r[3][2]
    # the secondary took them in stream order: it held (n, T), and the cut applied x and y
    # but not z, which waits in its journal for the next cut
    net.advance(1000000)
    assert (s1.node.role.ckpt_n, s1.node.role.ckpt_t) == (n, T)
    assert (s1.store.sb.applied_n, s1.store.sb.applied_t) == (n, T)
    assert [net.read(s1, 0, b)[1] for b in (1, 2, 3)] == [block_of("x"), block_of("y"),
                                                           bytes(len(block_of("z")))]
    j = list(s1.store.j_entries())
    assert [(e[1], e[4]) for e in j] == [(J_RECORD, 3)] and j[0][5] > T


def test_a_marker_batch_sent_again_is_taken_once():
    """Go-back-N resends a batch whose ACK was lost: records and the marker inside are
    duplicates then, journaled once."""
    net = Net(pairs=2, ckpt_interval_us=10 ** 9)
    net.advance(1000000)
    s1 = net.sec(1)
    role = s1.node.role
    lseq, n0, t0 = role.next_lseq, role.ckpt_n, role.ckpt_t
    buf = bytearray(4096)
    off = codec.pack_record(buf, 1, 0, 4, t0 + 10, lseq, block_of("a"))
    off = codec.pack_record(buf, off, MARKER_VOL, 0, t0 + 20, n0 + 1, b"")
    off = codec.pack_record(buf, off, 0, 5, t0 + 30, lseq + 1, block_of("b"))
    codec.pack_batch_head(buf, 0, 3)
    exp = role.rx.expected
    before = len(list(s1.store.j_entries()))
    for _ in range(2):
        frame = hostcodec.encode(T_WRITE_BATCH, net.prim(1).id, s1.id, bytes(buf[:off]), seq=exp)
        net._deliver(s1.id, PORT_PEER, frame)
        net.pump()
    ents = list(s1.store.j_entries())[before:]
    assert [e[1] for e in ents] == [J_RECORD, J_CHECKPOINT, J_RECORD]
    assert (role.ckpt_n, role.ckpt_t) == (n0 + 1, t0 + 20) and role.next_lseq == lseq + 2
    assert s1.node.c["records_rejected"] == 0


def test_the_host_definitions_know_the_marker_record():
    assert F.MARKER_VOL == MARKER_VOL == 255
    with open(make_vectors.PATH) as f:
        vec = [v for v in json.load(f)["frames"] if v["name"] == "write_batch/marker-inside"]
    assert len(vec) == 1
    recs = F.parse_frame(bytes.fromhex(vec[0]["hex"]))["payload"]["records"]
    assert [r["vol"] for r in recs] == [0, MARKER_VOL, 0] and recs[1]["data"] == b""
