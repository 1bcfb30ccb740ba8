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
