"""Predictor files are validated for meaning, not only shape: each defect is one line naming the
key; fit refuses what cannot be validated; the stored ridge equals scikit-learn's pipeline."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_predictor import synthetic

from snntopo.analysis.models import make_model
from snntopo.analysis.predictor import (
    FORMAT_VERSION,
    PredictorError,
    apply_linear,
    fit_linear,
    fit_predictor,
    load_predictor,
)
from snntopo.cli import main


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> dict:  # a valid predictor as parsed JSON
    d = tmp_path_factory.mktemp("good")
    synthetic(d / "tables", "exact")
    fit_predictor(d / "tables", d / "pred", mode="exact")
    return json.loads((d / "pred" / "predictor.json").read_text())


def _scope(g: dict) -> dict:
    return g["scopes"][0]


def _lin(g: dict) -> dict:
    return g["scopes"][0]["model"]["linear"]


def _swap_levels(g: dict) -> None:
    c = _scope(g)["model"]["curve"]
    c["levels"][0], c["levels"][1] = c["levels"][1], c["levels"][0]


MUTATIONS = {
    # name: (mutation, expected message)
    "intercept 1e400 (inf)": (
        lambda g: _lin(g).__setitem__("intercept", "__INF__"),
        "intercept: inf is not a finite number",
    ),
    "integer beyond float range": (
        lambda g: _scope(g).__setitem__("n_networks", 10**400),
        "n_networks: 10+ is not a finite number",
    ),
    "overflowing coefficients": (
        lambda g: _lin(g).__setitem__("coef", [1e308] * len(_lin(g)["coef"])),
        "coefficients overflow",
    ),
    "zero scale": (lambda g: _lin(g)["scale"].__setitem__(0, 0.0), "scale must be > 0"),
    "negative scale": (lambda g: _lin(g)["scale"].__setitem__(0, -1.0), "scale must be > 0"),
    "levels out of order": (_swap_levels, "strictly increasing"),
    "repeated level": (
        lambda g: _scope(g)["model"]["curve"]["levels"].__setitem__(
            1, _scope(g)["model"]["curve"]["levels"][0]
        ),
        "strictly increasing",
    ),
    "lower > upper": (
        lambda g: _scope(g).__setitem__("interval_halfwidth", -0.01),
        "lower > upper",
    ),
    "two scopes for one dataset/arch": (
        lambda g: g["scopes"].append(json.loads(json.dumps(_scope(g)))),
        "a second scope for cifar10/resnet20",
    ),
    "empty known_means": (
        lambda g: _scope(g).__setitem__("known_means", []),
        "known_means: expected a non-empty list",
    ),
    "flipped higher_is_better": (
        lambda g: g.__setitem__("higher_is_better", not g["higher_is_better"]),
        "higher_is_better: must be true for target 'accuracy'",
    ),
    "range with min > max": (
        lambda g: _scope(g)["feature_ranges"]["min"].__setitem__(0, 1e9),
        "needs min <= mean <= max",
    ),
    "known mean of an unknown method": (
        lambda g: _scope(g)["known_means"][0].__setitem__("method", "zz"),
        "'zz' is not one of",
    ),
    "coverage above 1": (
        lambda g: _scope(g)["validation"]["mge"].__setitem__("coverage", 1.5),
        "coverage: 1.5 out of range",
    ),
    "version 1 file": (lambda g: g.__setitem__("format_version", 1), "re-fit the predictor"),
}


@pytest.mark.parametrize("name", list(MUTATIONS))
def test_a_predictor_that_parses_but_means_nothing_is_refused(good, tmp_path, capsys, name):
    mutate, msg = MUTATIONS[name]
    g = json.loads(json.dumps(good))
    mutate(g)
    text = json.dumps(g).replace('"__INF__"', "1e400")  # parses as inf
    p = tmp_path / "predictor.json"
    p.write_text(text)
    with pytest.raises(PredictorError, match=msg):
        load_predictor(p)
    # through the CLI: one line on stderr, exit 2, no traceback
    f = tmp_path / "m.json"
    f.write_text("{}")
    assert main(["predict", "--predictor", str(p), str(f), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and msg.split(":")[0] in err
    assert not (tmp_path / "o").exists()


def test_deeply_nested_json_is_one_line(tmp_path, capsys) -> None:
    p = tmp_path / "predictor.json"
    p.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(PredictorError, match="nested too deeply"):
        load_predictor(p)


def test_fit_stores_each_features_training_range(tmp_path) -> None:
    import pandas as pd

    synthetic(tmp_path / "t", "exact")
    fit_predictor(tmp_path / "t", tmp_path / "p", mode="exact")
    doc = load_predictor(tmp_path / "p")
    assert doc["format_version"] == FORMAT_VERSION
    sc = _scope(doc)
    table = pd.read_csv(tmp_path / "t" / "mge.csv")
    for j, name in enumerate(sc["features"]):
        col = table[name].to_numpy()
        got = {k: sc["feature_ranges"][k][j] for k in ("min", "max", "mean", "std")}
        assert got == pytest.approx(
            {"min": col.min(), "max": col.max(), "mean": col.mean(), "std": col.std()}
        )


def test_fit_with_fewer_than_three_methods_is_a_clear_error(tmp_path, capsys) -> None:
    import pandas as pd

    synthetic(tmp_path / "t", "exact")
    for name in ("networks", "mge"):
        df = pd.read_csv(tmp_path / "t" / f"{name}.csv")
        df[df.method.isin(["m1", "m2"])].to_csv(tmp_path / "t" / f"{name}.csv", index=False)
    argv = ["fit", "--tables", str(tmp_path / "t"), "--mode", "exact", "--out", str(tmp_path / "p")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "at least 3 PaI methods" in err and "cifar10/resnet20 has 2 (m1, m2)" in err
    assert err.count("\n") == 1
    assert not (tmp_path / "p").exists()  # nothing half-written


def test_excluded_features_are_not_used_and_are_recorded(tmp_path) -> None:
    synthetic(tmp_path / "t", "exact")
    fit_predictor(tmp_path / "t", tmp_path / "p", mode="exact", exclude_features=["signal"])
    doc = load_predictor(tmp_path / "p")
    assert doc["excluded_features"] == ["signal"]
    assert doc["features"] == ["noise"] and _scope(doc)["features"] == ["noise"]
    # paper spellings name the same columns
    import pandas as pd

    mge = pd.read_csv(tmp_path / "t" / "mge.csv")
    mge["one_hop_nei_norm"] = np.arange(len(mge), dtype=float)
    mge.to_csv(tmp_path / "t" / "mge.csv", index=False)
    fit_predictor(tmp_path / "t", tmp_path / "q", mode="exact", exclude_features=["1-hop-nei"])
    doc = load_predictor(tmp_path / "q")
    assert doc["excluded_features"] == ["one_hop_nei_norm"]
    assert doc["features"] == ["noise", "signal"]
    # a name that is no column of the tables is a typo, not a no-op
    from snntopo.errors import TableError

    with pytest.raises(TableError, match="'sigal' is not an MGE column"):
        fit_predictor(tmp_path / "t", tmp_path / "r", mode="exact", exclude_features=["sigal"])


def test_the_default_exclusions_come_from_one_hook(tmp_path, monkeypatch) -> None:
    from snntopo.analysis.predictor import fit as fit_module

    synthetic(tmp_path / "t", "exact")
    fit_predictor(tmp_path / "t", tmp_path / "p0", mode="exact")
    assert load_predictor(tmp_path / "p0")["excluded_features"] == []
    monkeypatch.setattr(fit_module, "default_excluded_features", lambda tables, mode: ["signal"])
    assert main(["fit", "--tables", str(tmp_path / "t"), "--mode", "exact",
                 "--out", str(tmp_path / "p1")]) == 0  # fmt: skip
    assert load_predictor(tmp_path / "p1")["excluded_features"] == ["signal"]
    # an explicit (even empty) list replaces the default
    assert main(["fit", "--tables", str(tmp_path / "t"), "--mode", "exact",
                 "--exclude-features", "--out", str(tmp_path / "p2")]) == 0  # fmt: skip
    assert load_predictor(tmp_path / "p2")["features"] == ["noise", "signal"]


def test_the_stored_ridge_is_the_analysis_ridge() -> None:
    """apply_linear on the stored numbers equals scikit-learn's make_model('ridge') pipeline,
    missing values and heavy tails (clipping) included."""
    rng = np.random.default_rng(1)
    X = rng.lognormal(0, 3, (60, 4)) * rng.choice([-1, 1], (60, 4))
    X[rng.random(X.shape) < 0.1] = np.nan
    y = rng.normal(size=60) + 0.3 * np.nan_to_num(np.log1p(np.abs(X[:, 0])))
    params = fit_linear(X, y)
    Xt = rng.lognormal(0, 5, (20, 4))  # far outside: the clip matters
    Xt[0, 1] = np.nan
    ref = make_model("ridge", seed=0).fit(X, y).predict(Xt)
    assert apply_linear(params, Xt) == pytest.approx(ref, rel=1e-9, abs=1e-12)


def test_too_few_residuals_for_the_level_means_no_interval(tmp_path) -> None:
    """3 methods x 1 sparsity x 1 seed: 3 held-out residuals cannot give a 90 % interval
    (the ceil(0.9 * 4) = 4th smallest of 3), so predictions come without one, and say why."""
    import pandas as pd

    from snntopo.analysis.predictor import predict

    rows = [{"dataset": "cifar10", "arch": "resnet20", "method": m, "sparsity": 0.9, "seed": 0}
            for m in ("a", "b", "c")]  # fmt: skip
    t = tmp_path / "t"
    t.mkdir()
    keys = pd.DataFrame(rows)
    keys.assign(accuracy=[0.8, 0.82, 0.85]).to_csv(t / "networks.csv", index=False)
    keys.assign(signal=[1.0, 2.0, 3.0]).to_csv(t / "mge.csv", index=False)
    fit_predictor(t, tmp_path / "p", mode="exact")
    assert load_predictor(tmp_path / "p")["scopes"][0]["interval_halfwidth"] is None
    art = {"family": "local", "encodings": {"mge": {"mode": "exact", "network": {"signal": 2.0}}},
           "network": {**rows[0], "method": "new"}}  # fmt: skip
    f = tmp_path / "m.json"
    f.write_text(json.dumps(art))
    pred, _ = predict(tmp_path / "p", [str(f)])
    r = pred.iloc[0]
    assert np.isnan(r["lower"]) and np.isnan(r["measured_coverage"]) and r["extrapolation"] == ""
    assert r["interval_note"] == "too few held-out residuals for a 0.9 interval"
