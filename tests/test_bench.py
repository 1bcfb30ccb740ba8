"""``snntopo bench --quick`` end to end: both CSVs written, one row per case, positive times."""

from __future__ import annotations

import csv

import pytest

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


def _bench_torchvision():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_torchvision.py"
    spec = importlib.util.spec_from_file_location("bench_torchvision", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_torchvision_sweep_models_are_the_cnns():
    """``--models cnn``: torchvision's classification builders less the twelve attention models
    (five ViTs, six Swins, MaxViT), each once."""
    import torchvision

    names = _bench_torchvision().cnn_models()
    every = torchvision.models.list_models(module=torchvision.models)
    attention = [n for n in every if n.startswith(("vit_", "swin_", "maxvit"))]
    assert len(attention) == 12 and len(names) == len(every) - 12 == len(set(names))
    assert not set(names) & set(attention)
    assert {"alexnet", "inception_v3", "squeezenet1_1", "convnext_tiny", "regnet_y_128gf"} <= set(
        names
    )


@pytest.mark.slow
def test_torchvision_sweep_runs_alexnet_at_its_smallest_input(tmp_path):
    """``--inputs smallest`` reruns a model the walker finds too small at 32x32 at the side it
    names: alexnet's feature maps, by hand, need 63 (conv 11/4 pad 2, three 3/2 max pools)."""
    out = tmp_path / "s.csv"
    bench = _bench_torchvision()
    assert bench.main(["--out", str(out), "--models", "alexnet", "--inputs", "smallest",
                       "--encodings", "rolled", "--families", "none",
                       "--workdir", str(tmp_path / "w")]) == 0  # fmt: skip
    rows = list(csv.DictReader(out.read_text().splitlines()))
    assert [(r["model"], r["input"], r["step"], r["status"]) for r in rows] == [
        ("alexnet", "63", "encode", "ok")
    ]
    assert int(rows[0]["edges"]) > 0 and float(rows[0]["peak_rss_mb"]) > 0


@pytest.mark.slow
def test_torchvision_graph_steps_give_the_encode_commands_graphs(tmp_path):
    """``--graph-steps`` (walk, mask, graphs in one process) builds the graphs ``snntopo encode``
    builds: squeezenet1_1's edges as docs/benchmarks.md records them from that command."""
    out = tmp_path / "g.csv"
    assert _bench_torchvision().main(["--out", str(out), "--models", "squeezenet1_1",
                                      "--inputs", "smallest", "--families", "none",
                                      "--graph-steps"]) == 0  # fmt: skip
    rows = list(csv.DictReader(out.read_text().splitlines()))
    assert [(r["step"], r["encoding"], r["status"]) for r in rows] == [
        ("walk", "", "ok"), ("mask", "", "ok"), ("graph", "mge", "ok"), ("graph", "rolled", "ok"),
        ("graph", "rolled-channel", "ok"),
    ]  # fmt: skip
    assert [int(r["edges"]) for r in rows[2:]] == [1_176_657, 72_467, 68_869]
    assert all(r["input"] == "32" and float(r["peak_rss_mb"]) > 0 for r in rows)
