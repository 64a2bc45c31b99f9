"""Peer stream framing (issue #16 item 4, goodput): a WRITE_BATCH carries its first record's lseq
and a base time once, each record only its offset from it; a checkpoint marker that follows stream
records ends their batch inside the same frame instead of travelling as a MARKER frame of its own;
a batch never holds records whose lseqs do not follow or whose times lie too far apart."""
from corenet import Net, block_of
from firmware import codec
from firmware.node import PORT_PEER
from firmware.store import J_CHECKPOINT, J_RECORD
from firmware.wire import *  # noqa: F401,F403
from protocol import hostcodec


def _peer_frames(net, board):
    """Decoded (mtype, flags, payload) of the frames `board` has queued on its peer link."""
    out = []
    for port, src, frame in net.queues:
        if port == PORT_PEER and src == board.id:
            mtype, flags, _s, _d, _g, _seq, _a, payload = hostcodec.decode(frame)
            out.append((mtype, flags, bytes(payload)))
    return out


def _duplex(**kw):
    net = Net(pairs=1, ckpt_interval_us=10 ** 9, **kw)     # checkpoints only when a test cuts one
    net.advance(1500000)
    p, s = net.prim(1), net.sec(1)
    assert p.store.sb.copy_state == CS_DUPLEX and s.store.sb.copy_state == CS_DUPLEX
    return net, p, s


def _cut(net, p):
    """The primary accepts a checkpoint at its current sequence time (as from its master)."""
    r = p.node.role
    now = p.t(net.now)
    t = r.seq_time(now)
    assert r.accept_checkpoint(now, r.ckpt_n + 1, t)
    net.pump()                               # collect what it framed (a held link keeps it)
    return t


def _entries(board):
    """(kind, lseq or n, vol, blk, t) of every journal entry of a board, with each record's data."""
    st = board.store
    out = []
    buf = bytearray(BLOCK_SIZE)
    for jseq, kind, lseq, vol, blk, t in st.j_entries():
        data = None
        if kind == J_RECORD:
            st.j_read_data(jseq, buf)
            data = bytes(buf)
        out.append((kind, lseq, vol, blk, t, data))
    return out


def test_a_checkpoint_marker_after_records_ends_their_batch_in_the_same_frame():
    net, p, s = _duplex()
    net.hold(("peer", p.id))
    for b in range(3):
        assert net.write(p, 0, 10 + b, block_of("r%d" % b)) == S_OK
        net.now += 777                       # distinct stamps, some microseconds apart
    t = _cut(net, p)
    sent = _peer_frames(net, p)
    assert [f[0] for f in sent] == [T_WRITE_BATCH], "the marker travelled as a frame of its own"
    count, first, t0, off, moff = codec.unpack_batch_head(sent[0][2])
    assert count == 3 and moff == off + 3 * RECORD_SIZE
    assert len(sent[0][2]) == codec.SZ_BATCH_HEAD + 3 * RECORD_SIZE + codec.SZ_MARKER
    assert codec.unpack_marker(sent[0][2], moff, moff + codec.SZ_MARKER)[1] == t
    want = _entries(p)
    assert [e[0] for e in want] == [J_RECORD] * 3 + [J_CHECKPOINT]
    assert want[0][1] == first and want[0][4] == t0
    net.release(("peer", p.id))
    net.advance(20000)
    sr = s.node.role
    assert sr.ckpt_t == t                    # the secondary holds the cut (reports it in HELD)
    got = [e for e in _entries(s) if e[0] in (J_RECORD, J_CHECKPOINT)][-4:]
    assert got == want                       # every record's lseq, time and data, then the marker
    assert p.node.role.records_acked == p.node.role.records_moved == 3


def test_a_marker_with_no_records_before_it_is_a_marker_frame():
    net, p, s = _duplex()
    assert net.write(p, 0, 1, block_of("a")) == S_OK
    net.advance(20000)                       # the record went alone
    net.hold(("peer", p.id))
    t = _cut(net, p)
    assert [f[0] for f in _peer_frames(net, p)] == [T_MARKER]
    net.release(("peer", p.id))
    net.advance(20000)
    assert s.node.role.ckpt_t == t


def test_a_marker_batch_the_secondary_cannot_journal_whole_is_taken_again_whole():
    # the secondary's journal fills up: the frame is not acknowledged, and once space is back
    # the reframed batch brings every record and the marker exactly once
    net, p, s = _duplex(journal_slots=16)
    sr = s.node.role
    net.hold(("peer", p.id))
    for b in range(5):
        assert net.write(p, 0, b, block_of("f%d" % b)) == S_OK
    t = _cut(net, p)
    free = s.store.j_free
    s.store.j_free = lambda: 0               # full for now
    net.release(("peer", p.id))
    net.advance(20000)
    assert sr.ckpt_t < t and sr.journal_full
    s.store.j_free = free
    net.advance(4 * p.cfg.rto_us)
    assert sr.ckpt_t == t
    assert sr.next_lseq == p.node.role.next_lseq and sr.records_moved == 5
    net.advance(1000000)                     # released and applied
    buf = bytearray(BLOCK_SIZE)
    for b in range(5):
        s.store.read_block(0, b, buf)
        assert bytes(buf) == block_of("f%d" % b)


def test_records_whose_lseqs_or_times_do_not_fit_one_head_go_in_separate_batches():
    net, p, s = _duplex()
    r = p.node.role
    net.hold(("peer", p.id))
    for b in range(6):
        assert net.write(p, 0, b, block_of("g%d" % b)) == S_OK
    _peer_frames(net, p)
    net.queues = []
    entries = [e for e in p.store.j_entries() if e[1] == J_RECORD][-6:]
    base_l, base_t = entries[0][2], entries[0][5]
    # as the journal could hold them: a gap in the lseqs after the 2nd, a time past 2**30 us
    # after the 4th's batch start, and a time before it
    shaped = []
    for i, (jseq, kind, lseq, vol, blk, t) in enumerate(entries):
        lseq = base_l + i + (1 if i >= 2 else 0)
        t = base_t + i + ((1 << 30) if i == 4 else 0) - (5 if i == 5 else 0)
        shaped.append((jseq, kind, lseq, vol, blk, t))
    it = iter(shaped)
    heads = []
    while True:
        f = r._build(it, p.t(net.now))
        if f is None:
            break
        mtype, _fl, _s, _d, _g, _q, _a, payload = hostcodec.decode(f)
        heads.append(codec.unpack_batch_head(payload)[:3])
    assert heads == [(2, base_l, base_t), (2, base_l + 3, base_t + 2), (1, base_l + 5, base_t + 4 + (1 << 30)),
                     (1, base_l + 6, base_t)]


def test_sync_mode_a_marker_ending_a_batch_leaves_the_journal_with_the_batch_ack():
    """Sync mode: the writes complete on the batch's ACK, and that ACK frees the marker carried
    at the batch's end with the records (a stalled sync pair's journal holds only what the link
    has not acknowledged); a marker travelling alone is freed by its own ACK."""
    net, p, s = _duplex(mode=MODE_SYNC)
    net.hold(("peer", p.id))
    tags = []
    for b in range(3):
        tags.append(net.request(p, T_H_WRITE, bytes([0]) + (20 + b).to_bytes(4, "little")
                                + block_of("s%d" % b)))
        net.now += 777
    assert all(t not in p.replies for t in tags)        # waiting for the peer's ACK
    t = _cut(net, p)
    assert [f[0] for f in _peer_frames(net, p)] == [T_WRITE_BATCH]
    assert p.store.j_depth() == 4
    seq = p.node.role.sender.next
    net.release(("peer", p.id))
    net.advance(20000)
    assert [p.replies[t][0] for t in tags] == [S_OK] * 3
    assert s.node.role.ckpt_t == t
    assert p.store.j_depth() == 0, _entries(p)          # the trailer marker went with the batch
    assert p.node.role.sender.next == seq               # and was not sent again on its own
    net.hold(("peer", p.id))
    t = _cut(net, p)
    assert [f[0] for f in _peer_frames(net, p)][-1:] == [T_MARKER]
    assert p.store.j_depth() == 1
    net.release(("peer", p.id))
    net.advance(20000)
    assert s.node.role.ckpt_t == t and p.store.j_depth() == 0
