# The firmware hot paths allocate nothing: under micropython.heap_lock() any allocation raises
# MemoryError. Checked here:
#   - encode: pack a WRITE_BATCH (head, record, trailing marker; or a checkpoint / ack) and build_frame() into a
#     preallocated buffer, then feed that frame to a Deframer and take it out with next();
#   - decode: a pre-encoded stream of frames mixed with garbage and damaged frames, fed in uneven
#     chunks, every frame taken out with next() and its payload read through frame/poff/plen.
# Results are written into preallocated lists while the heap is locked (raising there would itself
# allocate) and checked after unlocking. Under CPython (no heap lock) the same code runs as a plain
# functional test. Prints gc.mem_alloc() figures where available.
import gc

from firmware import codec
from firmware import wire
from firmware.deframer import Deframer
from protocol import hostcodec      # test input only (encode); not part of a board

try:
    import micropython
except ImportError:
    micropython = None


def lock():
    if micropython:
        micropython.heap_lock()


def unlock():
    if micropython:
        micropython.heap_unlock()


def mem():
    gc.collect()
    return gc.mem_alloc() if hasattr(gc, "mem_alloc") else -1


def fmt(n):
    return "n/a" if n < 0 else str(n)


HDR = wire.HDR_SIZE
T_BIG = 0x123456789ABC          # a sequence time beyond 2**30: a long int that already exists
ROUNDS = 200

block = bytearray(wire.BLOCK_SIZE)
for i in range(len(block)):
    block[i] = (i * 13 + 5) & 0xFF
block_sum = sum(block) & 0xFFFF


def make_stream():
    # frames of several kinds, damaged frames and garbage; -> (stream, expected types, expected seqs)
    frames = []
    for k in range(24):
        if k % 4 == 0:
            p = bytearray(codec.SZ_BATCH_HEAD + 7 * wire.RECORD_SIZE)
            o = codec.pack_batch_head(p, 0, 7, k * 7, T_BIG)
            for r in range(7):
                o = codec.pack_record(p, o, 1, k * 7 + r, r, block)
            frames.append((wire.T_WRITE_BATCH, hostcodec.encode(wire.T_WRITE_BATCH, 1, 2, p, seq=k)))
        elif k % 4 == 1:
            p = bytearray(codec.SZ_CHECKPOINT)
            codec.pack_checkpoint(p, 0, k, T_BIG + k)
            frames.append((wire.T_CHECKPOINT, hostcodec.encode(wire.T_CHECKPOINT, 1, wire.BROADCAST, p, seq=k)))
        elif k % 4 == 2:
            p = bytearray(codec.SZ_ACK)
            codec.pack_ack(p, 0, k)
            frames.append((wire.T_ACK, hostcodec.encode(wire.T_ACK, 2, 1, p, seq=k, ack=k)))
        else:
            p = bytearray(codec.SZ_BATCH_HEAD + wire.RECORD_SIZE + codec.SZ_MARKER)
            o = codec.pack_batch_head(p, 0, 1, k, T_BIG)
            o = codec.pack_record(p, o, 0, k, 0, block)
            codec.pack_marker(p, o, k, T_BIG)        # a batch that ends with a checkpoint marker
            frames.append((wire.T_WRITE_BATCH, hostcodec.encode(wire.T_WRITE_BATCH, 1, 2, p, seq=k)))
    parts = []
    types = bytearray()
    seqs = []
    for i, (t, f) in enumerate(frames):
        if i % 3 == 1:
            parts.append(b"\x00\xA5\x17garbage\xA5")         # noise with stray magic bytes
        if i % 5 == 2:
            bad = bytearray(f)
            bad[len(bad) // 2] ^= 0x40                        # damaged copy: must be rejected
            parts.append(bytes(bad))
        parts.append(f)
        types.append(t)
        seqs.append(i)
    return b"".join(parts), types, seqs


def chunk_views(stream):
    mv = memoryview(stream)
    sizes = (1, 7, 64, 300, 512, 5, 129)
    views = []
    pos = 0
    i = 0
    while pos < len(stream):
        views.append(mv[pos:pos + sizes[i % len(sizes)]])
        pos += sizes[i % len(sizes)]
        i += 1
    return views


def decode_all(d, views, types, seqs, res):
    # res: [frames, type or seq mismatches, payload byte sum]
    got = 0
    bad = 0
    acc = 0
    for v in views:
        d.feed(v)
        while d.next():
            if got >= len(types) or d.mtype != types[got] or d.seq != seqs[got]:
                bad += 1
            s = d.frame
            i = d.poff
            end = i + d.plen
            while i < end:
                acc += s[i]
                i += 1
            acc &= 0xFFFF
            got += 1
    res[0] = got
    res[1] = bad
    res[2] = acc


def _take(d, types, seqs, r):
    while d.next():
        if r[0] >= len(types) or d.mtype != types[r[0]] or d.seq != seqs[r[0]]:
            r[1] += 1
        s = d.frame
        i = d.poff
        end = i + d.plen
        acc = r[2]
        while i < end:
            acc += s[i]
            i += 1
        r[2] = acc & 0xFFFF
        r[0] += 1


def decode_pair(da, db, views, types, seqs, ra, rb):
    # the same stream on two ports, B one chunk behind A and fed in the other order
    n = len(views)
    for i in range(n + 1):
        if i < n:
            da.feed(views[i])
            _take(da, types, seqs, ra)
        if i > 0:
            db.feed(views[i - 1])
            _take(db, types, seqs, rb)


def encode_loop(buf, d, view566, view36, view24, res):
    # res: [frames built and recovered, mismatches]
    ok = 0
    bad = 0
    for k in range(ROUNDS):
        o = codec.pack_record(buf, HDR + codec.SZ_BATCH_HEAD, 1, k, k, block)
        o = codec.pack_marker(buf, o, k, T_BIG)
        codec.pack_batch_head(buf, HDR, 1, k, T_BIG)
        n = codec.build_frame(buf, wire.T_WRITE_BATCH, 0, 1, 2, 0, k, 0, o - HDR)
        d.feed(view566)
        if n == 566 and d.next() and d.mtype == wire.T_WRITE_BATCH and d.seq == k and d.plen == o - HDR:
            ok += 1
        else:
            bad += 1
        o = codec.pack_checkpoint(buf, HDR, k, T_BIG)
        codec.build_frame(buf, wire.T_CHECKPOINT, 0, 1, wire.BROADCAST, 0, k, 0, o - HDR)
        d.feed(view36)
        if d.next() and d.mtype == wire.T_CHECKPOINT and d.seq == k:
            ok += 1
        else:
            bad += 1
        o = codec.pack_ack(buf, HDR, k)
        codec.build_frame(buf, wire.T_ACK, 0, 2, 1, 0, k, k, o - HDR)
        d.feed(view24)
        if d.next() and d.mtype == wire.T_ACK and d.ack == k:
            ok += 1
        else:
            bad += 1
    res[0] = ok
    res[1] = bad


def main():
    base = mem()
    d = Deframer()
    footprint = mem() - base
    stream, types, seqs = make_stream()
    views = chunk_views(stream)
    # expected payload byte sum, computed the allocating way
    expected_sum = 0
    ref = Deframer()
    exp_frames = 0
    mv = memoryview(stream)
    pos = 0
    while pos < len(stream):
        ref.feed(mv[pos:pos + 256])
        pos += 256
        while ref.next():
            expected_sum = (expected_sum + sum(bytes(ref.payload))) & 0xFFFF
            exp_frames += 1

    res = [0, 0, 0]
    decode_all(d, views[:3], types, seqs, [0, 0, 0])   # warm up the code paths, then start over
    d = Deframer()
    before = mem()
    lock()
    try:
        decode_all(d, views, types, seqs, res)
    finally:
        unlock()
    after = mem()
    assert res[0] == len(types) == exp_frames, "decode: %d frames, expected %d" % (res[0], len(types))
    assert res[1] == 0, "decode: %d frames out of order" % res[1]
    assert res[2] == expected_sum, "decode: payload sum %d, expected %d" % (res[2], expected_sum)
    assert d.rejected == 5, "decode: %d frames rejected, expected the 5 damaged ones" % d.rejected
    print("decode under heap lock: %d frames from %d chunks (%d bytes), %d rejected, %d bytes skipped; "
          "mem_alloc %s -> %s" % (res[0], len(views), len(stream), d.rejected, d.bad_magic, fmt(before), fmt(after)))

    # the board's ports: one scratch shared by deframers of different sizes, their chunks
    # interleaved, so partial frames wait on one port while frames complete on the other
    scratch = Deframer.scratch_for((wire.MAX_BUS_PAYLOAD, wire.MAX_PAYLOAD))
    da = Deframer(wire.MAX_PAYLOAD, scratch=scratch)
    db = Deframer(wire.MAX_PAYLOAD, scratch=scratch)
    small = Deframer(wire.MAX_BUS_PAYLOAD, scratch=scratch)
    ra = [0, 0, 0]
    rb = [0, 0, 0]
    decode_all(small, views[:2], types, seqs, [0, 0, 0])   # warm up
    before = mem()
    lock()
    try:
        decode_pair(da, db, views, types, seqs, ra, rb)
    finally:
        unlock()
    after = mem()
    for name, r in (("A", ra), ("B", rb)):
        assert r[0] == len(types) and r[1] == 0 and r[2] == expected_sum, \
            "shared scratch, port %s: %r (want %d frames, sum %d)" % (name, r, len(types), expected_sum)
    print("two ports sharing one scratch under heap lock: %d + %d frames; mem_alloc %s -> %s"
          % (ra[0], rb[0], fmt(before), fmt(after)))

    buf = bytearray(wire.MAX_FRAME)
    bv = memoryview(buf)
    view566 = bv[:wire.OVERHEAD + codec.SZ_BATCH_HEAD + wire.RECORD_SIZE + codec.SZ_MARKER]
    view36 = bv[:wire.OVERHEAD + codec.SZ_CHECKPOINT]
    view24 = bv[:wire.OVERHEAD + codec.SZ_ACK]
    d2 = Deframer()
    res = [0, 0]
    before = mem()
    lock()
    try:
        encode_loop(buf, d2, view566, view36, view24, res)
    finally:
        unlock()
    after = mem()
    assert res == [3 * ROUNDS, 0], "encode: %r" % (res,)
    assert d2.rejected == 0 and d2.bad_magic == 0, "encode: frames rejected"
    print("encode+decode under heap lock: %d frames; mem_alloc %s -> %s" % (res[0], fmt(before), fmt(after)))
    print("Deframer() footprint: %s bytes (capacity %d); heap in use: %s bytes"
          % (fmt(footprint) if base >= 0 else "n/a", d.capacity, fmt(mem())))
    print("runtime: %s" % ("MicroPython heap locked" if micropython else "CPython (no heap lock)"))
    print("ALL OK")


main()
