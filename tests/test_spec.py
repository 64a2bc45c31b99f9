"""protocol/SPEC.md agrees with the construct definitions: every payload table (offsets, widths,
field names, types), the message type table, flags, status codes and host commands."""
import os
import re

import pytest

from protocol import frames as F

SPEC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "protocol", "SPEC.md")
WIDTH = {"u8": 1, "u16": 2, "u32": 4, "u64": 8, "i32": 4, "count": 1}


@pytest.fixture(scope="module")
def spec():
    with open(SPEC) as f:
        return f.read()


def table_after(text, heading):
    """Rows (lists of cells) of the first markdown table after the line starting with heading."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(heading))
    rows = []
    for line in lines[start + 1:]:
        if line.startswith("#"):
            break
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not set(cells[0]) <= set("-") and cells[0] not in ("Offset", "Code", "Bit", "Field"):
                rows.append(cells)
        elif rows:
            break
    return rows


def expected_rows(struct):
    out, off = [], 0
    for name, kind in F.field_kinds(struct):
        if kind in WIDTH:
            out.append((off, str(WIDTH[kind]), name, kind))
            off += WIDTH[kind]
        elif kind.startswith("bytes") and kind != "bytes":
            out.append((off, kind[5:], name, "bytes"))
            off += int(kind[5:])
        elif kind == "bytes":
            out.append((off, "rest", name, "bytes"))
    return out


@pytest.mark.parametrize("name", list(F.MESSAGES))
def test_payload_table(spec, name):
    code, struct, links = F.MESSAGES[name]
    heading = "### 0x%02X %s (`%s`)" % (code, name.upper(), name)
    assert heading in spec, "missing section " + heading
    section = spec[spec.index(heading):]
    section = section[:section.index("\n### ", 1)] if "\n### " in section[1:] else section
    assert "Link: %s." % ", ".join(links) in section
    want = expected_rows(struct)       # WRITE_BATCH: its head (the records and marker rows follow it)
    rows = [r for r in table_after(spec, heading) if r[2] not in ("records", "marker")]
    assert [(int(r[0]), r[1], r[2], r[3]) for r in rows] == want
    if not want:
        assert "Empty payload" in section


def test_record_and_status_tables(spec):
    rec = table_after(spec, "#### RECORD")
    assert [(int(r[0]), r[1], r[2], r[3]) for r in rec] == expected_rows(F.RECORD)
    status = table_after(spec, "### Status body")
    assert [(int(r[0]), r[1], r[2], r[3]) for r in status] == expected_rows(F.STATUS_BODY)


def test_type_table(spec):
    rows = table_after(spec, "## 3. Message types")
    assert {int(r[0], 16): r[1] for r in rows} == {c: n.upper() for n, (c, _, _) in F.MESSAGES.items()}
    for r in rows:
        links = F.MESSAGES[r[1].lower()][2]
        assert r[2] == ", ".join(links)


def test_code_tables(spec):
    assert {int(r[0], 16): r[1] for r in table_after(spec, "## 2. Flags")} == {v: k for k, v in F.FLAGS.items()}
    assert {int(r[0]): r[1] for r in table_after(spec, "## 5. Status codes")} == {v: k for k, v in F.STATUS.items()}
    assert {int(r[0]): r[1] for r in table_after(spec, "## 6. Host commands")} == {v: k for k, v in F.COMMANDS.items()}


def test_example_frame(spec):
    block = spec[spec.index("Example: CHECKPOINT"):]
    block = block[block.index("```") + 3:]
    block = block[:block.index("```")]
    hexes = "".join(re.findall(r"^((?:[0-9a-f]{2} )+)", block, re.M)).split()
    frame = bytes.fromhex("".join(hexes))
    parsed = F.parse_frame(frame)
    assert (parsed["name"], parsed["src"], parsed["dst"], parsed["seq"]) == ("checkpoint", 1, 255, 5)
    assert parsed["payload"] == {"n": 7, "t": 1000}
