"""The simulator's transport: host_tools.transport.Transport over a World's host ports, in virtual time.

    t = SimTransport(world)
    t.request("s0", T_H_STATUS)    # sends through the world's host port to s0 and runs the
                                   # scheduler until the reply or the timeout
    t.sleep(0.25)                  # the world runs 250 ms of virtual time
    t.now()                        # virtual seconds

The operator procedures of host_tools/ops/ run unchanged on it. The World itself is the
host_tools.transport.Site of the simulation (kill: switch boards off; restart: power them on).
"""
from firmware import wire

from host_tools import transport
from host_tools.transport import Reply, Transport


class SimTransport(Transport):
    """Requests through `world`'s host ports. timeout: seconds per attempt (virtual);
    retries: extra attempts for idempotent requests."""

    def __init__(self, world, timeout=0.5, retries=0):
        self.world = world
        self.timeout = timeout
        self.retries = retries
        self.requests = 0
        self.timeouts = 0

    def boards(self):
        return sorted(self.world.boards)

    def now(self):
        return self.world.now / 1e6

    def sleep(self, seconds):
        us = int(round(seconds * 1e6))
        if us > 0:
            self.world.run(self.world.now + us)

    def request(self, board, mtype, payload=b"", timeout=None, idempotent=False):
        if board not in self.world.boards:
            raise transport.BoardGone("%s: no such board in the world" % board)
        attempts = 1 + (self.retries if idempotent else 0)
        last = None
        for _ in range(attempts):
            if self.world.boards[board].destroyed:
                raise transport.BoardGone("%s: destroyed" % board)
            try:
                return self._once(board, mtype, payload, timeout)
            except transport.Timeout as e:
                last = e
        raise last

    def _once(self, board, mtype, payload, timeout):
        w = self.world
        host = w.hosts[board]
        t_us = int(round((self.timeout if timeout is None else timeout) * 1e6))
        box = []

        def done(now, status, mt, pl):
            box.append((status, mt, pl))
            w.sched.stop()

        self.requests += 1
        tag = host.request(mtype, payload, done, t_us)
        limit = w.sched.now + t_us + 1
        while not box and w.sched.now < limit:
            w.sched.run_until(limit)
            if not box and w.sched.peek() is None:
                break
        if not box or box[0][0] is None:
            self.timeouts += 1
            raise transport.Timeout("%s: no reply to tag %d in %.3f s (virtual)"
                                    % (board, tag, t_us / 1e6))
        status, mt, pl = box[0]
        pl = bytes(pl)
        if mt == wire.T_ERROR:
            return Reply(status, pl, mt, tag, True)
        return Reply(status, pl[1:], mt, tag, False)

