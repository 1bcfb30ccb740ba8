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


def test_bench_on_a_stored_bge_runs_every_family_that_applies(tmp_path):
    from snntopo.encode import build_graph, save_graph
    from snntopo.encode.layers import layer_spec
    from snntopo.metrics import FAMILIES, family_encoding_names
    from snntopo.models import build_model, prunable_parameters

    model = build_model("resnet20", width=0.25, input_size=8, seed=0)
    weights = {n: p.detach().numpy() for n, p in prunable_parameters(model)}
    graph = build_graph("rolled", layer_spec(model, (3, 8, 8)), weights)
    path = tmp_path / "rolled.npz"
    save_graph(path, graph)
    out = tmp_path / "bench"
    assert main(["bench", "--graph", str(path), "--out", str(out)]) == 0
    met = list(csv.DictReader((out / "metrics.csv").read_text().splitlines()))
    expected = [f for f in FAMILIES.names() if "rolled" in family_encoding_names(f)]
    assert [r["family"] for r in met] == expected and "ramanujan" in expected
    assert all(int(r["edges"]) == graph.n_edges for r in met)
