"""Device and precision choice for training and data-driven PaI."""

from __future__ import annotations

import logging
import os

import torch

from ..errors import ConfigError, DeviceError

log = logging.getLogger("snntopo.device")


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


def job_device(name: str = "auto", gpus: int = 0) -> torch.device:
    """The device of a workflow job that was granted ``gpus`` GPUs (its ``gpu`` resource), logged.

    ``auto`` takes CUDA when present; but a job granted a GPU that finds no CUDA stops with a
    ``DeviceError`` instead of quietly training on the CPU (a CPU-only PyTorch in the job's
    environment, or a scheduler that did not expose the GPU). ``device: cpu`` is the opt-in.
    """
    name = str(name or "auto").strip().lower()
    dev = resolve_device(name)
    if name == "auto" and gpus > 0 and dev.type != "cuda":
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        raise DeviceError(
            f"this job was given {gpus} GPU(s) (resources.train_gpus) but CUDA is not available "
            f"(torch {torch.__version__}, built for CUDA {torch.version.cuda or 'none'}; "
            f"CUDA_VISIBLE_DEVICES={visible if visible is not None else 'unset'}): "
            "install a CUDA build of PyTorch in the job's environment, or set `device: cpu` to "
            "run on the CPU anyway (or `resources.train_gpus: 0` to ask for no GPU)"
        )
    if dev.type == "cpu" and gpus > 0:
        log.warning("device: cpu although this job holds %d GPU(s) (device: %s)", gpus, name)
    detail = ""
    if dev.type == "cuda":
        detail = f" ({torch.cuda.get_device_name(dev)})"
    elif name == "auto":
        detail = " (auto: CUDA is not available)"
    log.info("device: %s%s", dev, detail)
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
