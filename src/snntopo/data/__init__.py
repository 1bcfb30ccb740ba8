"""Data sets: the registry (``DATASETS``, torch-free) of CIFAR-10/100 and Tiny-ImageNet (the
paper's) and the bundled ``digits`` demo; the loaders live in :mod:`snntopo.data.loaders`.

Why a registry of facts: it holds what the rest of the package needs to know about a data set
without loading it (classes, channels, input size, normalisation, training-split size, on-disk
format), so the config schema, the model builder, the planner's runtime estimates and the CLI
never hard-code those numbers, and importing it (planning) never imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..registry import Registry, lazy_attributes


@dataclass(frozen=True)
class DatasetFacts:
    """The registry facts of a data set beside its :class:`DatasetInfo` record (one default
    each)."""

    paper: str | None = None
    """The spelling in the authors' tables (``CIFAR-10``); ``None``: not in the paper."""
    index_file: str | None = None
    """The file (relative to ``data_root``) whose presence says the data set is extracted;
    ``None``: nothing on disk (see :func:`extracted_index`)."""


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a data set (nothing here requires the files to exist)."""

    name: str
    num_classes: int
    in_channels: int
    input_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    needs_download: bool
    native_size: int = 32
    """Size of the stored images (before any resize to ``input_size``)."""
    train_images: int = 50_000
    """Images in the training split (runtime estimates of training jobs)."""
    reader: str = "cifar"
    """On-disk format, i.e. which reader of :mod:`snntopo.data.loaders` loads it."""


DATASETS: Registry[DatasetInfo] = Registry("dataset", DatasetFacts)
DATASETS.register(
    "cifar10",
    DatasetInfo("cifar10", 10, 3, 32, (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010), True, 32),
    paper="CIFAR-10",
    index_file="cifar-10-batches-py/batches.meta",
)
DATASETS.register(
    "cifar100",
    DatasetInfo(
        "cifar100", 100, 3, 32, (0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761), True, 32
    ),
    paper="CIFAR-100",
    index_file="cifar-100-python/meta",
)
DATASETS.register(
    "tinyimagenet",
    DatasetInfo(
        "tinyimagenet",
        200,
        3,
        32,
        (0.4802, 0.4481, 0.3975),
        (0.2770, 0.2691, 0.2821),
        True,
        64,
        100_000,
        "tinyimagenet",
    ),
    paper="Tiny-ImageNet",
    index_file="tiny-imagenet-200/wnids.txt",
)
# Demo: scikit-learn's bundled 8x8 digits (no download). Mean/std are those of the pixel values
# (scaled to [0, 1]) after the bilinear resize to the default 16x16; identical for all 3 channels.
DATASETS.register(
    "digits",
    DatasetInfo("digits", 10, 3, 16, (0.3053,) * 3, (0.3189,) * 3, False, 8, 1_437, "digits"),
    paper=None,
)

DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0


def dataset_info(name: str) -> DatasetInfo:
    """The registry entry of ``name`` (``ConfigError`` with a suggestion on unknown names)."""
    return DATASETS.get(name)


def dataset_shape(name: str, input_size: int | None = None) -> tuple[int, int, int]:
    """``(num_classes, in_channels, input_size)`` of a data set: what a model needs to be built,
    without loading any data (``input_size`` overrides the data set's default)."""
    info = dataset_info(name)
    return int(info.num_classes), int(info.in_channels), int(input_size or info.input_size)


def extracted_index(name: str) -> str | None:
    """The file (relative to ``data_root``) whose presence says the data set is extracted — the
    output of the workflow's data-set node (registry fact ``index_file``); ``None`` for a data set
    with nothing on disk (digits).

    An index file of the extracted archive rather than a stamp of our own: it keeps the archive's
    old modification time, so a data set found already in place never makes Snakemake rerun the
    jobs that read it.
    """
    return DATASETS.fact(name, "index_file")


_LOADER_NAMES = (
    "TensorImageDataset",
    "TinyImageNet",
    "load_dataset",
    "make_loader",
    "pai_loader_factory",
    "prepare_dataset",
)
# the loaders (torch) load on first use: the registry above is all planning needs
__getattr__ = lazy_attributes(__name__, dict.fromkeys(_LOADER_NAMES, "loaders"))

__all__ = [
    "DATASETS",
    "DatasetFacts",
    "DatasetInfo",
    "dataset_info",
    "dataset_shape",
    "extracted_index",
    *sorted(_LOADER_NAMES),
]
