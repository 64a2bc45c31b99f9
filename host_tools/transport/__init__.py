"""The one interface the host tools talk to boards through: a request goes out, a reply or a timeout comes back.

    t.request(board, mtype, payload=b"", timeout=None, idempotent=False) -> Reply
    t.boards()          -> names of the boards this transport reaches
    t.now()             -> seconds (monotonic; virtual in the simulator)
    t.sleep(seconds)    -> let that much time pass (the simulated world runs meanwhile)

Implementations: ``SerialTransport`` (host_tools/transport/serial_client.py: a rig's host
ports over pyserial, real or emulated boards; every port a device path or a pyserial URL such
as socket://HOST:PORT, held by one program at a time, or shared through the rig agent,
host_tools/rig/agent.py, when one holds it) and ``SimTransport`` (host_tools/sim/transport.py:
the simulator's host ports, in virtual time). Typed requests (write, read, status, command,
dirty list) over any Transport are in host_tools/transport/messages.py.

What is not a host-port request (switching a site off, bringing boards back) goes through
``Site``: ``kill(names)``, ``restart(names)``, implemented by the rig manager
(host_tools/rig/manager.py ``RigControl``) and by the simulated world.
"""
from collections import namedtuple

# status: the S_* code (the H_REPLY's status byte, or the ERROR frame's code);
# body: what follows the status byte (the whole ERROR payload when error is True);
# flags: the reply frame's header flags (F_EXPOSED on a write's OK: SPEC section 8), 0 if unknown
Reply = namedtuple("Reply", "status body mtype tag error flags", defaults=(0,))


class TransportError(Exception):
    """A request that got no reply."""


class Timeout(TransportError):
    """No matching reply in time."""


class BoardGone(TransportError):
    """The board cannot be reached at all (its port closed or does not open, another program
    holds it, it is destroyed)."""


class Transport:
    """A request/reply channel to the host ports of a set of boards."""

    def request(self, board, mtype, payload=b"", timeout=None, idempotent=False):
        """Send one request to `board` and wait for its reply; -> Reply. Raises Timeout or
        BoardGone. An idempotent request (STATUS, READ, a read-only command) may be sent
        again after a timeout; any other is sent once."""
        raise NotImplementedError

    def boards(self):
        """Names of the boards reachable through this transport."""
        raise NotImplementedError

    def now(self):
        """Seconds on this transport's clock (monotonic)."""
        raise NotImplementedError

    def sleep(self, seconds):
        """Let `seconds` pass on this transport's clock."""
        raise NotImplementedError

    def close(self):
        """Release whatever the transport holds open."""


class Site:
    """What an operator does to boards that is not a host-port request."""

    def kill(self, names):
        """Stop the named boards now (the site is lost); -> names actually stopped."""
        raise NotImplementedError

    def restart(self, names):
        """Bring the named boards back (power on); -> names started."""
        raise NotImplementedError
