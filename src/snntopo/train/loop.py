"""The masked training loop: SGD + MultiStepLR, per-epoch reseeding for exact resume, evaluation."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..data import make_loader
from ..determinism import deterministic_mode
from ..errors import CheckpointError
from ..models import main_output, prunable_parameters
from .checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    _rng_state,
    _save_checkpoint,
    _set_rng_state,
    load_checkpoint,
)
from .config import TrainConfig
from .device import _resolve_flag, resolve_amp, resolve_device
from .masks import _device_masks, apply_masks, mask_gradients, prepare_masks

logger = logging.getLogger("snntopo.train")


@dataclass
class TrainResult:
    accuracy: float
    """Top-1 test accuracy (fraction) after the final epoch."""
    history: list[dict[str, Any]]
    epochs: int
    resumed_from: int | None = None
    seconds: float = 0.0
    """Wall time of this call (excluding epochs restored from a checkpoint)."""
    device: str = "cpu"
    amp: str | None = None
    params: dict[str, int] = field(default_factory=dict)
    """``total`` trainable parameters, ``prunable``, ``prunable_nonzero`` after training."""


Log = str | os.PathLike[str] | Callable[[str], None] | None


class _Logger:
    """Epoch lines go to the ``snntopo.train`` logger and to ``log`` (a file path or a callable)."""

    def __init__(self, log: Log) -> None:
        self.log = log
        if isinstance(log, str | os.PathLike):
            Path(log).parent.mkdir(parents=True, exist_ok=True)

    def __call__(self, msg: str, level: int = logging.INFO) -> None:
        logger.log(level, msg)
        if self.log is None:
            return
        if callable(self.log):
            self.log(msg)
        else:
            with open(self.log, "a") as fh:
                fh.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {msg}\n")


def _epoch_seed(seed: int, epoch: int) -> int:
    """A per-(seed, epoch) seed, well mixed so neighbouring seeds do not share epochs."""
    h = hashlib.sha256(f"snntopo-train/{int(seed)}/{int(epoch)}".encode()).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 63) - 1)


def _seed_epoch(seed: int, epoch: int, loader: DataLoader) -> None:
    s = _epoch_seed(seed, epoch)
    torch.manual_seed(s)  # augmentation (main process) and all CUDA generators
    assert loader.generator is not None
    loader.generator.manual_seed(s ^ 0x5EED)  # shuffling and worker seeds


def _fingerprint(cfg: TrainConfig, seed: int, model: nn.Module, masks: dict[str, Any]) -> str:
    """What a checkpoint must agree on to be resumed: result-relevant config, seed, parameter
    shapes, mask bits. Device, workers and logging may change between attempts."""
    relevant = {
        k: v
        for k, v in cfg.to_dict().items()
        if k not in ("device", "num_workers", "log_every", "eval_every", "test_batch_size")
    }
    h = hashlib.sha256()
    h.update(json.dumps({"cfg": relevant, "seed": int(seed)}, sort_keys=True).encode())
    for name, t in model.state_dict().items():
        h.update(f"{name}:{tuple(t.shape)};".encode())
    for name in sorted(masks):
        h.update(name.encode())
        h.update(masks[name].to(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def evaluate(
    model: nn.Module,
    loader: DataLoader,
    device: torch.device | str = "cpu",
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
) -> float:
    """Top-1 accuracy (fraction) of ``model`` on ``loader``; the model's train/eval mode is
    restored afterwards."""
    device = torch.device(device)
    was_training = model.training
    model.eval()
    correct = total = 0
    try:
        with torch.inference_mode():
            for x, y in loader:
                x, y = _to_device(x, y, device, channels_last)
                with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                    out = main_output(model(x))  # logits; auxiliary outputs are not trained
                correct += int((out.argmax(dim=1) == y).sum())
                total += int(y.numel())
    finally:
        model.train(was_training)
    return correct / total if total else float("nan")


def _to_device(
    x: torch.Tensor, y: torch.Tensor, device: torch.device, channels_last: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    nb = device.type == "cuda"
    x = x.to(device, non_blocking=nb)
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, y.to(device, non_blocking=nb)


def _progress(total: int, desc: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, leave=False, disable=not sys.stderr.isatty())


def train_masked(
    model: nn.Module,
    masks: Mapping[str, Any] | None,
    train_set: Dataset,
    test_set: Dataset,
    cfg: TrainConfig | Mapping[str, Any] | None = None,
    seed: int = 0,
    checkpoint_path: str | os.PathLike[str] | None = None,
    log: Log = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Train ``model`` (in place) with its pruned weights held at zero; return accuracy + history.

    ``masks`` maps prunable parameter names to bool tensors (``None``/empty: dense). With
    ``checkpoint_path`` a checkpoint is written atomically after every epoch, and an existing
    one is resumed ("resuming from epoch k"). The model ends on the training device, in eval mode.
    ``on_epoch`` is called with each epoch's history row as the epoch ends (e.g. a
    :class:`snntopo.train.history.TensorBoardLog`).
    """
    if not isinstance(cfg, TrainConfig):
        cfg = TrainConfig.from_dict(cfg)
    say = _Logger(log)
    device = resolve_device(cfg.device)
    amp_dtype = resolve_amp(cfg.amp, device)
    channels_last = _resolve_flag(
        cfg.channels_last, device.type == "cuda" and amp_dtype is not None
    )
    deterministic = _resolve_flag(cfg.deterministic, device.type == "cpu")

    cpu_masks = prepare_masks(model, masks)
    fingerprint = _fingerprint(cfg, seed, model, cpu_masks)
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    pairs = _device_masks(model, cpu_masks)
    apply_masks(pairs)

    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=cfg.lr,
        momentum=cfg.momentum,
        weight_decay=cfg.weight_decay,
        nesterov=cfg.nesterov,
    )
    scheduler = torch.optim.lr_scheduler.MultiStepLR(
        optimizer, milestones=list(cfg.milestones), gamma=cfg.gamma
    )
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    pin = device.type == "cuda"
    train_loader = make_loader(
        train_set, cfg.batch_size, True, seed, cfg.num_workers, drop_last=False, pin_memory=pin
    )
    test_loader = make_loader(
        test_set, cfg.test_batch_size or cfg.batch_size, False, seed, cfg.num_workers, False, pin
    )

    history: list[dict[str, Any]] = []
    start_epoch = 0
    resumed_from = None
    ckpt = Path(checkpoint_path) if checkpoint_path is not None else None
    if ckpt is not None and ckpt.exists():
        state = load_checkpoint(ckpt)
        if state["fingerprint"] != fingerprint:
            raise CheckpointError(
                f"{ckpt}: checkpoint was written for a different config, seed, model or mask "
                "(fingerprint mismatch); delete it to start over"
            )
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            if state.get("scaler"):
                scaler.load_state_dict(state["scaler"])
            if state.get("rng"):
                _set_rng_state(state["rng"], train_loader)
        except (RuntimeError, KeyError, ValueError, TypeError) as exc:
            raise CheckpointError(f"{ckpt}: cannot restore checkpoint ({exc})") from None
        if channels_last:
            model.to(memory_format=torch.channels_last)
        start_epoch = int(state["epoch"])
        history = list(state.get("history", []))
        resumed_from = start_epoch
        say(f"resuming from epoch {start_epoch} ({ckpt})")

    total_batches = len(train_loader)
    if cfg.limit_batches:
        total_batches = min(total_batches, cfg.limit_batches)
    t_start = time.perf_counter()
    warned_nonfinite = False
    with deterministic_mode(
        deterministic, warn_only=device.type == "cuda", cudnn=device.type == "cuda"
    ):
        for epoch in range(start_epoch, cfg.epochs):
            _seed_epoch(seed, epoch, train_loader)
            model.train()
            lr = optimizer.param_groups[0]["lr"]
            loss_sum = torch.zeros((), device=device, dtype=torch.float64)
            correct = torch.zeros((), device=device, dtype=torch.int64)
            seen = 0
            t0 = time.perf_counter()
            bar = _progress(total_batches, f"epoch {epoch + 1}/{cfg.epochs}")
            for b, (x, y) in enumerate(train_loader):
                if b >= total_batches:
                    break
                x, y = _to_device(x, y, device, channels_last)
                with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                    out = main_output(model(x))  # logits; auxiliary outputs are not trained
                    loss = nn.functional.cross_entropy(out, y)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                mask_gradients(pairs)
                scaler.step(optimizer)
                scaler.update()
                apply_masks(pairs)
                n = int(y.shape[0])
                seen += n
                loss_sum += loss.detach().double() * n
                correct += (out.detach().argmax(dim=1) == y).sum()
                bar.update(1)
                if cfg.log_every and (b + 1) % cfg.log_every == 0:
                    say(
                        f"epoch {epoch + 1} batch {b + 1}/{total_batches} "
                        f"loss {float(loss_sum) / seen:.4f}"
                    )
            bar.close()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds = time.perf_counter() - t0
            scheduler.step()
            train_loss = float(loss_sum) / max(seen, 1)
            if not math.isfinite(train_loss) and not warned_nonfinite:
                say(f"epoch {epoch + 1}: training loss is {train_loss}", logging.WARNING)
                warned_nonfinite = True
            last = epoch + 1 == cfg.epochs
            test_acc = None
            if last or (epoch + 1) % cfg.eval_every == 0:
                test_acc = evaluate(model, test_loader, device, amp_dtype, channels_last)
            row = {
                "epoch": epoch + 1,
                "loss": train_loss,
                "train_acc": int(correct) / max(seen, 1),
                "test_acc": test_acc,
                "lr": lr,
                "images_per_s": seen / seconds if seconds > 0 else None,
                "seconds": seconds,
            }
            history.append(row)
            if on_epoch is not None:
                on_epoch(row)
            say(
                f"epoch {epoch + 1}/{cfg.epochs} loss {train_loss:.4f} "
                f"train_acc {row['train_acc']:.4f} "
                f"test_acc {'-' if test_acc is None else f'{test_acc:.4f}'} "
                f"img/s {row['images_per_s'] or 0:.0f} lr {lr:.4g}"
            )
            if ckpt is not None:
                _save_checkpoint(
                    ckpt,
                    {
                        "format": CHECKPOINT_FORMAT,
                        "version": CHECKPOINT_VERSION,
                        "fingerprint": fingerprint,
                        "epoch": epoch + 1,
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "scaler": scaler.state_dict() if scaler.is_enabled() else {},
                        "rng": _rng_state(train_loader),
                        "history": history,
                    },
                )

    if history and history[-1]["test_acc"] is not None and history[-1]["epoch"] == cfg.epochs:
        accuracy = float(history[-1]["test_acc"])
    else:  # zero epochs (untrained baseline) or a checkpoint from a run without final eval
        accuracy = evaluate(model, test_loader, device, amp_dtype, channels_last)
    model.eval()
    prunable = prunable_parameters(model)
    params = {
        "total": sum(p.numel() for p in model.parameters()),
        "prunable": sum(p.numel() for _, p in prunable),
        "prunable_nonzero": sum(int(torch.count_nonzero(p)) for _, p in prunable),
    }
    return TrainResult(
        accuracy=accuracy,
        history=history,
        epochs=cfg.epochs,
        resumed_from=resumed_from,
        seconds=time.perf_counter() - t_start,
        device=str(device),
        amp=None if amp_dtype is None else str(amp_dtype).removeprefix("torch."),
        params=params,
    )
