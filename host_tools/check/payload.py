"""Self-describing 512-byte block contents for host write workloads.

Every block a workload writes says who wrote it and which write it is, so that a
recovered volume can be read back and each visible block mapped to exactly one
entry of the workload log (see ``host_tools/check/checker.py``).

Layout (little-endian, 512 bytes)::

    off size field
      0   4  magic       b"ARCW"
      4   1  fmt         FORMAT_VERSION (1)
      5   1  tag         TAG_* : role of the write in its pattern (log, data, commit, ...)
      6   2  writer      writer id (one workload run / host process)
      8   8  serial      the write id, unique within the writer's log (>= 1)
     16   2  pair        pair (subsystem) index the write was sent to
     18   2  vol         volume number on that subsystem
     20   4  block       block number in that volume
     24   4  bver        per-block version: 1 for the first write of this block, 2 ...
     28   4  chain       chain / transaction number the write belongs to
     32   2  step        position of the write in its chain (0-based)
     34   8  issue_us    issue time in microseconds (informative only)
     42   8  dep         id of the write this one waited for (0 = none)
     50 458  filler      SHAKE-128 of bytes 0..49: deterministic from the header
    508   4  crc         CRC-32 (zlib) of bytes 0..507

The CRC covers the whole block, so a block torn by a power cut (a prefix of the new
contents over the old ones) fails it. The filler makes every block different
everywhere, so that a tear at any offset changes the bytes.

``decode`` returns None for an all-zero (never written) block, a ``Payload`` for a
valid one, and raises ``CorruptBlock`` for anything else; ``inspect`` gives the same
answer without raising.

Standard library only.
"""
import hashlib
import struct
import zlib
from collections import namedtuple

BLOCK_SIZE = 512            # equals firmware/wire.py BLOCK_SIZE (a test checks it)
MAGIC = b"ARCW"
FORMAT_VERSION = 1

_HDR = struct.Struct("<4sBBHQHHIIIHQQ")
HEADER_SIZE = _HDR.size     # 50
CRC_OFF = BLOCK_SIZE - 4
FILLER_SIZE = CRC_OFF - HEADER_SIZE
ZERO_BLOCK = bytes(BLOCK_SIZE)
_CRC = struct.Struct("<I")
_pack, _pack_crc, _shake, _crc32 = _HDR.pack, _CRC.pack, hashlib.shake_128, zlib.crc32

# write roles (the ``tag`` field)
TAG_PLAIN = 0
TAG_LOG = 1       # ims: log record (intent to commit)
TAG_DATA = 2      # ims: database update
TAG_COMMIT = 3    # ims: commit record
TAG_HOT = 4       # hot-block overwrite
TAG_SEQ = 5       # sequential write
TAG_NAMES = {TAG_PLAIN: "plain", TAG_LOG: "log", TAG_DATA: "data",
             TAG_COMMIT: "commit", TAG_HOT: "hot", TAG_SEQ: "seq"}
TAG_CODES = {v: k for k, v in TAG_NAMES.items()}

# block states returned by inspect()
EMPTY = "empty"        # all zeros: never written
VALID = "valid"        # a payload whose CRC and filler check
CORRUPT = "corrupt"    # starts with the payload magic but fails a check (torn, damaged)
FOREIGN = "foreign"    # neither zeros nor a payload (garbage, or a tear shorter than the magic)


_PAYLOAD_FIELDS = "writer serial pair vol block bver chain step issue_us dep tag fmt"


class Payload(namedtuple("Payload", _PAYLOAD_FIELDS)):
    """Decoded header of a valid payload block. ``dep`` is None when the write had none;
    ``tag`` is the tag's name (``"log"``, ``"data"``, ...), or its number if unknown."""
    __slots__ = ()

    @property
    def address(self):
        return (self.pair, self.vol, self.block)


class BlockState(namedtuple("BlockState", "status payload reason")):
    """Result of ``inspect``: ``status`` is EMPTY, VALID, CORRUPT or FOREIGN; ``payload`` is
    the ``Payload`` when VALID, else None; ``reason`` explains a CORRUPT/FOREIGN status."""
    __slots__ = ()


class CorruptBlock(ValueError):
    """A block that is neither all zeros nor a valid payload."""

    def __init__(self, status, reason):
        ValueError.__init__(self, "%s block: %s" % (status, reason))
        self.status = status
        self.reason = reason


def _tag_code(tag):
    if isinstance(tag, int):
        return tag
    try:
        return TAG_CODES[tag]
    except KeyError:
        raise ValueError("unknown payload tag %r" % (tag,))


def encode(writer, serial, pair, vol, block, issue_us=0, bver=0, chain=0, step=0,
           dep=None, tag=TAG_PLAIN):
    """Build the 512-byte contents of one write. ``serial`` (the write id) must be >= 1;
    ``tag`` is a TAG_* number or its name. Fully deterministic in its arguments."""
    if serial < 1:
        raise ValueError("write serial must be >= 1 (0 means 'no dependency')")
    code = TAG_CODES.get(tag) if tag.__class__ is str else None     # a name: the usual case
    try:
        hdr = _pack(MAGIC, FORMAT_VERSION, _tag_code(tag) if code is None else code, writer,
                    serial, pair, vol, block, bver, chain, step, issue_us, dep or 0)
    except struct.error as e:
        raise ValueError("payload field out of range: %s" % e)
    body = hdr + _shake(hdr).digest(FILLER_SIZE)
    return body + _pack_crc(_crc32(body) & 0xFFFFFFFF)


def inspect(data):
    """Classify a block's contents without raising; see ``BlockState``."""
    data = bytes(data)
    if len(data) != BLOCK_SIZE:
        return BlockState(CORRUPT, None, "block is %d bytes, expected %d" % (len(data), BLOCK_SIZE))
    if data == ZERO_BLOCK:
        return BlockState(EMPTY, None, "")
    if data[:4] != MAGIC:
        return BlockState(FOREIGN, None, "not a payload (no magic; garbage or a short tear)")
    if _CRC.unpack_from(data, CRC_OFF)[0] != zlib.crc32(data[:CRC_OFF]) & 0xFFFFFFFF:
        return BlockState(CORRUPT, None, "payload CRC mismatch (torn or damaged block)")
    (_magic, fmt, tag, writer, serial, pair, vol, block, bver, chain, step, issue_us,
     dep) = _HDR.unpack_from(data, 0)
    if fmt != FORMAT_VERSION:
        return BlockState(CORRUPT, None, "unknown payload format version %d" % fmt)
    if data[HEADER_SIZE:CRC_OFF] != hashlib.shake_128(data[:HEADER_SIZE]).digest(FILLER_SIZE):
        return BlockState(CORRUPT, None, "filler does not match the header")
    if serial < 1:
        return BlockState(CORRUPT, None, "payload carries write serial 0")
    p = Payload(writer, serial, pair, vol, block, bver, chain, step, issue_us, dep or None,
                TAG_NAMES.get(tag, tag), fmt)
    return BlockState(VALID, p, "")


def decode(data):
    """``Payload`` for a valid block, None for an all-zero block; raises ``CorruptBlock``
    (with ``.status`` CORRUPT or FOREIGN and a ``.reason``) for anything else."""
    st = inspect(data)
    if st.status == VALID:
        return st.payload
    if st.status == EMPTY:
        return None
    raise CorruptBlock(st.status, st.reason)
