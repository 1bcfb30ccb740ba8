"""Loaders of the registered data sets (:mod:`snntopo.data`): CIFAR-10/100, Tiny-ImageNet and
the bundled ``digits`` demo.

Why this module looks the way it does:

- torchvision is imported lazily and only for the real data sets: importing it costs seconds, and
  the demo, the tests and the graph stages never need it.
- The test split is never augmented. The reference applies RandomCrop/HFlip to the CIFAR-100 *test*
  set as well (a copy-paste quirk); we do not reproduce that, so test accuracy is a deterministic
  function of the weights.
- A missing data set is a ``DataError`` that says where we looked and how to fix it, instead of
  torchvision's generic "Dataset not found or corrupted".
- CIFAR batches are python pickles, and unpickling can run code. They are read with an
  unpickler that admits only what the format holds (dicts, lists, strings, bytes, numbers and
  numpy ``uint8`` arrays), after their md5 sums are checked against the published ones
  (torchvision's lists); a batch that fails either check is a ``DataError`` and nothing in it
  runs. ``checksums=`` replaces the published list (the tests pass the sums of their fixtures).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import logging
import os
import pickle
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..errors import DataError
from . import DATASETS, DIGITS_SPLIT_SEED, DIGITS_TEST_FRACTION, DatasetInfo, dataset_info


def pai_loader_factory(
    name: str,
    root: str | os.PathLike[str],
    seed: int,
    download: bool = False,
    input_size: int | None = None,
) -> Callable[[int], DataLoader]:
    """Training batches for data-driven PaI methods, shared by the workflow and ``snntopo mask``.

    The batches are drawn like the reference draws them (shuffled, augmented training data); each
    new pass (ProsPr may need more than one) gets its own seed derived from ``seed``, so a mask is
    a function of the seed alone. The data set is loaded on first use only.
    """
    passes = itertools.count()
    dataset: list[Dataset] = []

    def factory(batch_size: int) -> DataLoader:
        if not dataset:
            dataset.append(
                load_dataset(name, root, train=True, download=download, input_size=input_size)
            )
        return make_loader(dataset[0], batch_size, shuffle=True, seed=seed * 1000 + next(passes))

    return factory


def load_dataset(
    name: str,
    root: str | os.PathLike[str] = "data",
    train: bool = True,
    download: bool = False,
    input_size: int | None = None,
    augment: bool | None = None,
    *,
    checksums: Mapping[str, str] | None = None,
) -> Dataset:
    """Load the train or test split of ``name`` as a map-style dataset of ``(image, label)``.

    ``input_size`` defaults to the registry's (32, or 16 for ``digits``); ``augment`` defaults to
    ``train`` (RandomCrop with 1/8 padding + horizontal flip for the image data sets, a small random
    shift for ``digits``). Images come out normalised, as float32 CHW tensors. ``checksums``
    (file name -> md5) replaces the published CIFAR checksums every batch is verified against.
    """
    info = dataset_info(name)
    size = int(input_size or info.input_size)
    if size < 1:
        raise DataError(f"{name}: input_size must be positive, got {size}")
    aug = train if augment is None else bool(augment)
    if info.reader == "digits":
        return _digits(train=train, input_size=size, augment=aug)
    readers = {"cifar": _cifar, "tinyimagenet": _tinyimagenet}
    if info.reader not in readers:  # registered without a reader
        raise DataError(f"no reader {info.reader!r} for data set {name!r}")
    if info.reader == "cifar":
        return _cifar(info, Path(root), train, download, size, aug, checksums=checksums)
    return readers[info.reader](info, Path(root), train, download, size, aug)


def make_loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool,
    seed: int = 0,
    num_workers: int = 0,
    drop_last: bool = False,
    pin_memory: bool = False,
) -> DataLoader:
    """A DataLoader whose batch order (and worker seeds) is a function of ``seed`` only.

    The loader owns a private ``torch.Generator``: the global RNG is not consumed for shuffling, so
    other code cannot perturb the order, and the trainer can re-seed ``loader.generator`` per epoch
    to make a resumed run replay exactly the batches of an uninterrupted one.
    """
    gen = torch.Generator()
    gen.manual_seed(int(seed))
    return DataLoader(
        dataset,
        batch_size=int(batch_size),
        shuffle=shuffle,
        num_workers=int(num_workers),
        drop_last=drop_last,
        generator=gen,
        pin_memory=pin_memory,
        persistent_workers=False,
    )


# --------------------------------------------------------------------------------------------------
# torchvision-based image data sets


def _image_transform(info: DatasetInfo, size: int, augment: bool) -> Callable[[Any], torch.Tensor]:
    from torchvision import transforms as T
    from torchvision.transforms import InterpolationMode

    steps: list[Any] = []
    if size != info.native_size:
        # Tiny-ImageNet 64 -> 32 uses BOX (area averaging), as the paper's loader does.
        steps.append(T.Resize((size, size), interpolation=InterpolationMode.BOX))
    if augment:
        steps += [T.RandomCrop(size, padding=max(1, size // 8)), T.RandomHorizontalFlip()]
    steps += [T.ToTensor(), T.Normalize(info.mean, info.std)]
    return T.Compose(steps)


_CIFAR_FILES = {
    "cifar10": (
        "cifar-10-batches-py",
        [f"data_batch_{i}" for i in range(1, 6)],
        ["test_batch"],
        "batches.meta",
        "cifar-10-python.tar.gz",
    ),
    "cifar100": ("cifar-100-python", ["train"], ["test"], "meta", "cifar-100-python.tar.gz"),
}


def prepare_dataset(name: str, root: str | os.PathLike[str], download: bool) -> None:
    """Fetch (when ``download``) and check both splits of a data set: what the workflow's data-set
    node runs, so a missing data set fails once, with :func:`_missing_message`, not in every job."""
    for train in (True, False):
        ds = load_dataset(name, root, train=train, download=download and train)
        logging.getLogger("snntopo.data").info(
            "%s %s split: %d images in %s", name, "train" if train else "test", len(ds), root
        )


def _missing_message(name: str, where: Path, missing: Sequence[str], how: str) -> str:
    shown = ", ".join(missing[:4]) + (" ..." if len(missing) > 4 else "")
    return (
        f"{name} not found: looked in {where} and missing {shown}. Set `download: true` in the "
        f"config (or pass --download) to fetch it, or {how}"
    )


def _cifar(
    info: DatasetInfo,
    root: Path,
    train: bool,
    download: bool,
    size: int,
    augment: bool,
    checksums: Mapping[str, str] | None = None,
) -> Dataset:
    folder, train_files, test_files, meta, archive = _CIFAR_FILES[info.name]
    base = root / folder

    if download:
        from torchvision import datasets

        cls = datasets.CIFAR10 if info.name == "cifar10" else datasets.CIFAR100
        try:
            cls(str(root), train=train, download=True)
        except Exception as exc:  # network errors, bad checksums
            raise DataError(f"{info.name}: download into {root} failed: {exc}") from exc
    needed = [*train_files, *test_files, meta]
    missing = [f for f in needed if not (base / f).is_file()]
    if missing:
        raise DataError(
            _missing_message(
                info.name, base, missing, f"extract {archive} so that {base}/ holds {needed}"
            )
        )
    sums = dict(checksums) if checksums is not None else published_cifar_checksums(info.name)
    files = [*(train_files if train else test_files), meta]
    for f in files:
        verify_md5(base / f, sums.get(f), info.name)
    label_key = "labels" if info.name == "cifar10" else "fine_labels"
    meta_key = "label_names" if info.name == "cifar10" else "fine_label_names"
    data, targets = [], []
    for f in train_files if train else test_files:
        entry = read_cifar_pickle(base / f, info.name)
        try:
            arr = np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
            labels = [int(v) for v in entry[label_key]]
        except (KeyError, ValueError, TypeError) as exc:
            raise DataError(f"{info.name}: {base / f}: not a CIFAR batch ({exc!r})") from None
        if len(labels) != len(arr):
            raise DataError(f"{info.name}: {base / f}: {len(arr)} images but {len(labels)} labels")
        data.append(arr)
        targets += labels
    classes = read_cifar_pickle(base / meta, info.name).get(meta_key)
    if not isinstance(classes, list) or not classes:
        raise DataError(f"{info.name}: {base / meta}: no {meta_key!r} list")
    images = np.concatenate(data).transpose(0, 2, 3, 1) if data else np.zeros((0, 32, 32, 3))
    if len(images) == 0:
        raise DataError(f"{info.name}: {base} holds no images")
    bad = [t for t in targets if not 0 <= t < len(classes)]
    if bad:
        raise DataError(f"{info.name}: {base}: label {bad[0]} outside [0, {len(classes)})")
    return CifarBatches(images, targets, classes, _image_transform(info, size, augment))


def published_cifar_checksums(name: str) -> dict[str, str]:
    """The md5 of every file of the torchvision CIFAR layout, as torchvision publishes them."""
    from torchvision import datasets

    cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    sums = {f: md5 for f, md5 in [*cls.train_list, *cls.test_list]}
    sums[cls.meta["filename"]] = cls.meta["md5"]
    return sums


@functools.lru_cache(maxsize=64)
def _md5(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_md5(path: Path, expected: str | None, name: str) -> None:
    """Raise ``DataError`` unless ``path`` has md5 ``expected`` (a file with no listed sum fails
    too: nothing is unpickled unverified)."""
    if expected is None:
        raise DataError(f"{name}: {path}: no checksum listed for this file; not reading it")
    st = path.stat()
    got = _md5(str(path), st.st_size, st.st_mtime_ns)
    if got != expected:
        raise DataError(
            f"{name}: {path}: md5 {got} differs from the published {expected} (corrupt or "
            "modified file; delete it and set `download: true` to fetch it again)"
        )


class _CifarUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals a CIFAR batch contains (numpy's array
    reconstruction); any other class or function, e.g. ``os.system`` in a crafted file, is refused
    before it can be called."""

    ALLOWED = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} (not part of the format)")


def read_cifar_pickle(path: Path, name: str = "cifar") -> dict[str, Any]:
    """One CIFAR batch/meta file through :class:`_CifarUnpickler`, keys decoded like
    torchvision's ``encoding="latin1"`` read."""
    try:
        with open(path, "rb") as fh:
            obj = _CifarUnpickler(fh, encoding="latin1").load()
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
        raise DataError(f"{name}: cannot read the batch {path}: {exc}") from None
    if not isinstance(obj, dict):
        raise DataError(f"{name}: {path}: expected a dict, got {type(obj).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


class CifarBatches(Dataset):
    """CIFAR images (N, 32, 32, 3) uint8 with their labels; items like torchvision's CIFAR
    (a PIL image through ``transform``)."""

    def __init__(
        self,
        images: np.ndarray,
        targets: list[int],
        classes: list[str],
        transform: Callable[[Any], Any],
    ) -> None:
        self.data = images
        self.targets = targets
        self.classes = classes
        self.class_to_idx = {c: i for i, c in enumerate(classes)}
        self.transform = transform

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        from PIL import Image

        return self.transform(Image.fromarray(self.data[i])), int(self.targets[i])


class TinyImageNet(Dataset):
    """The standard ``tiny-imagenet-200`` layout: ``wnids.txt``, ``train/<wnid>/images/*.JPEG``,
    ``val/images/*.JPEG`` with labels in ``val/val_annotations.txt``; the val split is the test set
    (the test split has no labels). Labels are indices into ``wnids.txt`` (file order).

    Images are decoded lazily (100k JPEGs would take a while to preload); use loader workers.
    """

    def __init__(
        self,
        base: Path,
        train: bool,
        transform: Callable[[Any], Any],
        num_classes: int | None = None,
    ) -> None:
        self.base = base
        self.transform = transform
        try:
            text = (base / "wnids.txt").read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"{base}/wnids.txt: unreadable ({exc})") from None
        self.wnids = [w.strip() for w in text.split() if w.strip()]
        index = {w: i for i, w in enumerate(self.wnids)}
        if len(index) != len(self.wnids):
            raise DataError(f"{base}/wnids.txt: a class is listed twice")
        if num_classes is not None and len(self.wnids) != num_classes:
            raise DataError(
                f"{base}/wnids.txt: lists {len(self.wnids)} classes, Tiny-ImageNet has "
                f"{num_classes} (an incomplete copy?)"
            )
        self.samples: list[tuple[Path, int]] = []
        if train:
            missing = [w for w in self.wnids if not (base / "train" / w / "images").is_dir()]
            if missing:
                raise DataError(
                    f"{base}/train: no folder for {len(missing)} of the {len(self.wnids)} classes "
                    f"of wnids.txt, e.g. {missing[0]}/images (an incomplete copy?)"
                )
            extra = sorted(
                d.name for d in (base / "train").iterdir() if d.is_dir() and d.name not in index
            )
            if extra:
                raise DataError(f"{base}/train/{extra[0]}: a class folder not in wnids.txt")
            for wnid in self.wnids:
                folder = base / "train" / wnid / "images"
                for p in sorted(folder.glob("*.JPEG")):
                    self.samples.append((p, index[wnid]))
        else:
            where = f"{base}/val/val_annotations.txt"
            try:
                lines = (base / "val" / "val_annotations.txt").read_text("utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as exc:
                raise DataError(f"{where}: unreadable ({exc})") from None
            seen: dict[str, int] = {}
            for n, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                parts = line.split("\t")
                if len(parts) < 2:
                    raise DataError(
                        f"{where}: line {n} is not '<image>\\t<class>\\t...': {line!r:.80}"
                    )
                name = parts[0]
                if name in (".", "..") or "/" in name or "\\" in name or not name.strip():
                    raise DataError(
                        f"{where}: line {n}: {name!r:.80} is not a file name in val/images"
                    )
                if name in seen:
                    raise DataError(
                        f"{where}: {name!r:.80} is listed twice (lines {seen[name]} and {n})"
                    )
                seen[name] = n
                if parts[1] not in index:
                    raise DataError(f"{where}: class {parts[1]!r:.80} not in wnids.txt")
                self.samples.append((base / "val" / "images" / name, index[parts[1]]))
            absent = [p for p, _ in self.samples if not _is_file(p)]
            if absent:
                raise DataError(
                    f"{base}/val/val_annotations.txt: {len(absent)} listed image(s) missing, "
                    f"e.g. {absent[0]}"
                )
        self.targets = [t for _, t in self.samples]
        _check_balanced(self.targets, self.wnids, f"{base}/{'train' if train else 'val'}")

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        import warnings

        from PIL import Image

        path, target = self.samples[i]
        try:
            with warnings.catch_warnings():
                # a decompression bomb is an error here, not a warning (PIL warns above
                # MAX_IMAGE_PIXELS and raises only at twice that)
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(path) as im:
                    if im.size != (64, 64):
                        raise DataError(
                            f"tinyimagenet: image {path} is {im.size[0]}x{im.size[1]}, "
                            "expected 64x64"
                        )
                    img = im.convert("RGB")
        except (
            OSError,
            ValueError,
            SyntaxError,
            Image.DecompressionBombError,
            Image.DecompressionBombWarning,
        ) as exc:
            raise DataError(
                f"tinyimagenet: cannot read image {path} ({type(exc).__name__}: {exc})"
            ) from None
        return self.transform(img), target


def _is_file(path: Path) -> bool:
    """``path.is_file()``, False where the name cannot exist (too long for the file system)."""
    try:
        return path.is_file()
    except OSError:
        return False


def _check_balanced(targets: list[int], names: list[str], where: str) -> None:
    """Every class of the split has as many images as the others (500 train and 50 val each in
    Tiny-ImageNet): a class with fewer, or none, is a copy that lost files."""
    import collections

    counts = collections.Counter(targets)
    per = [counts.get(i, 0) for i in range(len(names))]
    if per and min(per) != max(per):
        usual = collections.Counter(per).most_common(1)[0][0]
        odd = next(i for i, n in enumerate(per) if n != usual)
        raise DataError(
            f"{where}: class {names[odd]} has {per[odd]} images, the others mostly {usual} "
            "(an incomplete copy?)"
        )


TINY_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
TINY_FOLDER = "tiny-imagenet-200"


def _tinyimagenet(
    info: DatasetInfo, root: Path, train: bool, download: bool, size: int, augment: bool
) -> Dataset:
    base = root / TINY_FOLDER
    needed = ["wnids.txt", "train" if train else "val/val_annotations.txt"]
    if download and any(not (base / f).exists() for f in needed):
        from torchvision.datasets.utils import download_and_extract_archive

        try:
            download_and_extract_archive(TINY_URL, str(root))
        except Exception as exc:
            raise DataError(f"tinyimagenet: download into {root} failed: {exc}") from exc
    missing = [f for f in needed if not (base / f).exists()]
    if missing:
        raise DataError(
            _missing_message(
                info.name, base, missing, f"unzip tiny-imagenet-200.zip ({TINY_URL}) into {root}/"
            )
        )
    ds = TinyImageNet(base, train, _image_transform(info, size, augment), info.num_classes)
    if len(ds) == 0:
        raise DataError(f"tinyimagenet: no images found under {base}/{'train' if train else 'val'}")
    return ds


# --------------------------------------------------------------------------------------------------
# digits demo


class TensorImageDataset(Dataset):
    """Preprocessed images in memory; optional augmentation by a random shift (pad + crop).

    No flips: digits are not mirror-symmetric. The shift draws from the global torch RNG, which the
    trainer seeds per epoch (and loader workers get seeds from the loader's generator).
    """

    def __init__(self, images: torch.Tensor, targets: torch.Tensor, pad: int = 0) -> None:
        self.images = images
        self.targets = targets
        self.pad = int(pad)

    def __len__(self) -> int:
        return int(self.targets.shape[0])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        img = self.images[i]
        if self.pad:
            p = self.pad
            h, w = img.shape[-2:]
            # Pad with the normalised value of a black pixel, as zero-padding raw pixels would.
            padded = torch.nn.functional.pad(img, (p, p, p, p), value=float(img.min()))
            dy, dx = (int(v) for v in torch.randint(0, 2 * p + 1, (2,)))
            img = padded[:, dy : dy + h, dx : dx + w]
        return img, int(self.targets[i])


@functools.lru_cache(maxsize=4)
def _digits_tensors(input_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """All 1797 digits as normalised 3xSxS float32 tensors, labels, and the test-index mask."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = torch.as_tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    if input_size != 8:
        x = torch.nn.functional.interpolate(
            x, size=(input_size, input_size), mode="bilinear", align_corners=False
        )
    info = DATASETS.get("digits")
    x = ((x - info.mean[0]) / info.std[0]).expand(-1, 3, -1, -1).contiguous()
    y = torch.as_tensor(d.target, dtype=torch.int64)
    idx = list(range(len(y)))
    _, test_idx = train_test_split(
        idx,
        test_size=DIGITS_TEST_FRACTION,
        stratify=d.target,
        random_state=DIGITS_SPLIT_SEED,
    )
    is_test = torch.zeros(len(y), dtype=torch.bool)
    is_test[torch.as_tensor(sorted(test_idx))] = True
    return x, y, is_test


def _digits(train: bool, input_size: int, augment: bool) -> Dataset:
    x, y, is_test = _digits_tensors(input_size)
    sel = ~is_test if train else is_test
    pad = max(1, input_size // 8) if augment else 0
    return TensorImageDataset(x[sel].clone(), y[sel].clone(), pad=pad)


__all__ = [
    "TensorImageDataset",
    "TinyImageNet",
    "load_dataset",
    "make_loader",
    "pai_loader_factory",
]
