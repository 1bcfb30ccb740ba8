"""Our canonical names and the paper's spellings, mapped in one place.

The reference tables spell architectures and datasets as ``Resnet-20`` / ``CIFAR-10``; the config,
the paths and the CLI use ``resnet20`` / ``cifar10``. Nothing else in the package may hard-code the
paper's spellings.
"""

from __future__ import annotations

ARCH_FROM_PAPER = {
    "CONV-6": "conv6",
    "Resnet-20": "resnet20",
    "Resnet-32": "resnet32",
    "Wide-Resnet-28-2": "wrn28_2",
}
DATASET_FROM_PAPER = {
    "CIFAR-10": "cifar10",
    "CIFAR-100": "cifar100",
    "Tiny-ImageNet": "tinyimagenet",
    "tiny-imagenet": "tinyimagenet",
}
METHOD_FROM_PAPER = {
    "uniform": "uniform",
    "er": "er",
    "erk": "erk",
    "snip": "snip",
    "grasp": "grasp",
    "synflow": "synflow",
    "prospr": "prospr",
}

PAPER_ARCHITECTURES = ("conv6", "resnet20", "resnet32", "wrn28_2")
PAPER_DATASETS = ("cifar10", "cifar100", "tinyimagenet")
PAPER_METHODS = ("uniform", "er", "erk", "snip", "grasp", "synflow", "prospr")
PAPER_SPARSITIES = (0.6, 0.8, 0.9, 0.95, 0.98)
PAPER_SEEDS = (0, 1, 2)
DENSE = "dense"
KEYS = ("dataset", "arch", "method", "sparsity", "seed")

# The canonical tables (docs/architecture.md): written by snntopo.tables, read by snntopo.analysis.
ENCODINGS = ("mge", "rolled", "rolled-channel")
RAMANUJAN_METRICS = (
    "degree_bound",
    "iterative_spectral_gap",
    "iterative_degree_bound",
    "weighted_spectral_gap",
)
RAMANUJAN_LAYER_COLUMNS = (
    "encoding",
    "layer_id",
    "layer_name",
    "layer_density",
    *RAMANUJAN_METRICS,
)


def sparsity_tag(sparsity: float) -> str:
    """The path form of a sparsity: ``0.9 -> '0.9'``, ``0 -> '0'`` (shortest exact repr)."""
    return f"{float(sparsity):g}"
