"""Guarantees, data files: a CIFAR batch cannot run code, and every batch is checked against its
published md5 before it is read."""

from __future__ import annotations

import hashlib
import pickle

import pytest
from test_data import fixture_sums, write_fake_cifar

from snntopo.data import load_dataset
from snntopo.data.loaders import published_cifar_checksums, read_cifar_pickle
from snntopo.errors import DataError


class _WritesAFile:
    """Unpickling this calls ``open(path, 'w')``: a stand-in for any shell command."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_crafted_pickle_runs_no_code(tmp_path):
    base = write_fake_cifar(tmp_path)
    flag = tmp_path / "pwned.txt"
    with open(base / "test_batch", "wb") as fh:
        pickle.dump({"data": _WritesAFile(str(flag)), "labels": [0]}, fh)
    # the plain unpickler would have written the file: the hazard is real
    probe = tmp_path / "probe.txt"
    pickle.loads(pickle.dumps(_WritesAFile(str(probe)))).close()
    assert probe.exists()
    # even with a checksum list that vouches for the crafted file, nothing runs
    with pytest.raises(DataError, match=r"test_batch.*refusing to load (io|builtins)\.open"):
        load_dataset("cifar10", tmp_path, train=False, checksums=fixture_sums(base))
    assert not flag.exists()


@pytest.mark.parametrize("target", ["os.system", "subprocess.Popen", "builtins.eval"])
def test_unpickler_refuses_any_callable(tmp_path, target):
    module, name = target.rsplit(".", 1)
    # protocol-0 GLOBAL opcode naming the callable, then REDUCE with one argument
    payload = f"c{module}\n{name}\n(S'touch {tmp_path}/x'\ntR.".encode()
    p = tmp_path / "batch"
    p.write_bytes(payload)
    with pytest.raises(DataError, match=f"refusing to load {module}.{name}"):
        read_cifar_pickle(p)
    assert not (tmp_path / "x").exists()


def test_md5_mismatch_is_refused_before_unpickling(tmp_path):
    base = write_fake_cifar(tmp_path)
    sums = fixture_sums(base)
    flag = tmp_path / "pwned.txt"
    with open(base / "test_batch", "wb") as fh:  # replaced after the sums were taken
        pickle.dump({"data": _WritesAFile(str(flag)), "labels": [0]}, fh)
    got = hashlib.md5((base / "test_batch").read_bytes()).hexdigest()
    with pytest.raises(DataError, match=f"test_batch: md5 {got} differs from the published"):
        load_dataset("cifar10", tmp_path, train=False, checksums=sums)
    assert not flag.exists()


def test_published_checksums_apply_by_default(tmp_path):
    """Without ``checksums=`` the torchvision list is used: the small fixture is not the real
    file, so it is refused (its md5 differs from the published one)."""
    write_fake_cifar(tmp_path)
    published = published_cifar_checksums("cifar10")
    assert published["test_batch"] == "40351d587109b95175f43aff81a1287e"  # torchvision's list
    with pytest.raises(DataError, match="differs from the published 40351d58"):
        load_dataset("cifar10", tmp_path, train=False)


def test_unlisted_file_is_not_read(tmp_path):
    base = write_fake_cifar(tmp_path)
    sums = fixture_sums(base)
    del sums["batches.meta"]
    with pytest.raises(DataError, match="batches.meta: no checksum listed"):
        load_dataset("cifar10", tmp_path, train=False, checksums=sums)
