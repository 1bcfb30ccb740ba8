"""The accuracy predictor: leave-one-method-out validation on synthetic tables with a known answer,
the fit -> predict round trip on metric artifacts, mode checks, and safe loading."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from snntopo.analysis.predictor import (
    PredictorError,
    fit_predictor,
    load_predictor,
    predict,
)
from snntopo.cli import main
from snntopo.errors import ConfigError

DATA = Path(__file__).parent / "data" / "paper_cifar10"
METHODS = ["m1", "m2", "m3", "m4", "m5", "m6"]
SPARSITIES = [0.6, 0.8, 0.9, 0.95]
CURVE = {0.6: 0.90, 0.8: 0.88, 0.9: 0.84, 0.95: 0.78}


def slog(z):
    return np.sign(z) * np.log1p(np.abs(z))


def synthetic(d: Path, kind: str, seed: int = 0) -> pd.DataFrame:
    """Canonical tables: accuracy = curve(sparsity) + 0.02 * slog(signal) ('exact'), or a method
    effect plus noise that no feature sees ('noise'). Features: ``signal``, ``noise``."""
    rng = np.random.default_rng(seed)
    keys = pd.MultiIndex.from_product(
        [["cifar10"], ["resnet20"], METHODS, SPARSITIES, [0, 1, 2]],
        names=["dataset", "arch", "method", "sparsity", "seed"],
    ).to_frame(index=False)
    n = len(keys)
    base = keys["sparsity"].map(CURVE).to_numpy()
    signal = rng.normal(0, 3, n)
    if kind == "exact":
        acc = base + 0.02 * slog(signal)
    else:
        effect = keys["method"].map(dict(zip(METHODS, rng.normal(0, 0.02, 6), strict=True)))
        acc = base + effect.to_numpy() + rng.normal(0, 0.005, n)
    d.mkdir(parents=True, exist_ok=True)
    keys.assign(accuracy=acc).to_csv(d / "networks.csv", index=False)
    keys.assign(signal=signal, noise=rng.normal(size=n)).to_csv(d / "mge.csv", index=False)
    return keys.assign(accuracy=acc, signal=signal)


def fitted_with_new_metrics(d: Path) -> None:
    """In ``d``: synthetic 'exact' tables (``tables/``), a predictor fit on them (``pred/``) and
    one metric file of a new method to predict (``m.json``); the fixture of the fuzz and red-team
    suites."""
    import json

    from snntopo.analysis.predictor import fit_predictor

    synthetic(d / "tables", "exact")
    fit_predictor(d / "tables", d / "pred", mode="exact")
    metrics = {
        "family": "local",
        "encodings": {"mge": {"mode": "exact", "network": {"signal": 1.5, "noise": 0.1}}},
        "network": {"dataset": "cifar10", "arch": "resnet20", "method": "new", "sparsity": 0.9,
                    "seed": 0},
    }  # fmt: skip
    (d / "m.json").write_text(json.dumps(metrics))


@pytest.fixture(scope="module")
def exact_fit(tmp_path_factory):
    d = tmp_path_factory.mktemp("exact")
    truth = synthetic(d / "tables", "exact")
    paths = fit_predictor(d / "tables", d / "pred", mode="exact")
    return d, truth, paths


def test_lomo_finds_a_feature_that_determines_accuracy(exact_fit) -> None:
    _, _, paths = exact_fit
    s = pd.read_csv(paths["lomo_summary"]).set_index("predictor")
    assert s.loc["mge", "mae"] < 1e-3
    assert s.loc["sparsity", "mae"] > 0.01  # the signal moves accuracy by ~0.02 per unit
    assert s.loc["mge", "rank_exact"] == 1.0  # every held-out method ranked right everywhere
    assert "layer_density" not in s.index  # no layer table: that baseline is absent, not faked
    v = pd.read_csv(paths["lomo_verdicts"])
    assert bool(v["mge_beats_baselines_mae"].iloc[0])


def test_lomo_does_not_credit_a_pure_noise_feature(tmp_path: Path) -> None:
    synthetic(tmp_path / "tables", "noise", seed=3)
    paths = fit_predictor(tmp_path / "tables", tmp_path / "pred", mode="exact")
    s = pd.read_csv(paths["lomo_summary"]).set_index("predictor")
    # the held-out method's effect is invisible to every feature: no gain over sparsity alone
    assert s.loc["mge", "mae"] >= 0.95 * s.loc["sparsity", "mae"]
    per = pd.read_csv(paths["lomo"])
    per = per[per.predictor == "mge"]
    # coverage measured on held-out methods, with the width computed without them
    assert per["coverage"].between(0, 1).all()


def artifact(path: Path, keys: dict, values: dict, mode: str | None = "exact") -> Path:
    res = {"family": "local", "encoding": "mge", "network": values, "layers": []}
    if mode is not None:
        res["mode"] = mode
    doc = {"family": "local", "encodings": {"mge": res}, "network": keys}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def test_predict_a_new_method_and_its_rank(exact_fit, tmp_path: Path) -> None:
    d, truth, _ = exact_fit
    files, expect = [], []
    for i, sp in enumerate(SPARSITIES):
        z = [4.0, -4.0, 0.5, 30.0][i]
        keys = {"dataset": "cifar10", "arch": "resnet20", "method": "newpai", "sparsity": sp,
                "seed": 0}  # fmt: skip
        files.append(artifact(tmp_path / f"n{i}/metrics/local.json", keys,
                              {"signal": z, "noise": 0.0}))  # fmt: skip
        expect.append(CURVE[sp] + 0.02 * slog(z))
    pred, ranks = predict(d / "pred", [str(f) for f in files])
    assert pred["predicted"].to_numpy() == pytest.approx(expect, abs=2e-3)
    # signal = 30 lies far above the training signals (normal, sd 3): an extrapolation, no interval
    sig = truth["signal"].to_numpy()
    assert sig.max() < 30
    inside = pred["sparsity"] != 0.95
    assert (pred.loc[~inside, "extrapolation"] == "signal").all()
    assert pred.loc[~inside, ["lower", "upper", "measured_coverage"]].isna().all().all()
    sds = (30 - sig.max()) / sig.std()
    assert pred.loc[~inside, "max_sd_outside"].iloc[0] == pytest.approx(sds, rel=1e-6)
    ok = pred[inside]
    assert (ok["extrapolation"] == "").all() and ok["measured_coverage"].between(0, 1).all()
    assert (ok["lower"] <= ok["predicted"]).all() and (ok["upper"] >= ok["predicted"]).all()
    means = truth.groupby(["method", "sparsity"])["accuracy"].mean()
    for sp, value in zip(SPARSITIES, expect, strict=True):
        better = int((means.xs(sp, level="sparsity") > value).sum())
        assert ranks.set_index("sparsity").loc[sp, "rank"] == better + 1
    assert (ranks["among"] == 7).all()
    assert (ranks.set_index("sparsity")["extrapolation"] == ["", "", "", "signal"]).all()


def test_a_namesake_is_ranked_among_all_known_methods(exact_fit, tmp_path: Path) -> None:
    """A new mask of a method the predictor knows (m3) is ranked among all 6 known methods, the
    known m3 included: 'among 7', not 'among 6'."""
    d, truth, _ = exact_fit
    means = truth.groupby(["method", "sparsity"])["accuracy"].mean()
    # the known m3's own signal at 0.9: the new mask sits where the known m3 sits
    z = float(truth[(truth.method == "m3") & (truth.sparsity == 0.9)]["signal"].median())
    keys = {"dataset": "cifar10", "arch": "resnet20", "method": "m3", "sparsity": 0.9, "seed": 0}
    f = artifact(tmp_path / "n/metrics/local.json", keys, {"signal": z, "noise": 0.0})
    _, ranks = predict(d / "pred", [str(f)])
    r = ranks.iloc[0]
    assert r["among"] == 7 and r["label"] == "m3 (new)"
    order = r["order_best_first"].split(" > ")
    assert sorted(order) == sorted([*METHODS, "m3 (new)"])
    value = CURVE[0.9] + 0.02 * slog(z)
    better = int((means.xs(0.9, level="sparsity") > value).sum())
    assert r["rank"] == better + 1 and order.index("m3 (new)") == better


def test_metrics_of_another_mode_are_refused(exact_fit, tmp_path: Path) -> None:
    d, _, _ = exact_fit
    keys = {"dataset": "cifar10", "arch": "resnet20", "method": "x", "sparsity": 0.9, "seed": 0}
    f = artifact(tmp_path / "a/metrics/local.json", keys, {"signal": 1.0, "noise": 0}, "reference")
    with pytest.raises(PredictorError, match="mode 'reference'.*mode 'exact'"):
        predict(d / "pred", [str(f)])
    g = artifact(tmp_path / "b/metrics/local.json", keys, {"signal": 1.0, "noise": 0}, None)
    with pytest.raises(PredictorError, match="records no encoding mode"):
        predict(d / "pred", [str(g)])
    h = artifact(tmp_path / "c/metrics/local.json", {**keys, "arch": "conv6"}, {"signal": 1.0})
    with pytest.raises(PredictorError, match="no model for cifar10/conv6"):
        predict(d / "pred", [str(h)])


def test_mode_is_required_for_canonical_and_fixed_for_paper_tables(tmp_path: Path) -> None:
    synthetic(tmp_path / "t", "exact")
    with pytest.raises(ConfigError, match="--mode"):
        fit_predictor(tmp_path / "t", tmp_path / "p")
    with pytest.raises(ConfigError, match="reference"):
        fit_predictor(DATA, tmp_path / "p", mode="exact")
    assert not (tmp_path / "p").exists()


class Payload:
    """Unpickling this would create a file: the proof that code ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_untrusted_predictor_files_cannot_run_code(exact_fit, tmp_path: Path, monkeypatch) -> None:
    d, _, _ = exact_fit
    marker = tmp_path / "pwned"
    bad = tmp_path / "pickled" / "predictor.json"
    bad.parent.mkdir()
    bad.write_bytes(pickle.dumps(Payload(str(marker))))
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("pickle used"))
    monkeypatch.setattr(pickle, "load", lambda *a, **k: pytest.fail("pickle used"))
    with pytest.raises(PredictorError, match="not a JSON predictor"):
        load_predictor(bad.parent)
    assert not marker.exists()
    good = json.loads((d / "pred" / "predictor.json").read_text())
    for mutate, msg in (
        (lambda g: g.update({"py/object": "os.system"}), "unknown keys"),
        (lambda g: g["scopes"][0]["model"]["linear"].update({"__reduce__": "x"}), "unknown keys"),
        (lambda g: g["scopes"][0]["model"]["linear"].__setitem__("coef", "rm -rf"), "list"),
        (lambda g: g.__setitem__("format", "pickle"), "format"),
    ):
        g = json.loads(json.dumps(good))
        mutate(g)
        p = tmp_path / "m" / "predictor.json"
        p.parent.mkdir(exist_ok=True)
        p.write_text(json.dumps(g))
        with pytest.raises(PredictorError, match=msg):
            load_predictor(p)
    p.write_text(json.dumps(good).replace('"intercept": ', '"intercept": NaN, "x": ', 1))
    with pytest.raises(PredictorError, match="JSON"):
        load_predictor(p)
    assert load_predictor(d / "pred")["format"] == "snntopo-predictor"


def test_cli_fit_and_predict_on_the_shared_cifar10_tables(tmp_path: Path, capsys) -> None:
    assert main(["fit", "--tables", str(DATA), "--out", str(tmp_path / "pred")]) == 0
    doc = load_predictor(tmp_path / "pred")
    assert doc["encoding_mode"] == "reference" and doc["tables_layout"] == "paper"
    assert {(s["dataset"], s["arch"]) for s in doc["scopes"]} == {
        ("cifar10", "conv6"), ("cifar10", "resnet20")}  # fmt: skip
    # a published ResNet-20 network's metrics, as a metric artifact with our metric names
    from snntopo.analysis.predictor import PAPER_MGE_TO_CANONICAL

    row = pd.read_csv(DATA / "graph_metrics/unrolled/unrolled-CIFAR-10.csv.gz").iloc[0]
    vals = {PAPER_MGE_TO_CANONICAL[k.replace("-", "_")]: float(row[k]) for k in row.index
            if k.replace("-", "_") in PAPER_MGE_TO_CANONICAL}  # fmt: skip
    keys = {"dataset": "cifar10", "arch": "conv6", "method": "newpai", "sparsity": 0.98,
            "seed": 0}  # fmt: skip
    f = artifact(tmp_path / "net/metrics/local.json", keys, vals, "reference")
    out = tmp_path / "out"
    assert main(["predict", "--predictor", str(tmp_path / "pred"), str(tmp_path / "net"),
                 "--out", str(out)]) == 0  # fmt: skip
    pred = pd.read_csv(out / "predictions.csv")
    assert len(pred) == 1 and 0 < pred["predicted"].iloc[0] < 1
    assert pred["measured_coverage"].between(0, 1).all()
    assert (out / "predictions.html").exists() and (out / "ranks.csv").exists()
    assert f.exists()
    assert main(["predict", "--predictor", str(tmp_path / "nope"), str(f)]) == 2
    assert "cannot read predictor" in capsys.readouterr().err
