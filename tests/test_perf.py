"""`arcopy perf`: the section registry and the codec section (rates stubbed to keep it fast);
`arcopy bench` as its deprecated alias."""
import json

import pytest

from host_tools.perf import registry as perfreg
from host_tools import cli


def test_perf_codec_section(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(perfreg, "rate", lambda fn, quick, min_time=None: (fn(), 1.0)[1])
    out = tmp_path / "perf.json"
    assert cli.main(["perf", "codec", "--quick", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    rates, payload_only, eff = doc["sections"]["codec"]["tables"]
    impls = {r[2] for r in rates["rows"]}
    assert {"firmware codec", "construct", "construct compiled",
            "firmware codec, MicroPython (wasm)"} <= impls
    assert all(r[3] > 0 and r[4] > 0 for r in rates["rows"])
    assert len(payload_only["rows"]) == 4
    by_frame = {r[0]: r for r in eff["rows"]}
    assert by_frame["peer WRITE_BATCH, one record"][1:4] == [512, 554, 92.42]
    assert by_frame["peer WRITE_BATCH, full (7 records)"][1:4] == [3584, 3680, 97.39]
    assert by_frame["host write (H_WRITE, one block)"][2] == 537
    assert "frames per second" in capsys.readouterr().out


def test_unknown_section_is_an_error(capsys):
    assert cli.main(["perf", "no-such-section"]) == 2
    assert "unknown section" in capsys.readouterr().err


def test_list_and_registry(capsys):
    assert cli.main(["perf", "--list"]) == 0
    assert "codec" in capsys.readouterr().out
    with pytest.raises(ValueError):
        perfreg.section("codec", "again")(lambda quick: {})


def test_bench_is_a_deprecated_alias_of_perf(monkeypatch, capsys):
    monkeypatch.setattr(perfreg, "rate", lambda fn, quick, min_time=None: 1.0)
    assert cli.main(["bench", "--list"]) == 0
    captured = capsys.readouterr()
    assert "deprecated" in captured.err and "arcopy perf" in captured.err
    assert "codec" in captured.out
    assert "bench" not in cli.build_parser().format_help().split("COMMAND")[-1].split()


def test_old_rig_names_are_read_with_a_warning(tmp_path, monkeypatch, capsys):
    import json as _json
    from host_tools.rig import manager
    (tmp_path / "bench.json").write_text(_json.dumps({"format": "arcopy-bench", "pairs": 1, "boards": []}))
    monkeypatch.delenv("ARCOPY_RIG", raising=False)
    monkeypatch.setenv("ARCOPY_BENCH", str(tmp_path))
    assert manager.default_dir() == str(tmp_path)
    rig = manager.load(str(tmp_path))
    assert rig["pairs"] == 1
    err = capsys.readouterr().err
    assert "ARCOPY_RIG" in err and "old name of the rig file" in err
    manager.save(rig)
    assert (tmp_path / "rig.json").exists()


def test_perf_sweep_rows_and_the_engines_summary_check(monkeypatch):
    """`arcopy perf sweep`'s measurement: one row per engine run, the same summary digest from
    each; an engine that cannot start is a row of n/a with the reason, not a crash."""
    import sys
    from host_tools.perf import sweep as perfsweep
    rows, notes = perfsweep.measure(2, runs=(("local", 1), ("local", 2)))
    assert [r[:3] for r in rows] == [["local", 1, 2], ["local", 2, 2]]
    assert all(r[3] > 0 and r[5] > 0 for r in rows) and rows[0][-1] == rows[1][-1]
    assert notes == ["every engine gave the same summary (digest %s)" % rows[0][-1]]
    monkeypatch.setitem(sys.modules, "ray", None)
    rows, notes = perfsweep.measure(1, runs=(("ray", 1),))
    assert rows[0][3] is None and "install the ray extra" in notes[0]
