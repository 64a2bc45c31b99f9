"""Half-duplex multi-drop site bus (RS-485 style) for the simulator.

- Any attached station may transmit at any time. A transmission occupies the
  medium for ``ceil(len * 10e6 / baud)`` us; a station's own transmissions queue
  behind each other (one UART per board), so a station never collides with itself.
- Every OTHER station that is up receives the bytes (a station does not hear its
  own transmission). Delivery is one ``deliver(bytes)`` call per transmission when
  its last byte has arrived (or, with chunk_max, in chunks as the bytes arrive).
- Two transmissions from different stations that overlap in time collide: in both,
  every byte on the air during the overlap is XORed with a random non-zero value,
  so both frames fail their checks and are lost; each overlapping pair counts as
  one collision. Nobody is told: a MAC must cope by itself.
- Optional line noise (the 'collision' fault class): a bit error rate, and noise
  bursts that garble a few consecutive bytes of a transmission.
- ``set_up(station, False)``: the board died; its bytes not yet on the air are
  dropped and it hears nothing until ``set_up(station, True)``; a station that
  comes up in the middle of a transmission does not receive that transmission.
- ``on_send``: None, or an observer called as ``on_send(station, data)`` on every
  ``send`` before anything else happens (it must not change the bus).
"""
import math

from .link import air_us, bytes_done_by, first_byte_ending_at_or_after, BITS_PER_BYTE

_BITS_US = BITS_PER_BYTE * 1000000

# transmission record fields (a list, mutated in place)
_SID, _START, _END, _BUF, _NSENT, _HIT = range(6)


_NONZERO = bytes([1]) + bytes(range(1, 256))     # translate table: 0 -> 1, others unchanged


def _xor_nonzero(buf, a, b, rng):
    """XOR buf[a:b] with random non-zero bytes (every byte changes)."""
    k = b - a
    mask = rng.randbytes(k).translate(_NONZERO)
    buf[a:b] = (int.from_bytes(buf[a:b], "little") ^ int.from_bytes(mask, "little")).to_bytes(k, "little")


def _mutable(rec):
    """rec's buffer as a bytearray (converted in place the first time)."""
    buf = rec[_BUF]
    if type(buf) is not bytearray:
        buf = rec[_BUF] = bytearray(buf)
    return buf


class _Station:
    __slots__ = ("sid", "deliver", "up", "up_since", "tx_free", "frames_tx", "bytes_tx",
                 "frames_rx", "bytes_rx")

    def __init__(self, sid, deliver):
        self.sid = sid
        self.deliver = deliver
        self.up = True
        self.up_since = -1
        self.tx_free = 0
        self.frames_tx = 0
        self.bytes_tx = 0
        self.frames_rx = 0
        self.bytes_rx = 0


class Bus:
    def __init__(self, sched, baud, rng, ber=0.0, burst_rate=0.0, chunk_max=0, name="bus"):
        if baud <= 0:
            raise ValueError("baud must be positive")
        self.sched = sched
        self.baud = baud
        self.rng = rng
        self.ber = ber
        self.burst_rate = burst_rate
        self.chunk_max = chunk_max
        self.name = name
        self.on_send = None           # observer: on_send(sid, data) on every send()
        self._st = {}                 # sid -> _Station, in attach order
        self._order = []              # stations in attach order (delivery order)
        self._live = []               # transmissions that may still be overlapped
        self._ber_gap = self._draw_gap() if ber > 0 else None
        # counters
        self.frames = 0               # transmissions started
        self.bytes = 0
        self.collisions = 0           # overlapping pairs
        self.frames_collided = 0      # transmissions garbled by a collision
        self.noise_bursts = 0
        self.bits_flipped = 0         # line noise (not counting collision garbage)
        self.air_us = 0               # sum of airtimes
        self.overlap_us = 0           # sum of pairwise overlaps
        self.receptions = 0           # (transmission, receiver) deliveries
        self.bytes_cut = 0            # bytes never sent because their station died

    @property
    def busy_us(self):
        """Time the medium was occupied (exact unless three transmissions overlap at once)."""
        return self.air_us - self.overlap_us

    # -- stations ----------------------------------------------------------------
    def attach(self, sid, deliver):
        if sid in self._st:
            raise ValueError("station %r already attached" % (sid,))
        st = _Station(sid, deliver)
        self._st[sid] = st
        self._order.append(st)
        return st

    def set_deliver(self, sid, deliver):
        self._st[sid].deliver = deliver

    def is_up(self, sid):
        return self._st[sid].up

    def set_up(self, sid, up):
        st = self._st[sid]
        now = self.sched.now
        if up:
            if not st.up:
                st.up = True
                st.up_since = now
            return
        if not st.up:
            return
        st.up = False
        # its transmissions stop at `now`
        for rec in self._live:
            if rec[_SID] != sid or rec[_END] <= now:
                continue
            done = bytes_done_by(now - rec[_START], self.baud) if now > rec[_START] else 0
            if done < rec[_NSENT]:
                self.bytes_cut += rec[_NSENT] - done
                rec[_NSENT] = done
                rec[_END] = rec[_START] + air_us(done, self.baud) if done else rec[_START]
        if st.tx_free > now:
            st.tx_free = now

    def station_stats(self):
        return {sid: {"frames_tx": s.frames_tx, "bytes_tx": s.bytes_tx,
                      "frames_rx": s.frames_rx, "bytes_rx": s.bytes_rx}
                for sid, s in self._st.items()}

    # -- transmitting --------------------------------------------------------------
    def send(self, sid, data):
        """Transmit data from station sid; returns when its last byte leaves."""
        if self.on_send is not None:
            self.on_send(sid, data)
        st = self._st[sid]
        now = self.sched.now
        n = len(data)
        if not st.up:
            self.bytes_cut += n
            return now
        if n == 0:
            return max(now, st.tx_free)
        start = st.tx_free if st.tx_free > now else now
        baud = self.baud
        end = start + (n * _BITS_US + baud - 1) // baud      # air_us(n, baud), inlined
        st.tx_free = end
        st.frames_tx += 1
        st.bytes_tx += n
        self.frames += 1
        self.bytes += n
        self.air_us += end - start
        # the bytes on the air: an immutable bytes object as it is (no copy), else a copy; made
        # a bytearray only when a collision or noise garbles it
        rec = [sid, start, end, data if type(data) is bytes else bytes(data), n, False]
        live = self._live
        if live:
            live = [r for r in live if r[_END] > now]
            for r in live:
                if r[_SID] != sid and r[_START] < end and start < r[_END] and r[_NSENT]:
                    os_ = start if start > r[_START] else r[_START]
                    oe = end if end < r[_END] else r[_END]
                    self._garble(r, os_, oe)
                    self._garble(rec, os_, oe)
                    self.collisions += 1
                    self.overlap_us += oe - os_
                    if not r[_HIT]:
                        r[_HIT] = True
                        self.frames_collided += 1
                    if not rec[_HIT]:
                        rec[_HIT] = True
                        self.frames_collided += 1
        live.append(rec)
        self._live = live
        if self.burst_rate or self._ber_gap is not None:   # (_noise draws nothing otherwise)
            self._noise(_mutable(rec), n)
        if self.chunk_max:
            i = 0
            rng = self.rng
            while i < n:
                j = i + rng.randint(1, self.chunk_max)
                if j > n:
                    j = n
                self.sched.schedule(start + air_us(j, self.baud), self._deliver, rec, i, j)
                i = j
        else:
            self.sched.schedule(end, self._deliver, rec, 0, n)
        return end

    def _garble(self, rec, os_, oe):
        """XOR every byte of rec on the air during [os_, oe) with a non-zero value."""
        s = rec[_START]
        baud = self.baud
        a = first_byte_ending_at_or_after(os_ - s + 1, baud)
        b = first_byte_ending_at_or_after(oe - s, baud) + 1 if oe > s else 0
        n = len(rec[_BUF])
        if b > n:
            b = n
        if b > a:
            _xor_nonzero(_mutable(rec), a, b, self.rng)

    def _noise(self, buf, n):
        rng = self.rng
        if self.burst_rate and rng.random() < self.burst_rate:
            a = rng.randrange(n)
            b = min(n, a + rng.randint(1, 8))
            _xor_nonzero(buf, a, b, rng)
            self.noise_bursts += 1
        if self._ber_gap is not None:
            nbits = n * 8
            pos = self._ber_gap
            while pos < nbits:
                buf[pos >> 3] ^= 1 << (pos & 7)
                self.bits_flipped += 1
                pos += 1 + self._draw_gap()
            self._ber_gap = pos - nbits

    def _draw_gap(self):
        return int(math.log(1.0 - self.rng.random()) / math.log(1.0 - self.ber))

    # -- receiving -------------------------------------------------------------------
    def _deliver(self, rec, i, j):
        nsent = rec[_NSENT]
        if j > nsent:
            j = nsent
        if j <= i:
            return
        buf = rec[_BUF]
        data = bytes(buf) if i == 0 and j == len(buf) else bytes(buf[i:j])
        sid = rec[_SID]
        start = rec[_START]
        first = 1 if i == 0 else 0
        self.receptions += first
        n = j - i
        for st in self._order:
            if st.sid == sid or not st.up or st.up_since > start or st.deliver is None:
                continue
            st.frames_rx += first
            st.bytes_rx += n
            st.deliver(data)

    def stats(self):
        return {
            "frames": self.frames, "bytes": self.bytes, "collisions": self.collisions,
            "frames_collided": self.frames_collided, "noise_bursts": self.noise_bursts,
            "bits_flipped": self.bits_flipped, "air_us": self.air_us, "busy_us": self.busy_us,
            "receptions": self.receptions, "bytes_cut": self.bytes_cut,
        }
