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

import contextlib
import dataclasses
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

from .data import make_loader
from .determinism import deterministic_mode
from .errors import CheckpointError, ConfigError, DeviceError, MaskError
from .io import atomic_path
from .models import prunable_parameters

logger = logging.getLogger("snntopo.train")

CHECKPOINT_FORMAT = "snntopo-train-checkpoint"
CHECKPOINT_VERSION = 1
AMP_CHOICES = ("auto", "off", "bf16", "fp16")


# --------------------------------------------------------------------------------------------------
# config


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one training run; defaults are the paper's CIFAR recipe.

    Build from a plain (YAML/JSON) mapping with :meth:`from_dict`, which rejects unknown keys and
    bad values with a ``ConfigError`` naming the key.
    """

    epochs: int = 160
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    batch_size: int = 128
    test_batch_size: int | None = None
    """Defaults to ``batch_size`` (the reference uses 128 for both)."""
    milestones: tuple[int, ...] = (80, 120)
    gamma: float = 0.1
    nesterov: bool = False
    amp: str = "auto"
    """``auto`` (bf16 on CUDA when supported, else fp16; off on CPU), ``off``, ``bf16``, ``fp16``."""
    channels_last: bool | str = "auto"
    """``auto`` | ``on`` | ``off``. ``auto``: on CUDA when mixed precision is on (tensor-core convs prefer NHWC)."""
    num_workers: int = 0
    device: str = "auto"
    log_every: int = 0
    """Also log every N batches (0: one line per epoch only)."""
    eval_every: int = 1
    """Evaluate on the test set every N epochs (the last epoch is always evaluated)."""
    deterministic: bool | str = "auto"
    """``auto``: deterministic algorithms on CPU, speed (cuDNN autotuning) on CUDA."""
    limit_batches: int = 0
    """Stop each epoch after N batches (0: full epochs). For smoke tests and benchmarks."""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None, where: str = "train") -> TrainConfig:
        """Validate ``d`` (e.g. the ``train:`` section of the config) into a ``TrainConfig``."""
        d = dict(d or {})
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(d) - set(names))
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {', '.join(names)}")
        out: dict[str, Any] = {}
        for key, value in d.items():
            out[key] = _coerce(f"{where}.{key}", key, value)
        cfg = cls(**out)
        cfg.validate(where)
        return cfg

    def validate(self, where: str = "train") -> None:
        def bad(key: str, why: str) -> ConfigError:
            return ConfigError(f"{where}.{key}: {why} (got {getattr(self, key)!r})")

        if self.epochs < 0:
            raise bad("epochs", "must be >= 0")
        if not self.lr > 0:
            raise bad("lr", "must be > 0")
        if not 0 <= self.momentum < 1:
            raise bad("momentum", "must be in [0, 1)")
        if self.weight_decay < 0:
            raise bad("weight_decay", "must be >= 0")
        if self.batch_size < 1:
            raise bad("batch_size", "must be >= 1")
        if self.test_batch_size is not None and self.test_batch_size < 1:
            raise bad("test_batch_size", "must be >= 1")
        if list(self.milestones) != sorted(set(self.milestones)) or any(
            m < 1 for m in self.milestones
        ):
            raise bad("milestones", "must be strictly increasing positive epochs")
        if not 0 < self.gamma <= 1:
            raise bad("gamma", "must be in (0, 1]")
        if self.nesterov and self.momentum == 0:
            raise bad("nesterov", "needs momentum > 0")
        if self.amp not in AMP_CHOICES:
            raise bad("amp", f"must be one of {AMP_CHOICES}")
        for key in ("channels_last", "deterministic"):
            if getattr(self, key) not in (True, False, "auto"):
                raise bad(key, "must be true, false or 'auto'")
        for key in ("num_workers", "log_every", "limit_batches"):
            if getattr(self, key) < 0:
                raise bad(key, "must be >= 0")
        if self.eval_every < 1:
            raise bad("eval_every", "must be >= 1")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["milestones"] = list(self.milestones)
        return d


_INT_KEYS = {"epochs", "batch_size", "num_workers", "log_every", "eval_every", "limit_batches"}
_FLOAT_KEYS = {"lr", "momentum", "weight_decay", "gamma"}


def _coerce(where: str, key: str, value: Any) -> Any:
    if key in _INT_KEYS or (key == "test_batch_size" and value is not None):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if key in _FLOAT_KEYS:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{where}: must be finite, got {value!r}")
        return float(value)
    if key == "milestones":
        if not isinstance(value, list | tuple) or any(
            isinstance(m, bool) or not isinstance(m, int) for m in value
        ):
            raise ConfigError(f"{where}: expected a list of integer epochs, got {value!r}")
        return tuple(value)
    if key == "nesterov":
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if key in ("channels_last", "deterministic"):
        words = {"on": True, "true": True, "off": False, "false": False, "auto": "auto"}
        if isinstance(value, str) and value.lower() in words:
            return words[value.lower()]
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected auto, on/true or off/false, got {value!r}")
        return value
    if key in ("amp", "device"):
        if value is False or value is None:
            value = "off" if key == "amp" else value
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value.lower() if key == "amp" else value
    return value


def paper_recipe(dataset: str, arch: str) -> dict[str, Any]:
    """The reference's training hyperparameters for (dataset, arch) as a ``TrainConfig`` dict
    (spec A: 160 epochs / [80, 120] on CIFAR, 100 epochs on Tiny-ImageNet; wd 5e-4 for WRN)."""
    wd = 5e-4 if arch.startswith("wrn") else 1e-4
    if dataset == "tinyimagenet":
        milestones = [20, 60, 80] if arch == "conv6" else [30, 60, 80]
        return {"epochs": 100, "milestones": milestones, "weight_decay": wd}
    return {"epochs": 160, "milestones": [80, 120], "weight_decay": wd}


# --------------------------------------------------------------------------------------------------
# device, precision


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA if available, else CPU. An explicit device this machine lacks is a
    ``DeviceError`` (never a silent fallback: a 160-epoch run on CPU by mistake costs days)."""
    name = str(name or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(f"device: {name!r} is not a device name ({exc})") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(
                f"device {name!r} requested but CUDA is not available on this machine "
                f"(torch {torch.__version__}, built for CUDA {torch.version.cuda}); "
                "use device: auto or cpu"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(
                f"device {name!r} requested but only {torch.cuda.device_count()} GPU(s) exist"
            )
    elif dev.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise DeviceError(f"device {name!r} requested but MPS is not available")
    elif dev.type != "cpu":
        raise DeviceError(f"device {name!r}: unsupported device type {dev.type!r}")
    return dev


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype, or None for full float32. Mixed precision only pays off on CUDA."""
    if amp == "off":
        return None
    if amp == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if amp == "fp16" and device.type != "cuda":
        raise ConfigError(f"train.amp: fp16 autocast needs CUDA (device is {device})")
    return torch.bfloat16 if amp == "bf16" else torch.float16


def _resolve_flag(value: bool | str, auto: bool) -> bool:
    return auto if value == "auto" else bool(value)


# --------------------------------------------------------------------------------------------------
# masks


def prepare_masks(model: nn.Module, masks: Mapping[str, Any] | None) -> dict[str, torch.Tensor]:
    """Validate masks against the model's prunable parameters; return them as bool CPU tensors.

    Keys are parameter names (``prunable_parameters``). A prunable parameter without a mask stays
    dense; an unknown key or a shape mismatch is a ``MaskError`` naming the key.
    """
    if not masks:
        return {}
    params = dict(prunable_parameters(model))
    out: dict[str, torch.Tensor] = {}
    for name, m in masks.items():
        if name not in params:
            raise MaskError(
                f"mask key {name!r} is not a prunable parameter of {type(model).__name__} "
                f"(expected keys like {list(params)[:3]})"
            )
        t = torch.as_tensor(m)
        if tuple(t.shape) != tuple(params[name].shape):
            raise MaskError(
                f"mask {name!r} has shape {tuple(t.shape)}, parameter has "
                f"{tuple(params[name].shape)}"
            )
        out[name] = t.detach().to("cpu", torch.bool)
    return out


def _device_masks(
    model: nn.Module, masks: Mapping[str, torch.Tensor]
) -> list[tuple[nn.Parameter, torch.Tensor]]:
    """(parameter, multiplicative mask) pairs, masks in the parameter's dtype/device/layout."""
    params = dict(model.named_parameters())
    pairs = []
    for name, m in masks.items():
        p = params[name]
        mf = m.to(device=p.device, dtype=p.dtype)
        if p.dim() == 4 and p.is_contiguous(memory_format=torch.channels_last):
            mf = mf.contiguous(memory_format=torch.channels_last)
        pairs.append((p, mf))
    return pairs


@torch.no_grad()
def apply_masks(pairs: list[tuple[nn.Parameter, torch.Tensor]]) -> None:
    """Zero the pruned weights in place."""
    for p, m in pairs:
        p.mul_(m)


@torch.no_grad()
def mask_gradients(pairs: list[tuple[nn.Parameter, torch.Tensor]]) -> None:
    """Zero the gradients of pruned weights in place (before the optimizer sees them)."""
    for p, m in pairs:
        if p.grad is not None:
            p.grad.mul_(m)


# --------------------------------------------------------------------------------------------------
# loop


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
                    out = model(x)
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


def train_masked(
    model: nn.Module,
    masks: Mapping[str, Any] | None,
    train_set: Dataset,
    test_set: Dataset,
    cfg: TrainConfig | Mapping[str, Any] | None = None,
    seed: int = 0,
    checkpoint_path: str | os.PathLike[str] | None = None,
    log: Log = None,
) -> TrainResult:
    """Train ``model`` (in place) with its pruned weights held at zero; return accuracy + history.

    ``masks`` maps prunable parameter names to bool tensors (``None``/empty: dense). With
    ``checkpoint_path`` a checkpoint is written atomically after every epoch, and an existing
    one is resumed ("resuming from epoch k"). The model ends on the training device, in eval mode.
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
                    out = model(x)
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


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


__all__ = [
    "TrainConfig",
    "TrainResult",
    "apply_masks",
    "evaluate",
    "load_checkpoint",
    "mask_gradients",
    "paper_recipe",
    "prepare_masks",
    "resolve_amp",
    "resolve_device",
    "train_masked",
]
