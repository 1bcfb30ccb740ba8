"""Data loaders read the real on-disk layouts (tiny fakes written here), fail clearly when data is
missing, and the digits demo is deterministic."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from snntopo.data import DATASETS, dataset_info, load_dataset, make_loader
from snntopo.errors import ConfigError, DataError


def write_fake_cifar(
    root: Path, n_train: int = 10, n_test: int = 6, cifar100: bool = False
) -> Path:
    """The python-pickle layout of ``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz``."""
    rng = np.random.default_rng(0)
    if cifar100:
        base = root / "cifar-100-python"
        files = {"train": n_train, "test": n_test}
        label_key, meta, meta_key, classes = "fine_labels", "meta", "fine_label_names", 100
    else:
        base = root / "cifar-10-batches-py"
        per = max(1, n_train // 5)
        files = {f"data_batch_{i}": per for i in range(1, 6)} | {"test_batch": n_test}
        label_key, meta, meta_key, classes = "labels", "batches.meta", "label_names", 10
    base.mkdir(parents=True)
    for fname, n in files.items():
        entry = {
            "data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
            label_key: [int(v) for v in rng.integers(0, classes, size=n)],
        }
        with open(base / fname, "wb") as fh:
            pickle.dump(entry, fh)
    with open(base / meta, "wb") as fh:
        pickle.dump({meta_key: [f"class{i}" for i in range(classes)]}, fh)
    return base


def fixture_sums(base: Path) -> dict[str, str]:
    """md5 of every fixture file, computed here (hashlib), standing in for the published list."""
    import hashlib

    return {f.name: hashlib.md5(f.read_bytes()).hexdigest() for f in base.iterdir()}


#: Tiny-ImageNet's 200 classes (made-up wnids; the loader checks the count)
TINY_WNIDS = tuple(f"n{i:08d}" for i in range(200))


def write_fake_tiny(root: Path, wnids=TINY_WNIDS, per_class: int = 1) -> Path:
    """The ``tiny-imagenet-200`` layout with 64x64 JPEGs: ``per_class`` train images and one
    val image per class."""
    from PIL import Image

    rng = np.random.default_rng(1)
    base = root / "tiny-imagenet-200"
    (base / "val" / "images").mkdir(parents=True)
    (base / "wnids.txt").write_text("\n".join(wnids) + "\n")
    lines = []
    for c, w in enumerate(wnids):
        d = base / "train" / w / "images"
        d.mkdir(parents=True)
        for i in range(per_class):
            arr = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
            Image.fromarray(arr).save(d / f"{w}_{i}.JPEG", format="JPEG")
        arr = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
        Image.fromarray(arr).save(base / "val" / "images" / f"val_{c}.JPEG", format="JPEG")
        lines.append(f"val_{c}.JPEG\t{w}\t0\t0\t63\t63")
    (base / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return base


def test_registry_facts():
    assert DATASETS.names() == ["cifar10", "cifar100", "tinyimagenet", "digits"]
    assert dataset_info("cifar100").num_classes == 100
    assert dataset_info("tinyimagenet").num_classes == 200
    assert dataset_info("digits").needs_download is False
    with pytest.raises(ConfigError, match="cifar10"):
        dataset_info("cifar-10")


@pytest.mark.parametrize("cifar100", [False, True])
def test_cifar_layout_reads_without_download(tmp_path, cifar100):
    sums = fixture_sums(write_fake_cifar(tmp_path, n_train=10, n_test=6, cifar100=cifar100))
    name = "cifar100" if cifar100 else "cifar10"
    train = load_dataset(name, tmp_path, train=True, download=False, checksums=sums)
    test = load_dataset(name, tmp_path, train=False, download=False, checksums=sums)
    assert len(train) == 10 and len(test) == 6
    x, y = train[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    assert 0 <= y < dataset_info(name).num_classes
    # The test split is never augmented (the reference's CIFAR-100 quirk is not reproduced).
    a, b = test[3][0], test[3][0]
    assert torch.equal(a, b)


def test_cifar_test_split_matches_manual_normalisation(tmp_path):
    base = write_fake_cifar(tmp_path, n_test=4)
    with open(base / "test_batch", "rb") as fh:
        raw = pickle.load(fh)["data"][2].reshape(3, 32, 32).astype(np.float32) / 255
    info = dataset_info("cifar10")
    want = (raw - np.array(info.mean)[:, None, None]) / np.array(info.std)[:, None, None]
    sums = fixture_sums(base)
    got = load_dataset("cifar10", tmp_path, train=False, checksums=sums)[2][0].numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_missing_cifar_names_path(tmp_path):
    with pytest.raises(DataError) as exc:
        load_dataset("cifar10", tmp_path / "nowhere", train=True)
    msg = str(exc.value)
    assert str(tmp_path / "nowhere" / "cifar-10-batches-py") in msg
    assert "download: true" in msg


def test_corrupt_cifar_batch_is_data_error(tmp_path):
    base = write_fake_cifar(tmp_path)
    (base / "test_batch").write_bytes(b"not a pickle")
    sums = fixture_sums(base)  # even with a matching checksum the bytes must parse
    with pytest.raises(DataError, match="cifar-10-batches-py"):
        load_dataset("cifar10", tmp_path, train=False, checksums=sums)


def test_tinyimagenet_layout(tmp_path):
    write_fake_tiny(tmp_path, per_class=2)
    train = load_dataset("tinyimagenet", tmp_path, train=True)
    test = load_dataset("tinyimagenet", tmp_path, train=False)
    assert len(train) == 400 and len(test) == 200
    assert sorted(set(train.targets)) == list(range(200))
    assert [t for _, t in test.samples] == list(range(200))
    x, _ = test[1]
    assert x.shape == (3, 32, 32)  # 64x64 resized (BOX) to the paper's 32x32


def test_tinyimagenet_box_resize_is_block_mean(tmp_path):
    """BOX 64->32 is a 2x2 block average (independent check of the interpolation)."""
    from PIL import Image

    base = write_fake_tiny(tmp_path, per_class=1)
    with Image.open(base / "val" / "images" / "val_0.JPEG") as im:
        raw = np.asarray(im.convert("RGB"), dtype=np.float64)
    block = raw.reshape(32, 2, 32, 2, 3).mean(axis=(1, 3))
    info = dataset_info("tinyimagenet")
    got = load_dataset("tinyimagenet", tmp_path, train=False)[0][0].numpy().transpose(1, 2, 0)
    got = got * np.array(info.std) + np.array(info.mean)
    np.testing.assert_allclose(got * 255, block, atol=1.5)  # uint8 rounding


def test_missing_tinyimagenet_names_path(tmp_path):
    with pytest.raises(DataError, match="tiny-imagenet-200"):
        load_dataset("tinyimagenet", tmp_path, train=False)


def test_digits_shapes_and_split():
    train = load_dataset("digits", train=True)
    test = load_dataset("digits", train=False)
    assert len(train) + len(test) == 1797
    assert len(test) == pytest.approx(0.2 * 1797, abs=1)
    x, y = test[0]
    assert x.shape == (3, 16, 16) and x.dtype == torch.float32
    assert torch.equal(x[0], x[1]) and torch.equal(x[0], x[2])
    # Stratified: every class appears in both splits in about the same proportion.
    counts = torch.bincount(test.targets, minlength=10)
    assert counts.min() >= 30
    # Deterministic and disjoint.
    again = load_dataset("digits", train=False)
    assert torch.equal(again.images, test.images)
    assert torch.equal(load_dataset("digits", train=True).targets, train.targets)


def test_digits_input_size_and_augmentation():
    ds = load_dataset("digits", train=True, input_size=32)
    assert ds[0][0].shape == (3, 32, 32)
    plain = load_dataset("digits", train=True, augment=False)
    assert torch.equal(plain[5][0], plain[5][0])
    aug = load_dataset("digits", train=True, augment=True)
    torch.manual_seed(0)
    views = [aug[5][0] for _ in range(10)]
    assert any(not torch.equal(views[0], v) for v in views[1:])
    assert all(v.shape == (3, 16, 16) for v in views)


def test_loader_order_is_function_of_seed():
    ds = load_dataset("digits", train=False)

    def order(seed):
        return torch.cat([y for _, y in make_loader(ds, 64, shuffle=True, seed=seed)])

    torch.manual_seed(123)
    a = order(7)
    torch.manual_seed(456)  # the global RNG does not matter
    b = order(7)
    assert torch.equal(a, b)
    assert not torch.equal(a, order(8))


# ------------------------------------------------------------------ Tiny-ImageNet completeness
def test_tinyimagenet_with_two_of_200_classes_is_refused(tmp_path):
    write_fake_tiny(tmp_path, wnids=TINY_WNIDS[:2])
    with pytest.raises(DataError, match="lists 2 classes, Tiny-ImageNet has 200"):
        load_dataset("tinyimagenet", tmp_path, train=True)


def test_tinyimagenet_missing_class_folder_is_refused(tmp_path):
    import shutil

    base = write_fake_tiny(tmp_path)
    shutil.rmtree(base / "train" / TINY_WNIDS[7])
    with pytest.raises(DataError, match=f"no folder for 1 of the 200 classes.*{TINY_WNIDS[7]}"):
        load_dataset("tinyimagenet", tmp_path, train=True)


def test_tinyimagenet_class_short_of_images_is_refused(tmp_path):
    base = write_fake_tiny(tmp_path, per_class=2)
    next((base / "train" / TINY_WNIDS[3] / "images").glob("*.JPEG")).unlink()
    with pytest.raises(DataError, match=f"class {TINY_WNIDS[3]} has 1 images, the others mostly 2"):
        load_dataset("tinyimagenet", tmp_path, train=True)


def test_tinyimagenet_listed_val_image_missing_is_refused(tmp_path):
    base = write_fake_tiny(tmp_path)
    (base / "val" / "images" / "val_5.JPEG").unlink()
    with pytest.raises(DataError, match="1 listed image.s. missing, e.g. .*val_5.JPEG"):
        load_dataset("tinyimagenet", tmp_path, train=False)


def test_tinyimagenet_decompression_bomb_is_one_line(tmp_path):
    """A PNG declaring 30000x30000 pixels (PIL's bomb limit is ~89M) in a few kilobytes: refused
    from its header, before decoding."""
    from PIL import Image

    base = write_fake_tiny(tmp_path)
    bomb = base / "val" / "images" / "val_0.JPEG"
    Image.new("1", (30000, 30000)).save(bomb, format="PNG")
    assert bomb.stat().st_size < 1_000_000
    ds = load_dataset("tinyimagenet", tmp_path, train=False)
    with pytest.raises(DataError) as err:
        ds[0]
    assert "val_0.JPEG" in str(err.value) and "\n" not in str(err.value)


def test_tinyimagenet_image_of_another_size_is_refused(tmp_path):
    from PIL import Image

    base = write_fake_tiny(tmp_path)
    Image.new("RGB", (65, 64)).save(base / "val" / "images" / "val_1.JPEG", format="JPEG")
    ds = load_dataset("tinyimagenet", tmp_path, train=False)
    with pytest.raises(DataError, match="is 65x64, expected 64x64"):
        ds[1]
