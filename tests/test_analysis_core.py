"""Analysis building blocks on synthetic tables with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from snntopo.analysis.features import groups_of, target_frame
from snntopo.analysis.models import grouped_splits
from snntopo.analysis.ranking import rank_agreement
from snntopo.analysis.regression import cross_validate, summarise_folds, summarise_importance
from snntopo.errors import TableError

METHODS = ["uniform", "er", "erk", "snip", "grasp", "synflow", "prospr"]


def grid(archs=("conv6", "resnet20"), sparsities=(0.6, 0.9, 0.98), seeds=(0, 1, 2)) -> pd.DataFrame:
    idx = pd.MultiIndex.from_product(
        [["cifar10"], list(archs), METHODS, list(sparsities), list(seeds)],
        names=["dataset", "arch", "method", "sparsity", "seed"],
    )
    return idx.to_frame(index=False)


def test_grouped_splits_never_separate_seeds_of_a_configuration() -> None:
    keys = grid()
    index = pd.MultiIndex.from_frame(keys)
    groups = groups_of(index)
    # independent truth: a configuration is the tuple without the seed
    config = list(zip(keys.dataset, keys.arch, keys.method, keys.sparsity, strict=True))
    splits = list(grouped_splits(groups, n_splits=5, n_repeats=3, seed=1))
    assert len(splits) == 15
    for sp in splits:
        train_cfg = {config[i] for i in sp.train}
        test_cfg = {config[i] for i in sp.test}
        assert not train_cfg & test_cfg
        assert len(sp.train) + len(sp.test) == len(keys)
    # every network is tested exactly once per repeat
    for r in range(3):
        tested = np.concatenate([sp.test for sp in splits if sp.repeat == r])
        assert sorted(tested) == list(range(len(keys)))
    # repeats reshuffle the group-to-fold assignment
    a = {frozenset(config[i] for i in sp.test) for sp in splits if sp.repeat == 0}
    b = {frozenset(config[i] for i in sp.test) for sp in splits if sp.repeat == 1}
    assert a != b


def test_grouped_splits_depend_on_seed_only() -> None:
    groups = groups_of(pd.MultiIndex.from_frame(grid()))
    s1 = [sp.test.tolist() for sp in grouped_splits(groups, 4, 2, seed=3)]
    s2 = [sp.test.tolist() for sp in grouped_splits(groups, 4, 2, seed=3)]
    s3 = [sp.test.tolist() for sp in grouped_splits(groups, 4, 2, seed=4)]
    assert s1 == s2
    assert s1 != s3


def _synthetic_sets(seed: int = 0):
    keys = grid()
    index = pd.MultiIndex.from_frame(keys)
    rng = np.random.default_rng(seed)
    y = pd.Series(rng.uniform(0.5, 0.95, len(keys)), index=index, name="accuracy")
    noise = pd.DataFrame(rng.normal(size=(len(keys), 3)), index=index, columns=["n1", "n2", "n3"])
    perfect = noise.assign(copy_of_target=y.to_numpy())
    return {"perfect": perfect, "noise": noise}, y


@pytest.mark.parametrize("model", ["ridge", "gbt"])
def test_feature_equal_to_target_scores_r2_one_and_ranks_first(model: str) -> None:
    sets, y = _synthetic_sets()
    res = cross_validate(
        sets, y, models=(model,), n_splits=4, n_repeats=1, seed=0,
        importance_set="perfect", importance_model=model, n_permutation_repeats=3,
    )  # fmt: skip
    reg = summarise_folds(res.folds, res.predictions, "accuracy")
    pooled = reg[(reg.scope == "pooled")].set_index("feature_set")
    assert pooled.loc["perfect", "r2_oof"] > 0.97
    assert pooled.loc["perfect", "r2_mean"] > 0.95
    assert pooled.loc["noise", "r2_oof"] < 0.2
    imp = summarise_importance(res.importance)
    top = imp[imp["rank"] == 1]
    assert set(top["feature"]) == {"copy_of_target"}
    assert len(top) == imp.groupby(["scope", "group"]).ngroups


def test_perfect_predictor_gives_tau_one_and_top1_agreement() -> None:
    keys = grid()
    rng = np.random.default_rng(0)
    acc = rng.uniform(0.5, 0.95, len(keys))
    pred = keys.assign(feature_set="oracle", model="m", scope="arch", y_true=acc, y_pred=acc)
    reversed_ = pred.assign(feature_set="reversed", y_pred=-acc)
    out = rank_agreement(pd.concat([pred, reversed_]), higher_is_better=True)
    oracle = out[out.feature_set == "oracle"]
    assert len(oracle) == 2 * 3  # arch x sparsity cells
    assert np.allclose(oracle["kendall_tau"], 1.0)
    assert (oracle["top1_agree"] == 1.0).all()
    assert (oracle["n_methods"] == 7).all()
    rev = out[out.feature_set == "reversed"]
    assert np.allclose(rev["kendall_tau"], -1.0)
    assert (rev["top1_agree"] == 0.0).all()


def test_ranking_of_drop_target_prefers_lowest_drop() -> None:
    keys = grid(archs=("conv6",), sparsities=(0.9,), seeds=(0,))
    drop = np.arange(7) / 100.0  # uniform has the smallest drop -> best
    pred = keys.assign(feature_set="f", model="m", scope="arch", y_true=drop, y_pred=drop)
    out = rank_agreement(pred, higher_is_better=False)
    assert out["best_method"].iloc[0] == "uniform"
    assert out["kendall_tau"].iloc[0] == pytest.approx(1.0)


def test_target_auto_uses_drop_only_with_dense_baselines() -> None:
    nets = grid(archs=("conv6",), sparsities=(0.9,), seeds=(0,)).assign(
        accuracy=0.8, dense_accuracy=0.9
    )
    y, name = target_frame(nets, "auto", "absolute")
    assert name == "absolute_drop"
    assert np.allclose(y, 0.1)
    y, name = target_frame(nets, "auto", "relative")
    assert np.allclose(y, 0.1 / 0.9)
    y, name = target_frame(nets.assign(dense_accuracy=np.nan), "auto", "absolute")
    assert name == "accuracy"
    with pytest.raises(TableError, match="dense_accuracy"):
        target_frame(nets.assign(dense_accuracy=np.nan), "drop", "absolute")


# ------------------------------------------------------------------ honest floors and transfer
def _curve_sets(seed: int = 0):
    """Accuracy a pure, strongly non-linear function of sparsity (plus tiny noise); a 'mge' set of
    pure noise and a 'layer_density' set holding the sparsity."""
    keys = grid(sparsities=(0.5, 0.8, 0.9, 0.95, 0.98))
    index = pd.MultiIndex.from_frame(keys)
    rng = np.random.default_rng(seed)
    s = keys["sparsity"].to_numpy()
    curve = {0.5: 0.90, 0.8: 0.89, 0.9: 0.86, 0.95: 0.75, 0.98: 0.40}  # a knee, not a line
    y = pd.Series([curve[v] for v in s], index=index) + rng.normal(0, 0.002, len(s))
    sets = {
        "sparsity": pd.DataFrame({"sparsity": s}, index=index),
        "mge": pd.DataFrame(rng.normal(size=(len(s), 4)), index=index, columns=list("abcd")),
        "layer_density": pd.DataFrame({"sparsity": s}, index=index),
    }
    return sets, y.rename("accuracy")


def test_sparsity_curve_interpolates_level_means() -> None:
    from snntopo.analysis.models import SparsityCurve

    X = np.array([[0.5], [0.5], [0.9], [0.9], [0.9]])
    y = np.array([0.8, 0.9, 0.1, 0.2, 0.3])
    m = SparsityCurve().fit(X, y)
    # hand values: level means 0.85 and 0.2; halfway between levels -> midpoint; clamped outside
    assert m.predict(np.array([[0.5], [0.7], [0.9], [0.99], [0.1]])) == pytest.approx(
        [0.85, 0.525, 0.2, 0.2, 0.85]
    )


def test_pure_sparsity_curve_floor_explains_everything_and_topology_gains_nothing() -> None:
    from snntopo.analysis.verdicts import regression_verdicts

    sets, y = _curve_sets()
    res = cross_validate(sets, y, models=("ridge", "gbt"), n_splits=5, n_repeats=1, seed=0,
                         importance_set=None)  # fmt: skip
    reg = summarise_folds(res.folds, res.predictions, "accuracy")
    arch = reg[reg.scope == "arch"]
    # the floor (curve or GBT on sparsity) explains the curve; a ridge linear in sparsity cannot
    assert (arch["floor_r2_oof"] > 0.99).all()
    assert set(arch["floor_model"]) <= {"curve", "gbt"}
    lin = arch[(arch.feature_set == "sparsity") & (arch.model == "ridge")]
    assert (lin["r2_oof"] < 0.95).all()
    # noise features gain nothing over the floor, in R2 or MAE
    mge = arch[arch.feature_set == "mge"]
    assert (mge["gain_r2_oof"] < 0.02).all()
    assert (mge["gain_mae_oof"] <= 0).all()
    v = regression_verdicts(reg, "cifar10")
    assert len(v) == 2 and not v["helps"].any()


def test_gain_over_floor_of_a_feature_equal_to_target_is_large() -> None:
    sets, y = _synthetic_sets()
    sets = {"sparsity": pd.DataFrame({"sparsity": y.index.get_level_values("sparsity")},
                                     index=y.index), **sets}  # fmt: skip
    res = cross_validate(sets, y, models=("gbt",), n_splits=4, n_repeats=1, seed=0,
                         importance_set=None)  # fmt: skip
    reg = summarise_folds(res.folds, res.predictions, "accuracy")
    perfect = reg[(reg.feature_set == "perfect") & (reg.scope == "pooled")].iloc[0]
    # y is independent of sparsity: the floor is ~0 (or below), the gain ~ the set's own R2
    assert perfect["floor_r2_oof"] < 0.1
    assert perfect["gain_r2_oof"] > 0.85
    assert perfect["gain_mae_oof"] > 0


def test_sparsity_only_model_has_no_ranking_tau() -> None:
    keys = grid()
    acc = np.random.default_rng(1).uniform(0.5, 0.95, len(keys))
    # a leave-out-shifted constant, as CV produces it: differs within a cell, but carries nothing
    pred = keys.assign(feature_set="sparsity", model="gbt", scope="arch", y_true=acc,
                       y_pred=0.7 - 0.01 * acc)  # fmt: skip
    out = rank_agreement(pred, higher_is_better=True)
    sp = out[out.feature_set == "sparsity"]
    assert len(sp) == 2 * 3
    assert sp["kendall_tau"].isna().all() and sp["top1_agree"].isna().all()


def _two_datasets(order_b: list[str] | None = None):
    """cifar10 and cifar100 tables, one arch; methods' quality = their position in METHODS
    (cifar100 on a different accuracy scale, in the order ``order_b`` when given)."""
    keys = pd.concat([grid(archs=("conv6",)), grid(archs=("conv6",)).assign(dataset="cifar100")],
                     ignore_index=True)  # fmt: skip
    quality = {m: i for i, m in enumerate(METHODS)}
    q_b = {m: i for i, m in enumerate(order_b)} if order_b else quality
    q = np.where(keys["dataset"] == "cifar10", keys["method"].map(quality),
                 keys["method"].map(q_b))  # fmt: skip
    acc = np.where(keys["dataset"] == "cifar10", 0.9, 0.6) - 0.3 * keys["sparsity"].to_numpy()
    return keys, acc + 0.01 * q, q


def test_naive_order_is_the_other_data_sets_measured_order() -> None:
    from snntopo.analysis.ranking import naive_orders

    keys, acc, _ = _two_datasets(order_b=METHODS[::-1])
    measured = keys.assign(y=acc).groupby(["dataset", "arch", "sparsity", "method"])["y"]
    orders = naive_orders(measured.mean().reset_index(), higher_is_better=True)
    assert set(orders["feature_set"]) == {"naive:dataset"}  # one arch: no naive:arch source
    # a reversed order on the other data set: naive tau -1 on both data sets, every cell
    pred = keys.assign(feature_set="f", model="m", scope="arch", y_true=acc, y_pred=acc)
    out = rank_agreement(pred, higher_is_better=True)
    nv = out[out.feature_set == "naive:dataset"]
    assert len(nv) == 2 * 3 and np.allclose(nv["kendall_tau"], -1.0)


def test_transfer_with_identical_order_gives_naive_tau_one() -> None:
    from snntopo.analysis.transfer import summarise_transfer, transfer

    keys, acc, q = _two_datasets()
    index = pd.MultiIndex.from_frame(keys)
    rng = np.random.default_rng(0)
    sets = {
        "sparsity": pd.DataFrame({"sparsity": keys["sparsity"].to_numpy()}, index=index),
        # a topometric equal to the method's quality (the same on both data sets)
        "mge": pd.DataFrame({"q": q + 0.0, "noise": rng.normal(size=len(q))}, index=index),
        "layer_density": pd.DataFrame(rng.normal(size=(len(q), 2)), index=index),
    }
    y = pd.Series(acc, index=index)
    cells = transfer(sets, y, True, models=("ridge",), seed=0)
    assert set(zip(cells.fit_dataset, cells.pred_dataset, strict=True)) == {
        ("cifar10", "cifar100"), ("cifar100", "cifar10")}  # fmt: skip
    naive = cells[cells.feature_set == "naive"]
    assert len(naive) == 2 * 3 and np.allclose(naive["kendall_tau"], 1.0)
    mge = cells[cells.feature_set == "mge"]
    assert np.allclose(mge["kendall_tau"], 1.0)
    assert not mge["beats_naive"].any()  # a tie with the naive order is no win
    summ = summarise_transfer(cells).set_index(["fit_dataset", "feature_set"])
    assert summ.loc[("cifar10", "mge"), "cells_beating_naive"] == 0
    assert summ.loc[("cifar10", "naive"), "kendall_tau_mean"] == pytest.approx(1.0)


def test_topology_helps_only_where_it_beats_every_floor() -> None:
    from snntopo.analysis.verdicts import ranking_cells, ranking_verdicts

    rows = []
    # tau of (mge, layer_density, naive:dataset) per arch: beats all / loses to density /
    # loses to the naive order / beats only a negative floor (chance is the floor then)
    cases = {"a1": (0.5, 0.2, 0.3), "a2": (0.5, 0.6, 0.1), "a3": (0.5, 0.1, 0.9),
             "a4": (0.1, -0.3, -0.2)}  # fmt: skip
    for arch, taus in cases.items():
        for fs, tau in zip(("mge", "layer_density", "naive:dataset"), taus, strict=True):
            naive = fs.startswith("naive")
            rows.append({"feature_set": fs, "model": "none" if naive else "ridge",
                         "scope": "none" if naive else "arch", "dataset": "cifar10",
                         "arch": arch, "sparsity": 0.9, "kendall_tau": tau})  # fmt: skip
    cells = ranking_cells(pd.DataFrame(rows))
    v = ranking_verdicts(cells).set_index("arch")
    assert v.loc["a1", "helps"] and v.loc["a4", "helps"]
    assert not v.loc["a2", "helps"] and not v.loc["a3", "helps"]
    assert v.loc["a2", "floor_name"] == "layer_density"
    assert v.loc["a3", "floor_name"] == "naive_dataset"
    assert v.loc["a4", "floor_name"] == "chance"
    assert v.loc["all", "cells_beating_all_floors"] == 2


def test_worker_processes_do_not_change_the_results() -> None:
    sets, y = _curve_sets()
    kw = {"models": ("ridge", "gbt"), "n_splits": 3, "n_repeats": 1, "seed": 0,
          "importance_set": "mge", "n_permutation_repeats": 2}  # fmt: skip
    one = cross_validate(sets, y, n_jobs=1, **kw)
    two = cross_validate(sets, y, n_jobs=2, **kw)
    pd.testing.assert_frame_equal(one.folds, two.folds)
    pd.testing.assert_frame_equal(one.predictions, two.predictions)
    pd.testing.assert_frame_equal(one.importance, two.importance)


def test_batched_permutation_importance_matches_scikit_learn() -> None:
    from sklearn.inspection import permutation_importance
    from sklearn.linear_model import LinearRegression

    from snntopo.analysis.regression import _permutation_importance

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = 2.0 * X[:, 0] + 0.5 * X[:, 1]  # the third column is ignored by the true model
    est = LinearRegression().fit(X, y)
    ours = _permutation_importance(est, X, y, n_repeats=30, seed=0)
    ref = permutation_importance(est, X, y, scoring="neg_mean_absolute_error", n_repeats=30,
                                 random_state=0).importances_mean  # fmt: skip
    assert ours[2] == pytest.approx(0.0, abs=1e-9)  # an unused column: no change at all
    assert ours[0] > ours[1] > 0
    assert ours == pytest.approx(ref, rel=0.1, abs=1e-9)  # same statistic, other shuffles
