"""Host commands as an operator sends them: again while the board is not ready, busy or silent."""
from collections import namedtuple

from firmware import wire

from host_tools import transport
from host_tools.transport import messages

RETRY = (wire.S_NOT_READY, wire.S_BUSY_UIP)

# a board whose port is gone (down, not restarting) is asked again for at most this long
GONE_RETRY_S = 1.0

# status: the last answer (None: never answered); unanswered: attempts that got no reply
Sent = namedtuple("Sent", "status unanswered")


def send(t, board, cmd, arg=0, arg2=0, retry_s=5.0, attempts=None, pause_s=0.05, retry_on=RETRY,
         timeout=None, before=None):
    """C_<cmd>(arg, arg2) to `board`, sent again (after `pause_s`) while the answer is in
    `retry_on` or there is none, for at most `retry_s` seconds (transport time; at most
    GONE_RETRY_S while the board's port is gone) or, given `attempts`, that many times. Every operator command is safe to repeat (the board answers
    S_OK to one that is done already, or S_BAD_STATE: see failback.to_primary).
    before(): called before each attempt. -> Sent(status or None, unanswered attempts)."""
    end = t.now() + (retry_s or 0.0)
    gone_end = t.now() + min(retry_s or 0.0, GONE_RETRY_S)
    unanswered = 0
    st = None
    n = 0
    while True:
        n += 1
        if before is not None:
            before()
        gone = False
        try:
            st = messages.command(t, board, cmd, arg, arg2, timeout)
        except transport.BoardGone:
            st, gone = None, True
            unanswered += 1
        except transport.TransportError:
            st = None
            unanswered += 1
        if st is not None and st not in retry_on:
            return Sent(st, unanswered)
        if gone and attempts is None and t.now() >= gone_end:
            return Sent(st, unanswered)             # no port: a board that is down
        if (attempts is not None and n >= attempts) or (attempts is None and t.now() >= end):
            return Sent(st, unanswered)
        t.sleep(pause_s)


def command(t, board, cmd, arg=0, arg2=0, **kw):
    """send() -> the status only (None: never answered)."""
    return send(t, board, cmd, arg, arg2, **kw).status
