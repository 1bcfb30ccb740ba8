"""Guarantees, config-time rejection: configs that used to pass the check and then fail after every
training job (or silently merge / overwrite things) now stop before the first job, with one line
naming the file, the key and the value."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import yaml

from snntopo.config import MAX_SEED, check_config
from snntopo.errors import ConfigError
from snntopo.names import sparsity_tag
from snntopo.workflow import sparse_grid

REPO = Path(__file__).resolve().parents[1]
SRC = "config/demo.yaml"


@pytest.fixture(scope="module")
def demo() -> dict:
    return yaml.safe_load((REPO / "config" / "demo.yaml").read_text())


def _rejects(cfg: dict, *fragments: str) -> str:
    with pytest.raises(ConfigError) as err:
        check_config(cfg, source=SRC)
    msg = str(err.value)
    assert msg.startswith(SRC), msg
    for frag in fragments:
        assert frag in msg, (frag, msg)
    return msg


@pytest.mark.parametrize(
    ("value", "tag"),
    [(0.9, "0.9"), (0.9000001, "0.9000001"), (1e-05, "0.00001"), (0.0, "0"), (0.98, "0.98")],
)
def test_sparsity_tag_is_exact_and_matches_the_wildcard(value, tag):
    assert sparsity_tag(value) == tag
    assert float(sparsity_tag(value)) == value
    assert set(sparsity_tag(value)) <= set("0123456789.")  # rules' wildcard [0-9.]+


def test_sparsities_below_old_tag_precision_stay_apart(demo):
    cfg = copy.deepcopy(demo)
    cfg.update(methods=["erk"], sparsities=[0.9, 0.9000001, 0.00001], seeds=[0, 1])
    cfg = check_config(cfg, source=SRC)
    nets = sparse_grid(cfg)
    dirs = {n.path("results") for n in nets}
    assert len(nets) == 6 and len(dirs) == 6  # used to be 4 directories (s0.9 shared)
    assert "results/digits/resnet20/erk/s0.00001/seed0" in dirs  # used to be s1e-05


def test_local_family_alone_is_rejected(demo):
    cfg = copy.deepcopy(demo)
    cfg["metrics"]["families"] = ["local"]
    _rejects(cfg, "metrics.families", "'ramanujan'", "ramanujan_layers.csv")


def test_family_applying_to_no_encoding_is_rejected(demo):
    cfg = copy.deepcopy(demo)
    cfg["encodings"] = ["mge"]
    cfg["metrics"]["families"] = ["ramanujan"]
    _rejects(cfg, "metrics.families[0]: 'ramanujan' applies to none of encodings ['mge']")


def test_one_method_one_sparsity_is_rejected(demo):
    cfg = copy.deepcopy(demo)
    cfg.update(methods=["erk"], sparsities=[0.9])
    _rejects(cfg, "analysis.n_splits", "the grid has 1", "1 methods x 1 sparsities")


def test_fewer_configurations_than_folds_is_rejected(demo):
    cfg = copy.deepcopy(demo)
    cfg.update(methods=["erk", "snip"], sparsities=[0.9])
    cfg["analysis"]["n_splits"] = 3
    _rejects(cfg, "analysis.n_splits: 3 folds need at least 3", "the grid has 2")
    cfg["analysis"]["n_splits"] = 2
    check_config(cfg, source=SRC)  # two configurations, two folds: fine


@pytest.mark.parametrize("seed", [2**64, 2**64 + 5, 2**32, -1])
def test_seeds_beyond_32_bits_are_rejected(demo, seed):
    cfg = copy.deepcopy(demo)
    cfg["seeds"] = [0, seed]
    _rejects(cfg, "seeds[1]")


def test_why_seeds_stop_at_32_bits():
    """The independent truth behind MAX_SEED: torch's CPU generator keeps only the low 32 bits of
    a seed, so seeds 2**32 apart draw the same numbers (and so the same random masks)."""
    a = torch.Generator().manual_seed(7)
    b = torch.Generator().manual_seed(7 + 2**32)
    assert torch.equal(torch.rand(8, generator=a), torch.rand(8, generator=b))
    assert MAX_SEED == 2**32 - 1


def test_analysis_seed_beyond_32_bits_is_rejected(demo):
    cfg = copy.deepcopy(demo)
    cfg["analysis"]["seed"] = 2**40
    _rejects(cfg, "analysis.seed")


@pytest.mark.parametrize("results", ["", "  ", "/", "//", "/.."])
def test_results_at_root_or_empty_is_rejected(demo, results):
    cfg = copy.deepcopy(demo)
    cfg["results"] = results
    _rejects(cfg, "results:")
