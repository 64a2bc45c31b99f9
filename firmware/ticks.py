# Board time: 30-bit wrapping microsecond ticks, their arithmetic in small ints, the HALs' clock.
#
# `now` in the firmware is a tick count: microseconds modulo 2**30, what the rp2 port's
# time.ticks_us() gives. It stays a small int (31-bit on the RP2040) for ever, where a
# monotonic count passes 2**30 after ~18 minutes and every sum or difference of it is
# then a heap object. Local times are compared only through ticks_diff (a - b, valid
# while they are less than 2**29 us apart, ~9 min) and moved with ticks_add; a time
# kept for long ("last heard", "last sent") is aged with ticks_age, at least every
# AGE / 2 us, so it never gets 2**29 us old (its comparisons with timeouts far below AGE
# are unchanged). Absolute sequence times (stamps, cuts, clock sync) are no ticks: see
# Primary.local() and docs/ARCHITECTURE.md, "Clock arithmetic".
from firmware.wire import const

TICKS_MASK = const(0x3FFFFFFF)
_HALF = const(0x20000000)
AGE = const(0x10000000)            # ~268 s: the oldest a kept local time gets


def ticks_diff(a, b):
    """a - b for two ticks, in -2**29 .. 2**29 - 1 (small ints only)."""
    d = (a - b) & TICKS_MASK
    return d - TICKS_MASK - 1 if d >= _HALF else d


def ticks_add(a, d):
    """The tick d us after a (d in -2**29 .. 2**29, a longer d is cut to that; no
    intermediate reaches 2**30)."""
    if d >= 0:
        if d >= _HALF:
            d = _HALF - 1
        r = a - TICKS_MASK - 1 + d
        return r + TICKS_MASK + 1 if r < 0 else r
    r = a + d
    return r + TICKS_MASK + 1 if r < 0 else r


def ticks_age(now, t):
    """t, or now - AGE if t is older than that (an old "last seen" stays old)."""
    if ticks_diff(now, t) < AGE:
        return t
    return ticks_add(now, -AGE)


def ticks_past(now, t):
    """t if it is not ahead of now, else now - AGE: an initial 0 meaning "never" reads as
    up to 2**29 us ahead once the clock is past 2**29; this makes it long past."""
    if ticks_diff(t, now) <= 0:
        return t
    return ticks_add(now, -AGE)


class Clock:
    """The board clock a HAL hands main.py (its ticks_us()): `tm.ticks_us()` (the time
    module, or a virtual clock in tests; wrapping at 2**30 or at any multiple of it) moved
    to read `start` now (None: as it is), as 30-bit ticks. `wraps` counts the turns seen. `tm.sleep_us`
    is passed on (as `sleep_us`). now(): the same clock unwrapped
    (monotonic us from `start`), for a HAL's own pacing on a port whose small ints are
    wide (the unix port); it is a big int past 2**30, so the rp2 HAL uses ticks only."""

    def __init__(self, tm, start=None):
        self._raw = tm.ticks_us
        self.sleep_us = tm.sleep_us
        start = (self._raw() if start is None else start) & TICKS_MASK
        self._off = ticks_diff(start, self._raw() & TICKS_MASK)
        self._last = start
        self.wraps = 0
        self._mono = start
        self._mlast = start

    def ticks(self):
        t = ticks_add(self._raw() & TICKS_MASK, self._off)
        if t < self._last:
            self.wraps += 1
        self._last = t
        return t

    def now(self):
        t = self.ticks()
        d = ticks_diff(t, self._mlast)
        self._mlast = t
        if d > 0:
            self._mono += d
        return self._mono
