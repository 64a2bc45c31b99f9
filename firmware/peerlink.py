# Reliable, ordered, windowed peer link (sans-I/O): go-back-N by rebuilding.
#
# The sender numbers data frames with a 16-bit sequence and keeps, per frame in
# flight, only the upper layer's tag (the last journal entry in the frame): no copy of
# a frame is kept, because a go-back drops every unacknowledged frame and the upper
# layer frames its journal again from the oldest unacknowledged entry (`rewind`). One
# preallocated buffer (`buf`, may be shared) holds the frame being built; `commit` seals
# it and hands out the bytes to queue. The receiver answers with ACK whose header `ack` field is
# the next sequence it expects (cumulative); a NAK (same meaning) or a retransmit
# timeout makes the upper layer go back. Correctness of the stream does not rest on
# these numbers alone: every record also carries its link sequence (lseq), and the
# receiver drops records it already holds, so a stale frame from an earlier session
# is harmless.
from firmware.wire import const, MAX_FRAME
from firmware import codec
from firmware.ticks import TICKS_MASK, ticks_diff

_SEQ_MASK = 0xFFFF
# Times are kept as 30-bit ticks (firmware/ticks.py: now & TICKS_MASK) and compared with
# ticks_diff, so the arithmetic stays in small ints (31-bit on the RP2040).
_TICKS_HALF = const(0x20000000)


def seq_diff(a, b):
    """a - b in 16-bit sequence space, as a signed number."""
    d = (a - b) & _SEQ_MASK
    return d - 0x10000 if d >= 0x8000 else d


class Sender:
    def __init__(self, window, rto_us, buf=None):
        """buf: a MAX_FRAME bytearray to build frames in (e.g. shared with other output
        that is copied out as soon as it is built); None: a new one."""
        self.window = window
        # (ticks_diff resolves less than 2**29 us: a longer timeout is cut to that, 9 min)
        self.rto_us = rto_us if rto_us < _TICKS_HALF else _TICKS_HALF - 1
        self.buf = buf if buf is not None else bytearray(MAX_FRAME)
        self.view = memoryview(self.buf)
        self.tags = [0] * window          # upper layer's tag per frame in flight (by seq % window)
        self.acked_tag = 0                # tag of the newest frame the last on_ack acknowledged
        self.reset()
        self.retransmits = 0
        self.frames_sent = 0

    def reset(self):
        self.base = 0            # oldest unacknowledged seq
        self.next = 0            # next seq to assign
        self.sent_at = 0         # when the base frame was sent (or the last ack came): ticks
        self.back = -1           # where the last go-back started (-1: none since the reset)

    def in_flight(self):
        return (self.next - self.base) & _SEQ_MASK

    def can_queue(self):
        return (self.next - self.base) & _SEQ_MASK < self.window      # in_flight(), inlined

    def slot(self):
        """Buffer in which to build the next frame's payload (at HDR_SIZE)."""
        return self.buf

    def commit(self, mtype, src, dst, group, plen, tag, now, flags=0):
        """Seal the frame built in slot(); returns the frame (bytes, to queue on the wire)."""
        seq = self.next
        n = codec.build_frame(self.buf, mtype, flags, src, dst, group, seq, 0, plen, self.view)
        self.tags[seq % self.window] = tag
        if seq == self.base:
            self.sent_at = now & TICKS_MASK
        self.next = (seq + 1) & _SEQ_MASK
        self.frames_sent += 1
        return bytes(self.view[:n])

    def on_ack(self, ack, now):
        """Cumulative ack: -> how many frames it newly acknowledges (0: none); the newest
        one's tag is then acked_tag."""
        n = seq_diff(ack, self.base)
        if n <= 0 or n > (self.next - self.base) & _SEQ_MASK:
            return 0
        self.base = (self.base + n) & _SEQ_MASK
        self.acked_tag = self.tags[(self.base - 1) % self.window]
        self.sent_at = now & TICKS_MASK
        return n

    def rewind(self, now):
        """Go back by dropping every unacknowledged frame: the next frame built gets the
        base's sequence number again (the upper layer rebuilds them, e.g. smaller; its
        receiver must take content it already holds idempotently)."""
        self.next = self.base
        self.back = self.base
        self.sent_at = now & TICKS_MASK

    def timed_out(self, now):
        """Frames are in flight and the base has waited a whole retransmit timeout."""
        return (self.next - self.base) & _SEQ_MASK != 0 and \
            ticks_diff(now & TICKS_MASK, self.sent_at) >= self.rto_us

    def timeout_in(self, now):
        """Microseconds from now until the retransmit timeout expires (<= 0: due; None:
        nothing in flight). Relative, so that it holds on any caller's clock."""
        if (self.next - self.base) & _SEQ_MASK:          # in_flight(), inlined
            d = (now - self.sent_at) & TICKS_MASK       # ticks_diff(now & TICKS_MASK, sent_at)
            if d >= _TICKS_HALF:
                d = d - TICKS_MASK - 1
            return self.rto_us - d
        return None


class Receiver:
    ACCEPT = 0
    DUPLICATE = 1
    GAP = 2

    def __init__(self):
        self.expected = 0
        self.last_nak = None

    def reset(self):
        self.expected = 0
        self.last_nak = None

    def classify(self, seq):
        d = seq_diff(seq, self.expected)
        if d == 0:
            return Receiver.ACCEPT
        if d < 0:
            return Receiver.DUPLICATE
        return Receiver.GAP

    def advance(self):
        self.expected = (self.expected + 1) & _SEQ_MASK
        self.last_nak = None

    def should_nak(self, now, min_gap_us):
        if self.last_nak is None or ticks_diff(now & TICKS_MASK, self.last_nak) >= min_gap_us:
            self.last_nak = now & TICKS_MASK
            return True
        return False
