import pytest
from hypothesis import given, settings, strategies as st

from host_tools.check import payload as P


def test_block_size_matches_wire():
    from firmware import wire
    assert P.BLOCK_SIZE == wire.BLOCK_SIZE == 512


def test_roundtrip_fields():
    data = P.encode(7, 12345, 3, 1, 999, issue_us=10 ** 12, bver=4, chain=55, step=2, dep=12344,
                    tag="commit")
    assert len(data) == 512
    p = P.decode(data)
    assert (p.writer, p.serial, p.pair, p.vol, p.block) == (7, 12345, 3, 1, 999)
    assert (p.issue_us, p.bver, p.chain, p.step, p.dep, p.tag) == \
        (10 ** 12, 4, 55, 2, 12344, "commit")
    assert p.address == (3, 1, 999)
    assert P.decode(P.encode(1, 1, 0, 0, 0)).dep is None


def test_deterministic_and_distinct():
    a = P.encode(1, 5, 0, 0, 7)
    assert a == P.encode(1, 5, 0, 0, 7)
    b = P.encode(1, 6, 0, 0, 7)
    # the filler differs too, not only the header
    assert a[P.HEADER_SIZE:P.CRC_OFF] != b[P.HEADER_SIZE:P.CRC_OFF]


def test_zero_block_is_empty():
    assert P.decode(bytes(512)) is None
    assert P.inspect(bytearray(512)).status == P.EMPTY


def test_bad_arguments():
    with pytest.raises(ValueError):
        P.encode(1, 0, 0, 0, 0)
    with pytest.raises(ValueError):
        P.encode(1, 1, 70000, 0, 0)
    with pytest.raises(ValueError):
        P.encode(1, 1, 0, 0, 0, tag="nope")


@settings(max_examples=200, deadline=None)
@given(cut=st.integers(min_value=1, max_value=511), old_zero=st.booleans())
def test_torn_block_never_valid(cut, old_zero):
    old = bytes(512) if old_zero else P.encode(1, 1, 0, 0, 5, bver=1)
    new = P.encode(1, 2, 0, 0, 5, bver=2)
    torn = new[:cut] + old[cut:]
    if torn == old:             # the prefix written equals the old bytes: nothing changed
        assert P.inspect(torn).status in (P.EMPTY, P.VALID)
        return
    st_ = P.inspect(torn)
    assert st_.status in (P.CORRUPT, P.FOREIGN)
    with pytest.raises(P.CorruptBlock) as ei:
        P.decode(torn)
    assert ei.value.status == st_.status


def test_flipped_bit_is_corrupt():
    data = bytearray(P.encode(1, 3, 0, 0, 1))
    data[300] ^= 0x10
    st_ = P.inspect(bytes(data))
    assert st_.status == P.CORRUPT and "CRC" in st_.reason


def test_foreign_and_wrong_length():
    assert P.inspect(b"\x01" + bytes(511)).status == P.FOREIGN
    assert P.inspect(bytes(100)).status == P.CORRUPT
