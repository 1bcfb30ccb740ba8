"""Training checkpoints: atomic writes, strict reads (a corrupt checkpoint raises naming the file;
see the package docstring for why), and the RNG state that makes a resumed run bit-identical."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from ..errors import CheckpointError
from ..io import atomic_path

CHECKPOINT_FORMAT = "snntopo-train-checkpoint"
CHECKPOINT_VERSION = 1


def _rng_state(loader: DataLoader) -> dict[str, Any]:
    assert loader.generator is not None
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "loader": loader.generator.get_state(),
    }


def _set_rng_state(state: Mapping[str, Any], loader: DataLoader) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        with contextlib.suppress(RuntimeError):  # resumed on a machine with fewer GPUs
            torch.cuda.set_rng_state_all(state["cuda"])
    assert loader.generator is not None
    loader.generator.set_state(state["loader"])


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a training checkpoint, raising ``CheckpointError`` naming the file on any defect."""
    p = Path(path)
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"{p}: unreadable training checkpoint ({type(exc).__name__}: {exc}); "
            "delete it to restart training from epoch 0"
        ) from None
    need = ("format", "version", "fingerprint", "epoch", "model", "optimizer", "scheduler")
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{p}: not an snntopo training checkpoint")
    missing = [k for k in need if k not in state]
    if missing:
        raise CheckpointError(f"{p}: checkpoint lacks {missing}")
    if state["version"] != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{p}: checkpoint version {state['version']} (this code reads {CHECKPOINT_VERSION})"
        )
    return state


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
