"""The grid point's one home: the path form, its parsing and the architecture slugs, against
hand-written paths (the layout the README and docs/architecture.md describe)."""

from __future__ import annotations

import pytest

from snntopo import gridpoint as G


def test_network_dir_is_the_documented_layout():
    assert (
        G.network_dir("results", "cifar10", "torchvision:resnet18", "erk", 0.9, 2)
        == "results/cifar10/torchvision__resnet18/erk/s0.9/seed2"
    )
    assert (
        G.network_dir("r", "digits", "resnet20", "dense", 0.0, 0)
        == "r/digits/resnet20/dense/s0/seed0"
    )
    assert G.network_pattern("R") == "R/{dataset}/{arch}/{method}/s{sparsity}/seed{seed}"
    assert G.network_pattern() == "{dataset}/{arch}/{method}/s{sparsity}/seed{seed}"


@pytest.mark.parametrize(
    ("path", "keys"),
    [
        ("results/digits/resnet20/erk/s0.9/seed1/train.json",
         {"dataset": "digits", "arch": "resnet20", "method": "erk", "sparsity": 0.9, "seed": 1}),
        ("/x/results/cifar10/module__pkg.mod__make/snip/s0.00001/seed12/metrics/local.json",
         {"dataset": "cifar10", "arch": "module__pkg.mod__make", "method": "snip",
          "sparsity": 1e-05, "seed": 12}),
        ("r/digits/resnet20/erk/s0.6/seed0/graphs/mge.npz",
         {"dataset": "digits", "arch": "resnet20", "method": "erk", "sparsity": 0.6, "seed": 0}),
        ("graph.npz", None),
        ("a/b/c/sx/seedy/file.json", None),
    ],
)  # fmt: skip
def test_parse_path(path, keys):
    assert G.parse_path(path) == keys


def test_slugs_round_trip_and_keys_carry_the_full_name():
    for name in ("resnet20", "torchvision:resnet18", "module:pkg.mod:make"):
        assert G.unslug(G.slug(name)) == name
        assert ":" not in G.slug(name)
        assert G.slug(G.slug(name)) == G.slug(name)
    point = G.GridPoint("cifar10", "torchvision__resnet18", "erk", 0.9, 1)
    assert point.keys() == {
        "dataset": "cifar10", "arch": "torchvision:resnet18", "method": "erk",
        "sparsity": 0.9, "seed": 1,
    }  # fmt: skip
    assert G.parse_path(point.path("results") + "/train.json") == {
        **point.keys(),
        "arch": "torchvision__resnet18",
    }


def test_wildcards_dir_takes_a_rules_wildcards():
    class Wildcards:
        dataset, arch, method, sparsity, seed = "digits", "resnet20", "erk", "0.9", "3"

    assert G.wildcards_dir("R", Wildcards()) == "R/digits/resnet20/erk/s0.9/seed3"
