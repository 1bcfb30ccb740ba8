"""``snntopo bench --quick`` end to end: both CSVs written, one row per case, positive times."""

from __future__ import annotations

import csv

from snntopo.cli import main


def test_bench_quick_writes_both_csvs(tmp_path, capsys):
    out = tmp_path / "bench"
    assert main(["bench", "--quick", "--out", str(out)]) == 0
    enc = list(csv.DictReader((out / "encode.csv").read_text().splitlines()))
    met = list(csv.DictReader((out / "metrics.csv").read_text().splitlines()))
    assert len(enc) == 1 and enc[0]["arch"] == "resnet20" and enc[0]["encoding"] == "mge"
    assert {r["family"] for r in met} >= {"local", "neighbourhood", "strength", "global"}
    for row in enc + met:
        assert float(row["seconds"]) > 0 and float(row["peak_rss_mb"]) > 0
        assert int(row["edges"]) == int(enc[0]["edges"]) > 0
        assert row["cpus"] and row["method"] == "erk"
    assert "wrote" in capsys.readouterr().out
