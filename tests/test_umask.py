"""Artifacts are shared files: whatever the writer (safetensors replaces its output file, numpy and
json write in place), a finished artifact has the mode a plain ``open()`` would give it under the
process's umask, so collaborators on a shared project directory can read masks and models."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from snntopo.io import atomic_path, write_json


@contextmanager
def _umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(("umask", "expected"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_artifacts_follow_the_umask(tmp_path: Path, umask: int, expected: int) -> None:
    import torch
    from safetensors.torch import save_file

    from snntopo.pai.io import save_mask

    mask = tmp_path / "mask.safetensors"
    init = tmp_path / "init.safetensors"
    js = tmp_path / "meta.json"
    npz = tmp_path / "graph.npz"
    with _umask(umask):
        save_mask(mask, {"w": torch.ones(2, 3, dtype=torch.bool)}, {"method": "random"})
        with atomic_path(init) as tmp:
            save_file({"w": torch.zeros(2, 3)}, str(tmp))
        write_json(js, {"a": 1})
        with atomic_path(npz) as tmp:
            np.savez(tmp, a=np.arange(3))
    for path in (mask, init, js, npz):
        assert _mode(path) == expected, f"{path.name}: {oct(_mode(path))} under umask {oct(umask)}"
    # nothing but the four artifacts is left in the directory (no temporary files)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in (mask, init, js, npz)
    )
