"""Virtual-time event scheduler for the deterministic simulator.

Time is an integer number of microseconds. Events sit in a binary heap as plain
tuples ``(at_us, serial, fn, args)``; the insertion serial breaks ties, so events
due at the same instant run in the order they were scheduled, and a run depends
on nothing but the order of calls (no wall clock, no hash order, no id()).

Cancelling is lazy: the serial goes into a set and the event is skipped when it
reaches the top of the heap. A handle is the event's serial (an int).

Timers that are almost always cancelled before they are due (a host request's
timeout) go through ``timer``: the same event, the same serial, but kept in a FIFO
side queue while their times only grow, and moved into the heap when the loop
reaches them; cancelled ones are dropped there. The heap then holds the live
traffic only (tens of events instead of hundreds of dead timeouts), and a run is
the same event for event.

Optional tracing folds every executed event (time, callable name) into a
BLAKE2b digest: two runs from one seed must end with the same digest. Optional
counting (``count=True``) counts the executed events by handler name in ``counts``
(``arcopy perf`` diagnostics: which kinds of event a run is made of).
"""
import hashlib
from collections import deque
from functools import partial
from heapq import heappush, heappop


_FOREVER = 1 << 62          # run(): no time limit


class SchedulerError(Exception):
    pass


def _fn_name(fn):
    # bound methods: Class.method; functions: qualname; partials and others: type name
    name = getattr(fn, "__qualname__", None)
    if name is None:
        name = type(fn).__qualname__
    return name


class Scheduler:
    """Event heap in virtual microseconds.

    schedule(at_us, fn, *args) -> handle; cancel(handle); run_until(t); run(max_events).
    Events scheduled in the past run at the current time (``now`` never moves back).
    """

    def __init__(self, trace=False, count=False):
        self.now = 0
        self._heap = []
        self._serial = 0
        self._cancelled = set()
        self._later = deque()        # timer(): (at_us, serial, fn, args) in (at_us, serial) order
        self._later_at = _FOREVER    # at_us of _later[0]
        self._stop = False
        self.events = 0              # events executed
        self.trace = trace
        self._digest = hashlib.blake2b(digest_size=16) if trace else None
        self.counts = {} if count else None     # handler name -> events executed

    # -- scheduling ------------------------------------------------------------
    def schedule(self, at_us, fn, *args):
        """Run fn(*args) at virtual time at_us (clamped to now). Returns a handle."""
        s = self._serial
        self._serial = s + 1
        if at_us < self.now:
            at_us = self.now
        heappush(self._heap, (at_us, s, fn, args))
        return s

    def after(self, delay_us, fn, *args):
        """Run fn(*args) delay_us from now."""
        s = self._serial
        self._serial = s + 1
        heappush(self._heap, (self.now + (delay_us if delay_us > 0 else 0), s, fn, args))
        return s

    def timer(self, delay_us, fn, *args):
        """As after(): for an event that is usually cancelled before it is due (a timeout).
        It runs exactly when after() would have run it (same time, same serial)."""
        s = self._serial
        self._serial = s + 1
        ev = (self.now + (delay_us if delay_us > 0 else 0), s, fn, args)
        later = self._later
        if later:
            if ev[0] < later[-1][0]:
                heappush(self._heap, ev)    # out of order (another delay): the heap as usual
            else:
                later.append(ev)
        else:
            later.append(ev)
            self._later_at = ev[0]
        return s

    def _migrate(self, upto):
        """Move the side queue's events due at or before `upto` into the heap (cancelled
        ones are dropped, as the loop would skip them)."""
        later = self._later
        c = self._cancelled
        heap = self._heap
        while later and later[0][0] <= upto:
            ev = later.popleft()
            if c and ev[1] in c:
                c.discard(ev[1])
            else:
                heappush(heap, ev)
        self._later_at = later[0][0] if later else _FOREVER

    def cancel(self, handle):
        """Forget a scheduled event. Cancelling an event that already ran, or None, is harmless."""
        if handle is not None and handle < self._serial:
            self._cancelled.add(handle)

    def stop(self):
        """Make the running run()/run_until() return after the current event."""
        self._stop = True

    # -- introspection -----------------------------------------------------------
    def pending(self):
        """Number of scheduled, not cancelled events (O(n))."""
        c = self._cancelled
        return sum(1 for e in self._heap if e[1] not in c) + sum(1 for e in self._later
                                                                 if e[1] not in c)

    def peek(self):
        """Time of the next live event, or None."""
        heap = self._heap
        c = self._cancelled
        while True:
            while heap and heap[0][1] in c:
                c.discard(heappop(heap)[1])
            if self._later and (not heap or heap[0][0] >= self._later_at):
                self._migrate(heap[0][0] if heap else self._later_at)
                continue
            return heap[0][0] if heap else None

    def digest(self):
        """Hex digest of the executed-event trace (requires trace=True)."""
        if self._digest is None:
            raise SchedulerError("tracing is off")
        return self._digest.hexdigest()

    def note(self, *values):
        """Fold extra values (e.g. delivered bytes) into the trace digest, if tracing."""
        if self._digest is not None:
            self._digest.update(repr(values).encode())

    # -- running -----------------------------------------------------------------
    def run_until(self, t_us):
        """Run every event due at or before t_us, then set now = t_us (unless stopped).
        Returns the number of events executed."""
        n, drained = self._run(t_us, -1)
        if drained and t_us > self.now:
            self.now = t_us
        return n

    def run(self, max_events=None):
        """Run until the heap is empty, stop() is called, or max_events have run.
        Returns the number of events executed."""
        return self._run(None, -1 if max_events is None else max_events)[0]

    def _run(self, t_us, limit):
        """The event loop: -> (events run, True if it ended because nothing more was due)."""
        heap = self._heap
        c = self._cancelled
        n = 0
        self._stop = False
        dg = self._digest
        counts = self.counts
        slow = dg is not None or counts is not None
        drained = True
        if t_us is None:
            t_us = _FOREVER
        pop = heappop
        while n != limit:
            if heap:
                ev = pop(heap)
                at, s, fn, args = ev
                if at >= self._later_at:
                    # a side-queue event may come first: into the heap with it, and again
                    heappush(heap, ev)
                    self._migrate(at)
                    continue
            elif self._later:
                self._migrate(self._later_at)
                continue
            else:
                break
            if at > t_us:
                heappush(heap, ev)      # not due: back where it was (same serial, same order)
                break
            if c and s in c:
                c.discard(s)
                continue
            self.now = at
            if slow:
                name = _fn_name(fn.func if type(fn) is partial else fn)
                if dg is not None:
                    dg.update(b"%d %d %s;" % (at, s, _fn_name(fn).encode()))
                if counts is not None:
                    counts[name] = counts.get(name, 0) + 1
            fn(*args)
            n += 1
            if self._stop:
                drained = False
                break
        self.events += n
        return n, drained
