# Firmware codec rates under real MicroPython (run by `arcopy perf codec` through
# tests/mpy/runner.mjs; the repository root is on sys.path there). Prints one line: PERF <json>.
import json
import time

from firmware import codec
from firmware import wire
from firmware.deframer import Deframer

HDR = wire.HDR_SIZE
T_BIG = 1 << 40
BLOCK = bytearray(wire.BLOCK_SIZE)
FULL = codec.MAX_BATCH


def clock():
    return time.ticks_us()


def elapsed(t0):
    return time.ticks_diff(time.ticks_us(), t0)


def enc_checkpoint(buf):
    o = codec.pack_checkpoint(buf, HDR, 7, T_BIG)
    return codec.build_frame(buf, wire.T_CHECKPOINT, 0, 1, 2, 0, 3, 0, o - HDR)


def enc_batch(buf, n):
    o = HDR + codec.SZ_BATCH_HEAD
    for i in range(n):
        o = codec.pack_record(buf, o, 1, i, i, BLOCK)
    codec.pack_batch_head(buf, HDR, n, 1, T_BIG)
    return codec.build_frame(buf, wire.T_WRITE_BATCH, 0, 1, 2, 0, 3, 0, o - HDR)


def unpack_batch(mv, off, end):
    # as a secondary takes a WRITE_BATCH in: the head, then record by record
    count, _, _, o, _ = codec.unpack_batch_head(mv, off, end)
    for _ in range(count):
        o = codec.unpack_record(mv, o, end)[4]


def measure(fn, rounds):
    # calls per second; batches of `rounds` until 0.3 s have passed (the clock may be coarse)
    fn()
    done = 0
    t0 = clock()
    while True:
        for _ in range(rounds):
            fn()
        done += rounds
        us = elapsed(t0)
        if us >= 300000:
            return done * 1000000 / us


def main():
    out = []
    buf = bytearray(wire.MAX_FRAME)
    cases = (
        ("checkpoint", lambda: enc_checkpoint(buf), codec.unpack_checkpoint, 500),
        ("write_batch x1", lambda: enc_batch(buf, 1), unpack_batch, 200),
        ("write_batch x%d" % FULL, lambda: enc_batch(buf, FULL), unpack_batch, 50),
    )
    for label, enc, unpack, rounds in cases:
        n = enc()
        frame = bytes(memoryview(buf)[:n])
        d = Deframer()

        def dec():
            d.feed(frame)
            d.next()
            unpack(d.frame, d.poff, d.poff + d.plen)

        out.append([label, n, measure(enc, rounds), measure(dec, rounds)])
    print("PERF " + json.dumps(out))


main()
