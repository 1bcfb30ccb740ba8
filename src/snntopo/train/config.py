"""The training recipe of one run (``TrainConfig``): validation and coercion of the config's
``training:`` mapping. Torch-free, so the config check (planning) can validate every grid point's
recipe with the trainer's own rules without importing torch."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError

AMP_CHOICES = ("auto", "off", "bf16", "fp16")


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
    (160 epochs / [80, 120] on CIFAR, 100 epochs on Tiny-ImageNet; the architecture's registered
    recipe on top, e.g. weight decay 5e-4 for WRN-28-2)."""
    from ..models import arch_facts

    arch_recipe = dict(arch_facts(arch).training)
    wd = float(arch_recipe.get("weight_decay", 1e-4))
    if dataset == "tinyimagenet":
        milestones = [20, 60, 80] if arch == "conv6" else [30, 60, 80]
        return {"epochs": 100, "milestones": milestones, "weight_decay": wd}
    return {"epochs": 160, "milestones": [80, 120], "weight_decay": wd}
