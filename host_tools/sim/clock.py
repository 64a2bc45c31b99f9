"""A board's own microsecond clock in the simulator.

    local_us(v) = offset + floor((v - v0) * (1e9 + drift_ppb) / 1e9)

where v is virtual time, v0 the virtual instant of the last (re)start and offset
the local reading at that instant. Integer arithmetic only, so the mapping is
exact, monotonic (never decreasing in v; a slow clock may read the same value
at two instants 1 us apart) and identical on every platform.

``to_virtual(local)`` is the exact inverse for scheduling: the earliest virtual
instant at which the local clock reads >= local.

A reboot restarts the clock (``restart``) at a new offset, as a board's
ticks_us counter starts afresh at power-on.

host_tools/sim/board.py computes both formulas inline from ``offset``, ``v0`` and
``_rate`` on its per-event path: change them together.
"""

_PPB = 1000000000


class LocalClock:
    def __init__(self, drift_ppm=0.0, offset_us=0, v0_us=0):
        ppb = int(round(drift_ppm * 1000))
        if ppb <= -_PPB:
            raise ValueError("drift must be above -1e6 ppm")
        self.drift_ppb = ppb
        self._rate = _PPB + ppb
        self.offset = int(offset_us)
        self.v0 = int(v0_us)
        self.restarts = 0

    @property
    def drift_ppm(self):
        return self.drift_ppb / 1000.0

    def local_us(self, virtual_us):
        """The board's clock reading at virtual time virtual_us (>= the last restart)."""
        return self.offset + ((virtual_us - self.v0) * self._rate) // _PPB

    def to_virtual(self, local_us):
        """Earliest virtual time v >= v0 with local_us(v) >= local_us."""
        d = local_us - self.offset
        if d <= 0:
            return self.v0
        # smallest x with x * rate >= d * 1e9
        return self.v0 + (d * _PPB + self._rate - 1) // self._rate

    def restart(self, virtual_us, offset_us=0):
        """Power-on at virtual_us: the local clock reads offset_us there and runs on
        at the same drift."""
        self.v0 = int(virtual_us)
        self.offset = int(offset_us)
        self.restarts += 1

    def set_drift(self, virtual_us, drift_ppm):
        """Change the drift from virtual_us on, keeping the reading continuous."""
        now_local = self.local_us(virtual_us)
        ppb = int(round(drift_ppm * 1000))
        if ppb <= -_PPB:
            raise ValueError("drift must be above -1e6 ppm")
        self.drift_ppb = ppb
        self._rate = _PPB + ppb
        self.offset = now_local
        self.v0 = int(virtual_us)
