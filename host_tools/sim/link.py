"""Full-duplex point-to-point serial link (the peer link) for the simulator.

Each direction is a ``Channel``:

- Pacing: 10 bits per byte (8N1). A transmission starts when the sender's UART is
  free (``max(now, end of its previous transmission)``) and byte i (0-based) has
  fully left the sender at ``start + ceil((i+1) * 10e6 / baud)`` us. A sender can
  never exceed the line rate; ``send`` returns the instant its last byte leaves.
- Delivery: bytes arrive in chunks of random size (1..chunk_max, as a UART driver
  hands over whatever its buffer holds), each when its last byte has arrived:
  leave time + latency + a jitter drawn in [0, jitter_us], clamped so that a
  chunk never arrives before the one ahead of it: a serial line never reorders.
- Faults, all drawn from the channel's own ``random.Random``:
  ``frame_loss``: a whole transmission is lost (it still occupies the line);
  ``range_loss``: a transmission loses one contiguous byte range;
  ``ber``: bit error rate; errors are placed by geometric gaps over the bit
  stream, so a clean frame costs O(1);
  ``outages``: [(start, end)] windows of virtual time; bytes that finish leaving
  inside a window are lost.
- ``tx_cut(now)``: the sender died; its bytes not yet on the wire are dropped.
  ``rx_up``: False while the receiving board is down (arriving bytes are lost).

Transmissions are delivered through ``deliver(bytes)``, set by the receiver.
``SerialLink.on_send``: None, or an observer called as ``on_send(side, data)`` on every
``send`` before anything else happens (it must not change the link).
"""
from collections import deque
import math
import random

BITS_PER_BYTE = 10
_US = 1000000


_BITS_US = BITS_PER_BYTE * _US


def _below(rng):
    """f(n) -> the draw rng.randint(a, a + n - 1) - a would make, with the same state change.
    random.Random.randint(a, b) is a + _randbelow(b - a + 1) (tests/test_sim_engine.py checks);
    calling that directly saves two Python calls per draw. Other generators: through randint."""
    f = getattr(rng, "_randbelow", None)
    if f is None or type(rng) is not random.Random:
        return lambda n: rng.randint(0, n - 1)
    return f


def air_us(nbytes, baud):
    """Time (us, rounded up) for nbytes to cross a line at baud (10 bits/byte)."""
    return (nbytes * BITS_PER_BYTE * _US + baud - 1) // baud


def bytes_done_by(dt_us, baud):
    """How many bytes of a transmission have fully left dt_us after its start
    (the largest k with air_us(k) <= dt_us)."""
    if dt_us <= 0:
        return 0
    return (dt_us * baud) // (BITS_PER_BYTE * _US)


def first_byte_ending_at_or_after(dt_us, baud):
    """Index of the first byte whose end (air_us(i+1)) is >= dt_us."""
    # air_us(k) >= x  <=>  k > (x-1)*baud/1e7  <=>  k >= floor((x-1)*baud/1e7) + 1
    if dt_us <= 1:
        return 0
    return ((dt_us - 1) * baud) // (BITS_PER_BYTE * _US)


class Channel:
    """One direction of a serial line."""

    def __init__(self, sched, baud, rng, latency_us=0, jitter_us=0, frame_loss=0.0,
                 range_loss=0.0, ber=0.0, outages=(), chunk_max=256, name=""):
        if baud <= 0:
            raise ValueError("baud must be positive")
        self.sched = sched
        self.baud = baud
        self.rng = rng
        self.latency_us = latency_us
        self.jitter_us = jitter_us
        self.frame_loss = frame_loss
        self.range_loss = range_loss
        self.ber = ber
        self.outages = sorted(outages)
        self.chunk_max = chunk_max
        self.name = name
        self.deliver = None
        self.rx_up = True
        self._tx_free = 0            # virtual time the sender's UART is free again
        self._last_at = 0            # delivery time of the last chunk queued
        self._q = deque()            # [deliver_at, data, tx_start, first_index]
        self._ev = None              # handle of the scheduled delivery event
        self._ber_gap = self._draw_gap() if ber > 0 else None
        # counters
        self.frames_sent = 0         # send() calls with at least one byte
        self.bytes_sent = 0          # bytes offered to the line
        self.bytes_delivered = 0
        self.chunks_delivered = 0
        self.frames_dropped = 0      # whole transmissions lost (frame_loss)
        self.ranges_dropped = 0
        self.outage_bytes = 0        # bytes lost to outages
        self.bytes_lost = 0          # every lost byte (loss, outage, cut, receiver down)
        self.bits_flipped = 0
        self.busy_us = 0             # line time taken by send() so far (it may extend past
                                     # now while the UART queue drains)

    # -- sending ---------------------------------------------------------------
    def send(self, data):
        """Queue data on the line; returns the virtual time its last byte leaves."""
        n = len(data)
        now = self.sched.now
        if n == 0:
            return max(now, self._tx_free)
        baud = self.baud
        start = self._tx_free if self._tx_free > now else now
        end = start + air_us(n, baud)
        self._tx_free = end
        self.busy_us += end - start
        self.frames_sent += 1
        self.bytes_sent += n
        rng = self.rng
        if self.frame_loss and rng.random() < self.frame_loss:
            self.frames_dropped += 1
            self.bytes_lost += n
            return end
        keep = [(0, n)]
        if self.range_loss and rng.random() < self.range_loss:
            a = rng.randrange(n)
            b = a + rng.randint(1, max(1, min(n - a, 1 + n // 4)))
            self.ranges_dropped += 1
            self.bytes_lost += b - a
            keep = _cut_out(keep, a, b)
        if self.outages:
            keep = self._apply_outages(keep, start, end, n)
            if not keep:
                return end
        buf = data
        if self._ber_gap is not None:
            nbits = n * 8
            pos = self._ber_gap
            if pos < nbits:
                buf = bytearray(data)
                while pos < nbits:
                    buf[pos >> 3] ^= 1 << (pos & 7)
                    self.bits_flipped += 1
                    pos += 1 + self._draw_gap()
            self._ber_gap = pos - nbits
        self._enqueue(buf, start, keep)
        return end

    def _draw_gap(self):
        # bits before the next error: geometric with parameter ber
        u = self.rng.random()
        return int(math.log(1.0 - u) / math.log(1.0 - self.ber))

    def _apply_outages(self, keep, start, end, n):
        baud = self.baud
        for ws, we in self.outages:
            if we <= start:
                continue
            if ws > end:
                break
            a = first_byte_ending_at_or_after(ws - start, baud)
            b = first_byte_ending_at_or_after(we - start, baud)
            if a >= n or b <= a:
                continue
            if b > n:
                b = n
            before = sum(y - x for x, y in keep)
            keep = _cut_out(keep, a, b)
            lost = before - sum(y - x for x, y in keep)
            self.outage_bytes += lost
            self.bytes_lost += lost
        return keep

    def _enqueue(self, buf, start, keep):
        rng = self.rng
        below = _below(rng)
        baud = self.baud
        lat = self.latency_us
        jit = self.jitter_us
        cmax = self.chunk_max
        q = self._q
        was_empty = not q
        last = self._last_at
        for a, b in keep:
            i = a
            while i < b:
                if cmax:
                    j = i + 1 + below(cmax)           # = rng.randint(1, cmax)
                    if j > b:
                        j = b
                else:
                    j = b
                at = start + (j * _BITS_US + baud - 1) // baud + lat    # + air_us(j, baud)
                if jit:
                    at += below(jit + 1)              # = rng.randint(0, jit)
                if at < last:
                    at = last
                last = at
                q.append([at, bytes(buf[i:j]), start, i])
                i = j
        self._last_at = last
        if was_empty and q:
            self._ev = self.sched.schedule(q[0][0], self._deliver_due)

    # -- delivery ----------------------------------------------------------------
    def _deliver_due(self):
        self._ev = None
        q = self._q
        now = self.sched.now
        while q and q[0][0] <= now:
            data = q.popleft()[1]
            if not self.rx_up or self.deliver is None:
                self.bytes_lost += len(data)
                continue
            self.bytes_delivered += len(data)
            self.chunks_delivered += 1
            self.deliver(data)          # may cut this channel (the receiver crashed)
        if q and self._ev is None:
            self._ev = self.sched.schedule(q[0][0], self._deliver_due)

    # -- board failure -----------------------------------------------------------
    def tx_cut(self, now=None):
        """The sending board died at now: bytes that had not left its UART are lost."""
        if now is None:
            now = self.sched.now
        baud = self.baud
        q = self._q
        kept = deque()
        for item in q:
            at, data, start, i0 = item
            done = bytes_done_by(now - start, baud)      # bytes of that transmission gone out
            k = done - i0
            if k >= len(data):
                kept.append(item)
            else:
                if k > 0:
                    item[1] = data[:k]
                    kept.append(item)
                self.bytes_lost += len(data) - max(k, 0)
        q.clear()
        q.extend(kept)          # in place: a delivery loop may be holding q
        self._last_at = kept[-1][0] if kept else now
        if self._tx_free > now:
            self._tx_free = now
        if not kept and self._ev is not None:
            self.sched.cancel(self._ev)
            self._ev = None

    def drop_in_flight(self):
        """Lose everything queued for delivery (the receiver died, or the line was cut)."""
        for item in self._q:
            self.bytes_lost += len(item[1])
        self._q.clear()
        self._last_at = self.sched.now
        if self._ev is not None:
            self.sched.cancel(self._ev)
            self._ev = None

    def in_flight(self):
        """Bytes queued for delivery."""
        return sum(len(x[1]) for x in self._q)

    def stats(self):
        return {
            "frames_sent": self.frames_sent, "bytes_sent": self.bytes_sent,
            "bytes_delivered": self.bytes_delivered, "chunks_delivered": self.chunks_delivered,
            "frames_dropped": self.frames_dropped, "ranges_dropped": self.ranges_dropped,
            "outage_bytes": self.outage_bytes, "bytes_lost": self.bytes_lost,
            "bits_flipped": self.bits_flipped, "busy_us": self.busy_us,
        }


def _cut_out(keep, a, b):
    """Remove [a, b) from a sorted list of disjoint [x, y) ranges."""
    out = []
    for x, y in keep:
        if y <= a or x >= b:
            out.append((x, y))
            continue
        if x < a:
            out.append((x, a))
        if y > b:
            out.append((b, y))
    return out


class SerialLink:
    """Two Channels: side 0 -> side 1 (``ab``) and side 1 -> side 0 (``ba``).

    attach(side, deliver): bytes arriving at `side` go to deliver(bytes).
    send(side, data): transmit from `side`; returns when the last byte leaves.
    on_send: None, or an observer called as on_send(side, data) on every send.
    cut(side=None): the board at `side` died (None: both ends / the line is cut).
    restore(side=None): the board at `side` is back (or the line is repaired).
    """

    def __init__(self, sched, baud, rng, latency_us=0, jitter_us=0, frame_loss=0.0,
                 range_loss=0.0, ber=0.0, outages=(), chunk_max=256, name="link"):
        r_ab = random.Random(rng.getrandbits(64))
        r_ba = random.Random(rng.getrandbits(64))
        kw = dict(latency_us=latency_us, jitter_us=jitter_us, frame_loss=frame_loss,
                  range_loss=range_loss, ber=ber, outages=outages, chunk_max=chunk_max)
        self.name = name
        self.baud = baud
        self.on_send = None          # observer: on_send(side, data) on every send()
        self.ab = Channel(sched, baud, r_ab, name=name + ":a>b", **kw)
        self.ba = Channel(sched, baud, r_ba, name=name + ":b>a", **kw)

    def _tx(self, side):
        return self.ab if side == 0 else self.ba

    def _rx(self, side):
        return self.ba if side == 0 else self.ab

    def attach(self, side, deliver):
        self._rx(side).deliver = deliver

    def send(self, side, data):
        if self.on_send is not None:
            self.on_send(side, data)
        return self._tx(side).send(data)

    def cut(self, side=None):
        now = self.ab.sched.now
        for s in ((0, 1) if side is None else (side,)):
            self._tx(s).tx_cut(now)
            rx = self._rx(s)
            rx.rx_up = False
            rx.drop_in_flight()

    def restore(self, side=None):
        for s in ((0, 1) if side is None else (side,)):
            self._rx(s).rx_up = True

    def stats(self):
        return {"a>b": self.ab.stats(), "b>a": self.ba.stats()}
