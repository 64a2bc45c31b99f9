# A board's states in one place: the pair state machine as one table, and its other named sub-states.
#
# A pair's copy state (superblock `copy_state`, wire.CS_*) changes only through
# transition(): it looks (role, state, event) up in TABLE, commits the new state
# durably through the store and returns it. What TABLE does not list is illegal in
# that state: the answer is BAD_STATE (S_BAD_STATE to an operator; an event from
# the peer that is not in the table is ignored). An entry SAME means "legal, and
# already done": the answer is OK and nothing is written (a retried command).
#
#   role       state        event              -> new state
#   PRIMARY    SIMPLEX      START_COPY            PENDING      full/delta copy (operator, autostart
#                                                              with marks, new primary after failback)
#   PRIMARY    SIMPLEX      START_NOCOPY          DUPLEX       NOCOPY, or autostart of a blank pair
#   PRIMARY    SUSPENDED    START_COPY|RESUME     PENDING      resync what was marked meanwhile
#   PRIMARY    SUSPENDED    START_NOCOPY          DUPLEX
#   PRIMARY    PENDING|DUPLEX START_COPY|START_NOCOPY|RESUME  SAME
#   PRIMARY    PENDING      JOIN                  DUPLEX       join marker journaled at a cut
#   PRIMARY    PENDING|DUPLEX SUSPEND             SUSPENDED    (SUSPENDED: SAME)
#   PRIMARY    DUPLEX       AUTO_SUSPEND          SUSPENDED    journal full with auto_suspend
#   PRIMARY    PENDING|DUPLEX|SUSPENDED PEER_FAILED_OVER SUSPENDED  the secondary says it failed over
#                                                              (reason PEER_FAILED_OVER: fenced;
#                                                              SUSPENDED: the reason is rewritten)
#   PRIMARY    any          STOP_COPY             SIMPLEX
#   PRIMARY    any          BECOME_SECONDARY      SIMPLEX      failback (the role changes too)
#   PRIMARY    PENDING|DUPLEX BECOME_PRIMARY      SAME         failback retried on the new primary
#   SECONDARY  any but FAILED_OVER RESYNC         PENDING      HELLO with COPY, or copies arrive
#   SECONDARY  SIMPLEX|RESIGNED HELLO             DUPLEX       stream HELLO (PENDING|DUPLEX: SAME;
#                                                              SUSPENDED: refused)
#   SECONDARY  PENDING      JOIN                  DUPLEX       join marker taken (DUPLEX: SAME)
#   SECONDARY  any but FAILED_OVER PEER_SUSPEND   SUSPENDED    operator suspend notice (SUSPENDED: SAME)
#   SECONDARY  DUPLEX       PEER_AUTO_SUSPEND     RESIGNED     auto-suspend notice
#   SECONDARY  DUPLEX       PEER_LOST             RESIGNED     stream silent for peer_timeout_us
#   SECONDARY  any but PENDING FAILOVER           FAILED_OVER  (FAILED_OVER: SAME)
#   SECONDARY  FAILED_OVER  BECOME_PRIMARY        SIMPLEX      failback (the role changes too)
#   SECONDARY  any          BECOME_SECONDARY      SAME
# A secondary has no START_COPY, START_NOCOPY, RESUME, SUSPEND or STOP_COPY: pair
# operations are the primary's, so they are BAD_STATE there in every state (and an
# operator's pair command to a secondary is answered S_WRONG_ROLE before the table is
# asked: BAD_STATE means "a command of this role, wrong pair state").
#
# The table is a dict keyed by a small int (role << 8 | state << 5 | event), so a
# lookup allocates nothing and the whole machine costs one dict. (Event names for
# messages and tests are the host's: tests/test_pair_states.py lists them.)
from firmware.wire import (const, C_START_COPY, C_RESUME, C_SUSPEND, C_STOP_COPY, CS_SIMPLEX, CS_PENDING, CS_DUPLEX,
                           CS_SUSPENDED, CS_RESIGNED, CS_FAILED_OVER, MODE_CLOCK, MODE_CLOCKLESS, MODE_SYNC,
                           S_BAD_STATE)

# ---- events ---------------------------------------------------------------------
START_COPY = const(1)         # operator START_COPY (full or delta); autostart with marks
START_NOCOPY = const(2)       # START_COPY with NOCOPY; autostart of a blank pair
RESUME = const(3)             # operator RESUME
SUSPEND = const(4)            # operator SUSPEND
AUTO_SUSPEND = const(5)       # primary: a full journal with auto_suspend
STOP_COPY = const(6)          # operator STOP_COPY
JOIN = const(7)               # the join marker (primary: journaled; secondary: taken)
RESYNC = const(8)             # secondary: the primary resyncs (HELLO with COPY, or copies)
HELLO = const(9)              # secondary: the primary's stream HELLO
PEER_SUSPEND = const(10)      # secondary: peer notice SUSPEND, reason OPERATOR
PEER_AUTO_SUSPEND = const(11)  # secondary: peer notice SUSPEND, any other reason
PEER_LOST = const(12)         # secondary: the stream was silent for peer_timeout_us
FAILOVER = const(13)          # operator FAILOVER
BECOME_PRIMARY = const(14)    # failback: this board becomes the primary
BECOME_SECONDARY = const(15)  # failback: this board becomes the secondary
PEER_FAILED_OVER = const(16)  # primary: the secondary's notice SUSPEND(PEER_FAILED_OVER)
EVENTS = const(16)            # events are 1..EVENTS

# ---- answers besides a new state ------------------------------------------------
SAME = const(0x40)            # legal and already done: OK, nothing is written
BAD_STATE = S_BAD_STATE       # not in the table: illegal in this state
BAD_ARG = const(0x41)         # command_event: a pair command with an argument it does not take

_P = const(0x100)             # ROLE_PRIMARY << 8
_S = const(0x200)             # ROLE_SECONDARY << 8
_SIMPLEX = const(0x00)        # state << 5
_PENDING = const(0x20)
_DUPLEX = const(0x40)
_SUSPENDED = const(0x60)
_RESIGNED = const(0x80)
_FAILED_OVER = const(0xA0)


TABLE = {
    # ---- primary ----
    _P | _SIMPLEX | START_COPY: CS_PENDING,
    _P | _SIMPLEX | START_NOCOPY: CS_DUPLEX,
    _P | _SIMPLEX | STOP_COPY: CS_SIMPLEX,
    _P | _SIMPLEX | BECOME_SECONDARY: CS_SIMPLEX,

    _P | _PENDING | START_COPY: SAME,
    _P | _PENDING | START_NOCOPY: SAME,
    _P | _PENDING | RESUME: SAME,
    _P | _PENDING | JOIN: CS_DUPLEX,
    _P | _PENDING | SUSPEND: CS_SUSPENDED,
    _P | _PENDING | STOP_COPY: CS_SIMPLEX,
    _P | _PENDING | BECOME_SECONDARY: CS_SIMPLEX,
    _P | _PENDING | BECOME_PRIMARY: SAME,
    _P | _PENDING | PEER_FAILED_OVER: CS_SUSPENDED,

    _P | _DUPLEX | START_COPY: SAME,
    _P | _DUPLEX | START_NOCOPY: SAME,
    _P | _DUPLEX | RESUME: SAME,
    _P | _DUPLEX | SUSPEND: CS_SUSPENDED,
    _P | _DUPLEX | AUTO_SUSPEND: CS_SUSPENDED,
    _P | _DUPLEX | STOP_COPY: CS_SIMPLEX,
    _P | _DUPLEX | BECOME_SECONDARY: CS_SIMPLEX,
    _P | _DUPLEX | BECOME_PRIMARY: SAME,
    _P | _DUPLEX | PEER_FAILED_OVER: CS_SUSPENDED,

    _P | _SUSPENDED | START_COPY: CS_PENDING,
    _P | _SUSPENDED | START_NOCOPY: CS_DUPLEX,
    _P | _SUSPENDED | RESUME: CS_PENDING,
    _P | _SUSPENDED | SUSPEND: SAME,
    _P | _SUSPENDED | STOP_COPY: CS_SIMPLEX,
    _P | _SUSPENDED | BECOME_SECONDARY: CS_SIMPLEX,
    _P | _SUSPENDED | PEER_FAILED_OVER: CS_SUSPENDED,

    # ---- secondary ----
    _S | _SIMPLEX | RESYNC: CS_PENDING,
    _S | _SIMPLEX | HELLO: CS_DUPLEX,
    _S | _SIMPLEX | PEER_SUSPEND: CS_SUSPENDED,
    _S | _SIMPLEX | FAILOVER: CS_FAILED_OVER,
    _S | _SIMPLEX | BECOME_SECONDARY: SAME,

    _S | _PENDING | RESYNC: CS_PENDING,
    _S | _PENDING | HELLO: SAME,
    _S | _PENDING | JOIN: CS_DUPLEX,
    _S | _PENDING | PEER_SUSPEND: CS_SUSPENDED,
    _S | _PENDING | BECOME_SECONDARY: SAME,

    _S | _DUPLEX | RESYNC: CS_PENDING,
    _S | _DUPLEX | HELLO: SAME,
    _S | _DUPLEX | JOIN: SAME,
    _S | _DUPLEX | PEER_SUSPEND: CS_SUSPENDED,
    _S | _DUPLEX | PEER_AUTO_SUSPEND: CS_RESIGNED,
    _S | _DUPLEX | PEER_LOST: CS_RESIGNED,
    _S | _DUPLEX | FAILOVER: CS_FAILED_OVER,
    _S | _DUPLEX | BECOME_SECONDARY: SAME,

    _S | _SUSPENDED | RESYNC: CS_PENDING,
    _S | _SUSPENDED | PEER_SUSPEND: SAME,
    _S | _SUSPENDED | FAILOVER: CS_FAILED_OVER,
    _S | _SUSPENDED | BECOME_SECONDARY: SAME,

    _S | _RESIGNED | RESYNC: CS_PENDING,
    _S | _RESIGNED | HELLO: CS_DUPLEX,
    _S | _RESIGNED | PEER_SUSPEND: CS_SUSPENDED,
    _S | _RESIGNED | FAILOVER: CS_FAILED_OVER,
    _S | _RESIGNED | BECOME_SECONDARY: SAME,

    _S | _FAILED_OVER | FAILOVER: SAME,
    _S | _FAILED_OVER | BECOME_PRIMARY: CS_SIMPLEX,
    _S | _FAILED_OVER | BECOME_SECONDARY: SAME,
}


def command_event(cmd, arg):
    """The event an operator's pair command makes (START_COPY with arg 2 is NOCOPY), 0
    when `cmd` is not a pair command, BAD_ARG for START_COPY with an arg not 0, 1 or 2."""
    if cmd == C_START_COPY:
        if arg == 2:
            return START_NOCOPY
        return START_COPY if arg < 2 else BAD_ARG
    if cmd == C_RESUME:
        return RESUME
    if cmd == C_SUSPEND:
        return SUSPEND
    if cmd == C_STOP_COPY:
        return STOP_COPY
    return 0


# ---- the copy mode (SET_MODE) ------------------------------------------------------
# The mode is not a copy state: it changes in every copy state, on both roles, and only
# through mode_change(). What it means per role:
#   primary    MODE_SYNC: a host write completes when the secondary has journaled it
#              (its ACK); MODE_CLOCK: at once (durable in the primary's journal)
#   secondary  MODE_SYNC: a failover rolls forward through the whole journal (RPO 0);
#              MODE_CLOCK: it recovers to the released cut
# Rules:
#   arg not MODE_CLOCK or MODE_SYNC          BAD_ARG (clockless is a site-wide stamping
#                                            scheme, configured, never switched at run time)
#   the board runs MODE_CLOCKLESS            BAD_STATE (same reason)
#   arg == the current mode                  SAME (a retry: OK; saved if it was the config's)
#   SECONDARY -> MODE_SYNC while its journal BAD_STATE until those records are applied
#     holds a record that arrived without    (retry after the next release): a roll-
#     F_SYNC (written asynchronously)        forward must never cover a write whose
#                                            completion did not wait for this journal
#   otherwise                                the new mode (committed durably)
def mode_change(cur, new, async_held):
    """SET_MODE's answer for a board running mode `cur`: the new mode, SAME,
    BAD_ARG or BAD_STATE. async_held: a secondary's journal holds a record beyond its
    applied cut that was not written synchronously (a primary passes False)."""
    if new != MODE_CLOCK and new != MODE_SYNC:
        return BAD_ARG
    if cur == MODE_CLOCKLESS:
        return BAD_STATE
    if new == cur:
        return SAME
    if new == MODE_SYNC and async_held:
        return BAD_STATE
    return new


def next_state(role, state, event):
    """The table's answer: a copy state (the pair moves there), SAME or BAD_STATE."""
    return TABLE.get(role << 8 | state << 5 | event, BAD_STATE)


def transition(store, acting, event, **fields):
    """Make `event` happen to the pair of a board whose role is `acting`: look it up for
    (acting, current state); a move is committed durably (with `fields`, in the same
    superblock write; a failback's `role=` change among them) and the new state
    returned; SAME returns the current state and writes nothing; an illegal event
    returns BAD_STATE and writes nothing."""
    state = store.sb.copy_state
    new = TABLE.get(acting << 8 | state << 5 | event, BAD_STATE)
    if new == SAME:
        return state
    if new == BAD_STATE:
        return BAD_STATE
    fields["copy_state"] = new
    store.commit(**fields)
    return new


# ---- the other machines' sub-states ------------------------------------------------
# They change inside one role module each, on conditions of their own (timers, a HELLO,
# a beacon), so they are held there, but named here, in one place.
#
# Peer link session (Primary.link, Secondary.link; the frames themselves are go-back-N,
# firmware/peerlink.py):
#   LINK_HELLO  no session: the primary sends PEER_HELLO every keepalive until answered;
#               the secondary answers stream frames of an unknown session with
#               HELLO(unknown session), so the primary starts a new one
#   LINK_UP     HELLO exchanged: the primary fills the window from its journal, the
#               secondary journals in-order frames and acknowledges them. Back to
#               LINK_HELLO on peer silence (peer_timeout_us), a suspend, a failover,
#               a reboot, or a HELLO asking for a new session.
LINK_HELLO = const(0)
LINK_UP = const(1)

# Primary clock (Primary.clock):
#   CLOCK_COLD    since boot no time taken: a member refuses host writes (S_NOT_READY),
#                 its clock reports carry only its floor (last stamp or checkpoint + 1)
#   CLOCK_SYNCED  it took a warm master's time (a CLOCK_SYNC beacon with the flag WARM), or
#                 it is the warm master (its time is the group's). A master is warm once
#                 its warm-up (two heartbeats) has passed and it was synced, or every live
#                 member has reported its clock to it: only then do its beacons say WARM
#                 and it cuts checkpoints. (Clockless mode needs no clock: a member may
#                 stamp once it heard a checkpoint.)
CLOCK_COLD = const(0)
CLOCK_SYNCED = const(1)

# Rendezvous, as run by the secondary master (Secondary.round(), from its RELEASE and
# RESET_UIP times rel_t and reset_t; the member table is soft state rebuilt from HELD,
# UPDATE_COMPLETE, COPY_ACTIVE and RESIGN):
#   RV_COLLECTING  no round open (rel_t <= reset_t): when every copy-active member holds a
#                  cut newer than the last release, RELEASE(n, T) with T = the lowest
#                  held time opens the next round
#   RV_RELEASED    a round is open (rel_t > reset_t): RELEASE is broadcast every cycle and
#                  the members are in update-in-progress (UIP, durable: sb.uip_n) until
#                  each reports UPDATE_COMPLETE for T; then RESET_UIP(n) is broadcast
#                  (a few times) and the round is collected again
RV_COLLECTING = const(0)
RV_RELEASED = const(1)
