"""`arcopy bench`: the section registry and the codec section (rates stubbed to keep it fast)."""
import json

import pytest

from host_tools.perf import registry as perfreg
from host_tools import cli


def test_bench_codec_section(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(perfreg, "rate", lambda fn, quick, min_time=None: (fn(), 1.0)[1])
    out = tmp_path / "bench.json"
    assert cli.main(["bench", "codec", "--quick", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    rates, payload_only, eff = doc["sections"]["codec"]["tables"]
    impls = {r[2] for r in rates["rows"]}
    assert {"firmware codec", "construct", "construct compiled",
            "firmware codec, MicroPython (wasm)"} <= impls
    assert all(r[3] > 0 and r[4] > 0 for r in rates["rows"])
    assert len(payload_only["rows"]) == 4
    by_frame = {r[0]: r for r in eff["rows"]}
    assert by_frame["peer WRITE_BATCH, one record"][1:4] == [512, 552, "92.75%"]
    assert by_frame["peer WRITE_BATCH, full (7 records)"][1:4] == [3584, 3738, "95.88%"]
    assert by_frame["host write (H_WRITE, one block)"][2] == 537
    assert "frames per second" in capsys.readouterr().out


def test_unknown_section_is_an_error(capsys):
    assert cli.main(["bench", "no-such-section"]) == 2
    assert "unknown section" in capsys.readouterr().err


def test_list_and_registry(capsys):
    assert cli.main(["bench", "--list"]) == 0
    assert "codec" in capsys.readouterr().out
    with pytest.raises(ValueError):
        perfreg.section("codec", "again")(lambda quick: {})
