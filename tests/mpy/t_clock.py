# The peer link's clock arithmetic stays in small ints past 2**30 us (issue #14 item 3).
#
# On the RP2040 an int of 2**30 or more is a heap object: a microsecond clock passes it
# after about 18 minutes. The peer link's Sender and Receiver keep their times as 30-bit
# ticks and compare them with ticks_diff, so, fed the wrapping ticks counter (what
# time.ticks_us() gives), their bookkeeping allocates nothing while the clock runs far past
# 2**30 us: this runs the go-back-N bookkeeping of a link (queue, ack, retransmit timeout,
# go back, NAK pacing) for 40 simulated minutes under micropython.heap_lock(), the ticks
# wrapping twice, and checks that every timeout fired when due, no earlier. Results are
# written into preallocated lists while the heap is locked and checked after unlocking.
# Under CPython (no heap lock) the same code runs as a plain functional test.
from firmware.peerlink import Sender, Receiver, TICKS_MASK, ticks_diff

try:
    import micropython
except ImportError:
    micropython = None

RTO = 300000                     # us
STEP = 7919                      # us per loop step (prime: the wraps fall mid-step)
STEPS = 310000                   # 40 minutes of clock
WINDOW = 4


def run(s, r, res):
    # res: [timeouts, early timeouts, late timeouts, naks, acked frames, wraps seen, bad diffs]
    ticks = TICKS_MASK - 5 * STEP        # the counter wraps within the first steps
    start = ticks
    waited = 0                   # us the base has waited since it was sent or acked
    k = 0
    while k < STEPS:
        if ticks > TICKS_MASK - STEP:            # ticks_add without passing 2**30 - 1
            ticks = ticks - (TICKS_MASK - STEP) - 1
            res[5] += 1
        else:
            ticks += STEP
        waited += STEP
        # every 3rd step one frame is queued while the window has room
        if k % 3 == 0 and s.can_queue():
            if s.in_flight() == 0:
                waited = 0
            s.tags[s.next % WINDOW] = k
            s.next = (s.next + 1) & 0xFFFF
            if s.next == ((s.base + 1) & 0xFFFF):
                s.sent_at = ticks
        # the receiver acknowledges everything in flight at 2 steps of each 97: otherwise the
        # frames are lost and the retransmit timeout must fire
        if k % 97 < 2 and s.in_flight():
            n = s.on_ack(s.next, ticks)
            res[4] += n
            waited = 0
        if s.timed_out(ticks):
            res[0] += 1
            if waited < RTO:
                res[1] += 1
            if waited > RTO + STEP:
                res[2] += 1
            s.rewind(ticks)
            waited = 0
        d = s.timeout_in(ticks)
        if d is not None and (d > RTO or d < -STEP):
            res[6] += 1
        if r.should_nak(ticks, RTO // 4):
            res[3] += 1
        k += 1
    return start


def main():
    s = Sender(WINDOW, RTO)
    r = Receiver()
    res = [0] * 7
    if micropython:
        micropython.heap_lock()
    try:
        run(s, r, res)
    finally:
        if micropython:
            micropython.heap_unlock()
    timeouts, early, late, naks, acked, wraps, bad = res
    minutes = STEPS * STEP // 60000000
    print("t_clock: %d min of clock, ticks wrapped %d times; %d timeouts (early %d, late %d), "
          "%d frames acked, %d NAKs allowed" % (minutes, wraps, timeouts, early, late, acked, naks))
    assert minutes >= 40 and wraps >= 2, (minutes, wraps)
    assert timeouts > 100 and acked > 1000, (timeouts, acked)
    assert early == 0 and late == 0, (early, late)
    assert bad == 0, bad
    # NAK pacing: one per RTO/4 at most, and it keeps being allowed across the wraps
    span = STEPS * STEP
    assert span // (RTO // 4 + STEP) - 2 <= naks <= span // (RTO // 4) + 1, naks
    # ticks_diff across the wrap
    assert ticks_diff(5, TICKS_MASK - 4) == 10 and ticks_diff(TICKS_MASK - 4, 5) == -10
    print("ALL OK")


main()
