# Reliable, ordered, windowed peer link (sans-I/O): go-back-N.
#
# The sender keeps up to `window` encoded frames in preallocated slots. Each data
# frame carries a 16-bit sequence number; the receiver answers with ACK whose
# header `ack` field is the next sequence it expects (cumulative). A NAK (same
# meaning of `ack`) or a retransmit timeout sends every unacknowledged frame
# again, oldest first. Correctness of the stream does not rest on these numbers
# alone: every record also carries its link sequence (lseq), and the receiver
# drops records it already holds, so a stale frame from an earlier session is
# harmless.
from firmware.wire import MAX_FRAME, F_RETX
from firmware import codec

_SEQ_MASK = 0xFFFF


def seq_diff(a, b):
    """a - b in 16-bit sequence space, as a signed number."""
    d = (a - b) & _SEQ_MASK
    return d - 0x10000 if d >= 0x8000 else d


class Sender:
    def __init__(self, window, rto_us):
        self.window = window
        self.rto_us = rto_us
        self.slots = [bytearray(MAX_FRAME) for _ in range(window)]
        self.views = [memoryview(s) for s in self.slots]
        self.lens = [0] * window
        self.hdr = [None] * window        # (mtype, src, dst, group, plen, flags) to rebuild with F_RETX
        self.tags = [0] * window          # upper layer's tag (e.g. last journal entry in the frame)
        self.reset()
        self.retransmits = 0
        self.frames_sent = 0

    def reset(self):
        self.base = 0            # oldest unacknowledged seq
        self.next = 0            # next seq to assign
        self.unsent = 0          # next seq never transmitted
        self.resend = -1         # go-back-N pointer (-1: none)
        self.sent_at = 0         # when the base frame was (re)sent
        self.back = -1           # where the last go-back started (-1: none since the reset)

    def in_flight(self):
        return (self.next - self.base) & _SEQ_MASK

    def can_queue(self):
        return self.in_flight() < self.window

    def slot(self):
        """Buffer in which to build the next frame's payload (at HDR_SIZE)."""
        return self.slots[self.next % self.window]

    def commit(self, mtype, src, dst, group, plen, tag, flags=0):
        """Seal the frame built in slot(); returns its sequence number."""
        seq = self.next
        i = seq % self.window
        self.lens[i] = codec.build_frame(self.slots[i], mtype, flags, src, dst, group, seq, 0, plen)
        self.hdr[i] = (mtype, src, dst, group, plen, flags)
        self.tags[i] = tag
        self.next = (seq + 1) & _SEQ_MASK
        return seq

    def on_ack(self, ack, now):
        """Cumulative ack: returns the tags of newly acknowledged frames, oldest first."""
        n = seq_diff(ack, self.base)
        if n <= 0 or n > self.in_flight():
            return ()
        tags = []
        for _ in range(n):
            tags.append(self.tags[self.base % self.window])
            self.base = (self.base + 1) & _SEQ_MASK
        if seq_diff(self.unsent, self.base) < 0:
            self.unsent = self.base
        if self.resend >= 0 and seq_diff(self.resend, self.base) < 0:
            self.resend = self.base
        self.sent_at = now
        return tags

    def rewind(self, now):
        """Go back by dropping every unacknowledged frame: the next frame built gets the
        base's sequence number again (the upper layer rebuilds them, e.g. smaller; its
        receiver must take content it already holds idempotently)."""
        self.next = self.base
        self.unsent = self.base
        self.resend = -1
        self.back = self.base
        self.sent_at = now

    def timed_out(self, now):
        """Frames are in flight and the base has waited a whole retransmit timeout."""
        return self.in_flight() != 0 and now - self.sent_at >= self.rto_us

    def on_nak(self, want, now):
        if 0 <= seq_diff(want, self.base) < self.in_flight() or want == self.base:
            if self.in_flight():
                self.resend = want
                self.sent_at = now

    def due(self, now):
        """Frames to put on the wire now: list of bytes objects (copies)."""
        out = []
        if self.in_flight() and now - self.sent_at >= self.rto_us:
            self.resend = self.base
        if self.resend >= 0:
            s = self.resend
            self.back = s
            while seq_diff(s, self.unsent) < 0:
                i = s % self.window
                mtype, src, dst, group, plen, flags = self.hdr[i]
                codec.build_frame(self.slots[i], mtype, flags | F_RETX, src, dst, group, s, 0, plen)
                out.append(bytes(self.views[i][:self.lens[i]]))
                self.retransmits += 1
                s = (s + 1) & _SEQ_MASK
            self.resend = -1
            self.sent_at = now
        while seq_diff(self.unsent, self.next) < 0:
            i = self.unsent % self.window
            if self.unsent == self.base:
                self.sent_at = now
            out.append(bytes(self.views[i][:self.lens[i]]))
            self.frames_sent += 1
            self.unsent = (self.unsent + 1) & _SEQ_MASK
        return out

    def deadline(self):
        if self.in_flight():
            return self.sent_at + self.rto_us
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
        if self.last_nak is None or now - self.last_nak >= min_gap_us:
            self.last_nak = now
            return True
        return False
