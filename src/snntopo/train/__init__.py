"""Masked training: SGD + MultiStepLR with pruned weights held at exactly zero, checkpoint/resume,
device choice, mixed precision where it helps.

Design decisions (and why):

- **Masks twice per step.** Gradients of pruned weights are zeroed before ``optimizer.step`` (so
  momentum buffers never pick up mass there) *and* the weights are multiplied by the mask after the
  step. Either alone would suffice in exact arithmetic; both together make "pruned weights are
  exactly 0.0" hold regardless of optimizer details (weight decay, Nesterov, a GradScaler skipping a
  step) — the graph stages rely on it.
- **Biases are trained.** Conv/linear biases and BatchNorm parameters are never pruned and are
  trained normally. The reference freezes conv/linear biases at zero only by accident (a helper
  named ``mask_bias`` is shadowed by another of the same name); nothing in the paper asks for it,
  and biases are not part of any graph encoding, so training them changes no artifact format.
- **Exact resume.** Every epoch starts by re-seeding the global torch RNG (augmentation) and the
  loader's private generator (shuffling, worker seeds) from ``(seed, epoch)``. The batches of epoch
  ``k`` therefore do not depend on whether epochs ``< k`` ran in this process, and a run resumed from
  the checkpoint of epoch ``k`` is bit-identical on CPU to an uninterrupted one. The RNG states are
  stored in the checkpoint too (and restored), for inspection and for future code that draws random
  numbers mid-epoch.
- **Corrupt checkpoints raise** ``CheckpointError`` naming the file rather than being discarded:
  checkpoints are written atomically, so a corrupt one means something outside this code went wrong,
  and silently restarting could throw away hours of training. A checkpoint written for a different
  config/seed/mask also raises (delete it to start over).
- **Determinism.** On CPU ``torch.use_deterministic_algorithms`` is on while training (restored
  afterwards). On CUDA the default favours speed (cuDNN autotuning, bf16/fp16 autocast,
  channels_last); ``deterministic: true`` in the config trades that back.
"""

from __future__ import annotations

from ..registry import lazy_attributes
from .config import AMP_CHOICES, TrainConfig, paper_recipe

# torch-using parts load on first use, so ``from snntopo.train import TrainConfig`` (the config
# check, planning) never imports torch
_LAZY = {
    "TrainResult": "loop",
    "train_masked": "loop",
    "evaluate": "loop",
    "resolve_device": "device",
    "job_device": "device",
    "resolve_amp": "device",
    "prepare_masks": "masks",
    "apply_masks": "masks",
    "mask_gradients": "masks",
    "load_checkpoint": "checkpoint",
    "CHECKPOINT_FORMAT": "checkpoint",
    "CHECKPOINT_VERSION": "checkpoint",
    "HISTORY_COLUMNS": "history",
    "write_history_csv": "history",
    "TensorBoardLog": "history",
}


__getattr__ = lazy_attributes(__name__, _LAZY)


__all__ = [
    "AMP_CHOICES",
    "TrainConfig",
    "paper_recipe",
    *_LAZY,
]
