"""Perf figures of the simulator engine alone (no firmware): prints figures, asserts nothing.

    python -m host_tools.perf.sim_engine [--events N]

- scheduler: events per wall second, bare (64 self-rescheduling timers that do
  nothing else) and in a mix with random delays and cancels (the boards' pattern);
- link: bytes per wall second through one peer-link direction with chunked delivery;
- bus: frames per wall second on a 4-station bus with 3 receivers each;
- engine-only load of 8 boards: a stand-in for the firmware's traffic (a bus cycle
  every 50 ms with a frame from each of 4 stations, a saturated 115200-baud peer link
  per pair carrying full frames one way and acks the other, a tick every `tick_us`
  per board), reported as simulated seconds per wall second of the engine alone:
  the firmware's own cost comes on top.
"""
import argparse
import random
import time

from host_tools.sim.scheduler import Scheduler
from host_tools.sim.link import Channel, SerialLink
from host_tools.sim.bus import Bus


def perf_scheduler_bare(n_events):
    s = Scheduler()

    def ev(k):
        s.after(1000 + k, ev, k)

    for k in range(64):
        s.schedule(k, ev, k)
    t0 = time.perf_counter()
    done = s.run(max_events=n_events)
    return done / (time.perf_counter() - t0)


def perf_scheduler(n_events):
    s = Scheduler()
    r = random.Random(1)

    def ev(k):
        h = s.after(r.randint(1, 2000), ev, k)
        if k % 4 == 0:
            # re-arm: cancel and schedule again, as a board moving its deadline does
            s.cancel(h)
            s.after(r.randint(1, 2000), ev, k)

    for k in range(16):
        s.schedule(k, ev, k)
    t0 = time.perf_counter()
    done = s.run(max_events=n_events)
    dt = time.perf_counter() - t0
    return done / dt


def perf_link(nbytes):
    s = Scheduler()
    ch = Channel(s, 115200, random.Random(2), latency_us=1000, jitter_us=500, chunk_max=256)
    got = [0]

    def deliver(d):
        got[0] += len(d)
    ch.deliver = deliver
    frame = bytes(4116)
    t0 = time.perf_counter()
    sent = 0
    while sent < nbytes:
        ch.send(frame)
        sent += len(frame)
        s.run_until(ch._tx_free)
    s.run()
    dt = time.perf_counter() - t0
    return got[0] / dt


def perf_bus(nframes):
    s = Scheduler()
    bus = Bus(s, 115200, random.Random(3))
    for sid in range(4):
        bus.attach(sid, lambda d: None)
    t0 = time.perf_counter()
    for i in range(nframes):
        s.schedule(i * 4000, bus.send, i % 4, bytes(32))
    s.run()
    dt = time.perf_counter() - t0
    return nframes / dt


def perf_eight_boards(sim_seconds, tick_us=10000):
    s = Scheduler()
    r = random.Random(4)
    buses = [Bus(s, 115200, random.Random(5 + i)) for i in range(2)]
    for b in buses:
        for sid in range(4):
            b.attach(sid, lambda d: None)
    links = [SerialLink(s, 115200, random.Random(10 + i), latency_us=1000, chunk_max=256)
             for i in range(4)]
    for ln in links:
        ln.attach(0, lambda d: None)
        ln.attach(1, lambda d: None)

    def tick(board):
        s.after(tick_us, tick, board)

    def slot(bus, sid):
        bus.send(sid, bytes(r.randint(20, 40)))

    def cycle(bus):
        for sid in range(4):
            s.after(sid * 5000, slot, bus, sid)
        s.after(50000, cycle, bus)

    def pump(ln):
        end = ln.send(0, bytes(4116))
        ln.send(1, bytes(24))
        s.schedule(end, pump, ln)

    for i in range(8):
        s.schedule(i, tick, i)
    for b in buses:
        s.schedule(0, cycle, b)
    for ln in links:
        s.schedule(0, pump, ln)
    t0 = time.perf_counter()
    s.run_until(sim_seconds * 1000000)
    dt = time.perf_counter() - t0
    return sim_seconds / dt, s.events / dt


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=500000)
    a = ap.parse_args(argv)
    print("scheduler: %.0f events/s bare, %.0f events/s with random delays and cancels"
          % (perf_scheduler_bare(a.events), perf_scheduler(a.events)))
    print("link:      %.0f bytes/s delivered (chunks <= 256)" % perf_link(4000000))
    print("bus:       %.0f frames/s (3 receivers each)" % perf_bus(50000))
    for tick_us in (10000, 2000):
        sps, eps = perf_eight_boards(60, tick_us)
        print("8 boards, engine only, a tick every %d us per board: %.0f simulated s per wall s "
              "(%.0f events/s)" % (tick_us, sps, eps))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
