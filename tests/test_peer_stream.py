"""The peer stream under a lossy or corrupting link (issue #13 item 4: failback drills whose
sites stayed different because a pair's stream crawled): a lost last frame is NAKed at the
next keepalive, a go-back reframes the stream in smaller batches, silence counts only once
what was sent has left the wire, and a reframed copy the secondary holds starts no resync."""
from corenet import Net, block_of
from firmware import codec
from firmware.node import PORT_PEER
from firmware.wire import *  # noqa: F401,F403
from firmware.pairstate import LINK_UP
from protocol import hostcodec


def _peer_frames(net, board):
    """Decoded (mtype, seq, flags, payload) of the frames `board` has queued on its peer link."""
    out = []
    for port, src, frame in net.queues:
        if port == PORT_PEER and src == board.id:
            mtype, flags, _s, _d, _g, seq, _a, payload = hostcodec.decode(frame)
            out.append((mtype, seq, flags, bytes(payload)))
    return out


def _drop_peer_frames(net, board, mtype=None):
    net.queues = [q for q in net.queues if not (
        q[0] == PORT_PEER and q[1] == board.id
        and (mtype is None or hostcodec.decode(q[2])[0] == mtype))]


def _duplex(**kw):
    net = Net(pairs=1, **kw)
    net.advance(1500000)
    p, s = net.prim(1), net.sec(1)
    assert p.store.sb.copy_state == CS_DUPLEX and s.store.sb.copy_state == CS_DUPLEX
    return net, p, s


def test_a_lost_last_frame_is_nak_ed_at_the_next_keepalive_not_after_a_timeout():
    # checkpoints far apart: no marker follows the lost frame soon, only keepalives
    net, p, s = _duplex(ckpt_interval_us=10000000)
    rto = p.cfg.rto_us
    assert rto > 2000000
    net.hold(("peer", p.id))
    assert net.write(p, 0, 3, block_of("x")) == S_OK
    net.advance(20000)                       # the batch is framed and queued (held)
    assert any(f[0] == T_WRITE_BATCH for f in _peer_frames(net, p))
    _drop_peer_frames(net, p, T_WRITE_BATCH)    # lost on the line
    net.release(("peer", p.id))
    got = s.node.role.next_lseq
    net.advance(rto // 3)
    assert s.node.role.next_lseq > got, "the lost record waited for a whole retransmit timeout"


def test_a_go_back_reframes_the_stream_in_smaller_batches():
    net, p, s = _duplex()
    r = p.node.role
    assert r.batch_lim == p.cfg.batch_max == 7
    net.hold(("peer", p.id))
    for b in range(14):
        assert net.write(p, 0, b, block_of("w%d" % b)) == S_OK
    net.advance(20000)
    first = [f for f in _peer_frames(net, p) if f[0] == T_WRITE_BATCH]
    assert [codec.unpack_batch_head(f[3])[0] for f in first] == [7, 7]
    _drop_peer_frames(net, p)                # the whole window is lost
    net.advance(250000)                      # a marker or a keepalive follows them
    kinds = [f[0] for f in _peer_frames(net, p)]
    assert kinds and T_WRITE_BATCH not in kinds
    net.hold(("peer", s.id))
    net.release(("peer", p.id))              # the secondary NAKs what it lacks
    net.hold(("peer", p.id))
    net.release(("peer", s.id))              # the primary goes back...
    net.advance(500000)                      # ...framing as the line drains (paced)
    again = [f for f in _peer_frames(net, p) if f[0] == T_WRITE_BATCH]
    assert again and again[0][1] == first[0][1]       # the base's sequence number again
    assert max(codec.unpack_batch_head(f[3])[0] for f in again) <= 3
    net.release(("peer", p.id))
    net.advance(1000000)
    assert s.node.role.next_lseq == r.next_lseq       # every record arrived, once
    # clean acknowledgements grow the batches back
    for b in range(60):
        net.write(p, 0, b % 64, block_of("v%d" % b))
        net.advance(20000)
    assert r.batch_lim > 3


def test_silence_counts_only_once_the_frames_sent_have_left_the_wire():
    # 9600 baud: two full batches take about 8 s on the line, longer than peer_timeout_us
    net, p, s = _duplex(peer_baud=9600)
    r = p.node.role
    resets = r.link_resets
    net.hold(("peer", p.id), ("peer", s.id))
    for b in range(14):
        assert net.write(p, 0, b, block_of("w%d" % b)) == S_OK
    net.advance(p.cfg.peer_timeout_us + 500000)
    assert r.link == LINK_UP and r.link_resets == resets   # still LINK_UP: our frames are on the wire
    net.advance(12000000)                             # now the peer is silent for real
    assert r.link != LINK_UP


def test_a_reframed_copy_the_secondary_already_holds_starts_no_resync():
    net, p, s = _duplex()
    for b in range(3):
        assert net.write(p, 0, b, block_of("w%d" % b)) == S_OK
    net.advance(1000000)
    sr = s.node.role
    held = sr.next_lseq
    assert held > 1
    applied = s.store.sb.applied_t
    buf = bytearray(MAX_PAYLOAD)
    end = hostcodec.pack_write_batch(buf, 0, held - 1, 0, [(0, 1, 0, block_of("stale"))])
    frame = hostcodec.encode(T_WRITE_BATCH, p.id, s.id, bytes(buf[:end]), seq=sr.rx.expected,
                             flags=F_COPY)
    net._deliver(s.id, PORT_PEER, frame)
    net.pump()
    assert s.store.sb.copy_state == CS_DUPLEX and s.store.sb.applied_t >= applied
    buf2 = bytearray(BLOCK_SIZE)
    s.store.read_block(0, 1, buf2)
    assert bytes(buf2) != block_of("stale")


def test_frames_waiting_for_the_line_stay_about_two_whatever_the_window():
    # issue #14 item 3: the sender keeps no frame copies (a go-back rebuilds from the
    # journal) and frames only as the line drains, so a burst queues ~2 frames, not `window`
    net, p, s = _duplex(window=8)
    r = p.node.role
    net.hold(("peer", p.id))
    for b in range(56):
        assert net.write(p, 0, b, block_of("w%d" % b)) == S_OK
    net.advance(20000)
    batches = [f for f in _peer_frames(net, p) if f[0] == T_WRITE_BATCH]
    assert len(batches) == 2
    assert not hasattr(r.sender, "slots")
    net.advance(400000)                      # one frame's airtime later: one more
    assert len([f for f in _peer_frames(net, p) if f[0] == T_WRITE_BATCH]) == 3
    net.release(("peer", p.id))
    net.advance(5000000)
    assert s.node.role.next_lseq == r.next_lseq
