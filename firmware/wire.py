# Wire contract constants shared by every firmware module.
# The construct definitions in protocol/frames.py are the host-side source of
# truth; tests prove that both sides agree byte for byte.
# All multi-byte fields are little-endian.
try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

# ---- frame layout -----------------------------------------------------------
# off size field
#   0   2  magic      b"\xA5\x5C"
#   2   1  version    VERSION
#   3   1  type       T_*
#   4   1  flags      F_*
#   5   1  src        node id (0 = host PC, 1..254 boards)
#   6   1  dst        node id, BROADCAST = 0xFF
#   7   1  group      copy group id (0 = default)
#   8   2  seq        link sequence number (reliable links) / request tag (host port)
#  10   2  ack        cumulative ack: next expected seq (reliable links), else 0
#  12   2  length     payload length, 0..MAX_PAYLOAD
#  14   2  hcheck     crc32(bytes 0..13) & 0xFFFF
#  16   n  payload
#  16+n 4  crc        crc32(bytes 0..16+n-1)   (zlib / binascii / crcmod 'crc-32')
MAGIC0 = const(0xA5)
MAGIC1 = const(0x5C)
VERSION = const(1)
HDR_SIZE = const(16)
CRC_SIZE = const(4)
OVERHEAD = const(20)
MAX_PAYLOAD = const(4096)
MAX_FRAME = const(4116)
# largest payload each port legitimately carries (receive buffers are sized by these)
MAX_HOST_PAYLOAD = const(528)   # H_WRITE is 517 bytes; H_REPLY to a read 513
MAX_BUS_PAYLOAD = const(64)     # bus messages are at most 12 bytes
BROADCAST = const(0xFF)
HOST_ID = const(0)
BLOCK_SIZE = const(512)

# ---- the core's ports (Node.on_frame / Node.take_out) ----------------------------
PORT_HOST = const(0)
PORT_BUS = const(1)
PORT_PEER = const(2)

# header struct (without the hcheck) and full header
HDR_FMT = "<BBBBBBBBHHH"      # magic0 magic1 ver type flags src dst group seq ack length
HCHECK_OFF = const(14)

# ---- flags ------------------------------------------------------------------
F_RETX = const(0x01)     # retransmission of an earlier frame
F_MORE = const(0x02)     # sender has more queued (bus replies)
F_REPLY = const(0x04)    # host-port reply
F_SYNC = const(0x08)     # peer write records written in synchronous mode
F_UIP = const(0x10)      # UPDATE_COMPLETE sent while the sender still shows update-in-progress
F_WARM = const(0x20)     # beacon from a master whose clock is established (members may sync to it)
F_COPY = const(0x40)     # peer: resync traffic (WRITE_BATCH of block copies, PEER_HELLO from a
                         # primary whose pair is copy pending)
F_EXPOSED = const(0x80)  # host port: an H_REPLY OK to H_WRITE whose write is durable here but not
                         # protected as configured (pair suspended, or the cut is too old)
F_ANCHOR = const(0x40)   # secondary bus (the bit is F_COPY's on the peer link): RELEASE(n, T) from
                         # the master announces the group's image cut (anchor) T; RESET_UIP drops it;
                         # UPDATE_COMPLETE(n, T) reports "I keep the image of cut T"; COPY_ACTIVE
                         # says "my pair needs the anchor" (out of the group with an image to keep)

# ---- message types (one meaning each) ----------------------------------------
# site bus
T_COPY_ACTIVE = const(0x01)
T_CLOCK_SYNC = const(0x02)       # also the bus beacon that opens every slot cycle
T_CHECKPOINT = const(0x03)       # the cut (n, T), broadcast by the primary master (primary bus only)
T_RELEASE = const(0x04)
T_UPDATE_COMPLETE = const(0x05)
T_RESET_UIP = const(0x06)
T_RESIGN = const(0x07)
T_HELD = const(0x08)             # secondary -> secondary master: newest checkpoint marker journaled
T_IDLE = const(0x09)             # peer-link keepalive (unsequenced)
# peer link
T_WRITE_BATCH = const(0x10)
T_ACK = const(0x11)
T_NAK = const(0x12)
T_PEER_HELLO = const(0x13)
T_SUSPEND = const(0x14)          # peer notice: the primary suspended the pair (unsequenced)
T_MARKER = const(0x15)           # checkpoint marker in the record stream (sequenced)
T_JOIN = const(0x16)             # join marker: the resync ends at this cut (sequenced)
# host port
T_H_WRITE = const(0x20)
T_H_READ = const(0x21)
T_H_STATUS = const(0x22)
T_H_COMMAND = const(0x23)
T_H_REPLY = const(0x30)
T_ERROR = const(0x3F)

# ---- payload layouts (struct formats, little-endian) --------------------------
P_COPY_ACTIVE = "<BBBBI"    # role, peer, copy_state, mode, incarnation
P_CLOCK_SYNC = "<QIBII"     # time (us), round, echoed member (0: none), tag, hold (us)
P_CHECKPOINT = "<IQ"        # n, T (us, or epoch in clockless mode)
P_RELEASE = "<IQ"           # n, T
P_UPDATE_COMPLETE = "<IQ"   # n, T of the applied checkpoint
P_RESET_UIP = "<I"          # n
P_RESIGN = "<BB"            # node, reason (R_*)
P_HELD = "<IQ"              # n, T of the newest marker the sender journaled
P_IDLE = ""                 # empty
P_BATCH_HEAD = "<BIQ"       # record count, lseq of the first record, base time T0; then count
                            # records (record i has lseq + i), then optionally a checkpoint
                            # marker (P_MARKER: n, T) that ends the batch
P_RECORD = "<BII"           # vol, block, dt (time - T0, 0..2**30-1 when sent); then BLOCK_SIZE data bytes
RECORD_HDR = const(9)
RECORD_SIZE = const(521)    # RECORD_HDR + BLOCK_SIZE
P_ACK = "<I"                # highest record lseq durably journaled
P_NAK = ""                  # empty; header ack = first seq wanted again
P_PEER_HELLO = "<BBII"      # role, node, incarnation, next lseq expected (secondary) / first lseq it will send (primary)
P_SUSPEND = "<B"            # reason (R_*); primary -> secondary, or a FAILED_OVER secondary's
                            # answer to the primary's stream (R_PEER_FAILED_OVER)
P_MARKER = "<IQ"            # n, T
P_JOIN = "<IQ"              # n, T: the secondary's volume is the cut at T once every copy before is written
P_H_WRITE = "<BI"           # vol, block; then BLOCK_SIZE data bytes
P_H_READ = "<BI"            # vol, block
P_H_STATUS = ""             # empty
P_H_COMMAND = "<BIQ"        # command (C_*), argument, second argument (e.g. FAILOVER: n, T)
P_H_REPLY = "<B"            # status (S_*); then a body that depends on the request
P_ERROR = "<BBH"            # error code (S_*), offending type, detail
# reply body to H_COMMAND(C_DIRTY_LIST): count, next block to ask for; then count x "<I" blocks
P_DIRTY_HEAD = "<HI"
DIRTY_MAX = const(100)
# reply body to H_STATUS (125 bytes):
P_STATUS_BODY = "<BBBBBBBBIQIIQIQIIIIIQiIIIIIIIIIIBI"
# role, node, copy_state, flags (ST_*), mode, policy, master (site master id, 0 = none), peer,
# ckpt_n, ckpt_t        primary: last checkpoint accepted; secondary: highest checkpoint held
# released_n            secondary: last RELEASE seen (primary: 0)
# applied_n, applied_t  secondary: last checkpoint applied to the volumes
# uip_n, uip_t          secondary: update in progress (0 = none)
# journal_depth, journal_capacity, writes_completed, records_sent (primary) / received (secondary),
# records_acked, seq_time_us, skew_us (last correction), clock_err_us (primary: bound on its
# clock's distance from the master's sequence time; 0xFFFFFFFF = unknown: no master followed,
# or a secondary), lag_us,
# frames_bad, records_rejected,
# dirty_blocks (change-bitmap bits set, all volumes), copy_done, copy_total (resync progress:
# copy records acknowledged by the peer / done + still to do, current copy-pending phase),
# pace_us (completion delay given to the last host write), pace_threshold (journal entries),
# pace_max_us, suspend_reason (R_*, 0 = none), heap_peak (bytes of heap the board's main loop
# saw in use at most; 0 = unknown)

# ---- status codes (H_REPLY.status and ERROR.code) ----------------------------
S_OK = const(0)
S_BUSY_UIP = const(1)
S_NOT_COPY_ACTIVE = const(2)
S_BAD_FRAME = const(3)
S_OUT_OF_RANGE = const(4)
S_UNKNOWN_VOLUME = const(5)
S_READ_ONLY = const(6)          # host write to a secondary volume
S_UNKNOWN_TYPE = const(7)
S_BAD_LENGTH = const(8)
S_JOURNAL_FULL = const(9)
S_NOT_READY = const(10)         # booting / must-complete recovery running
S_BAD_COMMAND = const(11)       # unknown or reserved command, or a bad argument
S_IO_ERROR = const(12)
S_BAD_STATE = const(13)         # a command of this board's role, not valid in the pair's current state
S_WRONG_ROLE = const(14)        # a command of the other role (e.g. START_COPY to a secondary)
S_FENCED = const(15)            # host write to a primary whose secondary failed over (fence_writes)

# ---- host commands (H_COMMAND.command) ---------------------------------------
C_START_COPY = const(1)
C_STOP_COPY = const(2)
C_SUSPEND = const(3)
C_RESUME = const(4)
C_FAILOVER = const(5)
C_FAILBACK = const(6)
C_SET_MODE = const(7)           # either role; argument: MODE_CLOCK or MODE_SYNC (saved, wins at boot)
C_SET_POLICY = const(8)         # secondary; argument: POLICY_*
C_REBOOT = const(9)             # reserved: not implemented (BAD_COMMAND)
C_DIRTY_LIST = const(10)        # argument: volume, second: first block -> marked blocks (P_DIRTY_HEAD)
C_MARK_DIRTY = const(11)        # argument: volume, second: block -> set its change-bitmap bit

# ---- roles, modes, states --------------------------------------------------
ROLE_PRIMARY = const(1)
ROLE_SECONDARY = const(2)

MODE_CLOCK = const(0)
MODE_CLOCKLESS = const(1)
MODE_SYNC = const(2)

POLICY_FREEZE = const(0)
POLICY_CONTINUE = const(1)

# copy (pair) states
CS_SIMPLEX = const(0)       # no copy
CS_PENDING = const(1)       # initial copy running
CS_DUPLEX = const(2)        # copy active and consistent
CS_SUSPENDED = const(3)
CS_RESIGNED = const(4)      # secondary left the group
CS_FAILED_OVER = const(5)   # secondary opened to the host

# status flags (STATUS body flags)
ST_MASTER = const(0x01)
ST_UIP = const(0x02)
ST_COPY_ACTIVE = const(0x04)
ST_FROZEN = const(0x08)
ST_MUST_COMPLETE = const(0x10)

# resign reasons
R_PEER_LOST = const(1)
R_OPERATOR = const(2)
R_ERROR = const(3)
R_JOURNAL_FULL = const(4)       # auto-suspend: the primary's journal could not hold the outage
R_PEER_FAILED_OVER = const(5)   # the secondary failed over (its SUSPEND notice to the primary)
