"""Helpers shared by the architectures: width scaling, initialisation, prunable parameters."""

from __future__ import annotations

import torch
from torch import nn


def scaled(channels: int, width: float) -> int:
    """Channel count under a width multiplier (the demo shrinks models; 1.0 is the paper).

    A width that leaves a layer with less than one channel is an error, not a silent 1: widths
    1e-9 and 0.01 built the same network and recorded different widths."""
    n = int(round(channels * width))
    if n < 1:
        from ..errors import ConfigError

        raise ConfigError(
            f"width {width:g} leaves a {channels}-channel layer with no channel "
            f"(round({channels} x {width:g}) = 0); use a width above {0.5 / channels:g}"
        )
    return n


def init_weights(model: nn.Module) -> nn.Module:
    """The paper's initialisation: Kaiming normal (fan_in, ReLU gain) on every conv/linear weight,
    zero biases. BatchNorm keeps PyTorch's defaults (weight 1, bias 0)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return model


def prunable_parameters(model: nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
    """Every conv and linear *weight*, in module order: the tensors a PaI method may prune.

    Biases and BatchNorm parameters are never pruned (the paper's setting).
    """
    out = []
    for mod_name, m in model.named_modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            out.append((f"{mod_name}.weight" if mod_name else "weight", m.weight))
    return out


def main_output(out):
    """A model's prediction: the output itself, or the first field of a tuple or named tuple
    (torchvision's GoogLeNet and Inception-v3 return ``(logits, aux_logits...)`` in train mode).
    PaI scoring, training and the encoders all read the inference network through it."""
    if isinstance(out, tuple | list):
        return out[0]
    return out


def drop_outside_inference(model: nn.Module, input_shape: tuple[int, ...] | list[int]) -> list[str]:
    """Remove, in place, the conv/linear layers an eval-mode forward does not run (auxiliary
    heads): each largest submodule whose prunable weights are all unused is set to ``None`` on its
    parent (torchvision's forward skips ``None`` auxiliary heads). Returns the removed weights'
    names (``prunable_parameters`` spelling), in module order; ``[]`` if every weight is used."""
    used: set[str] = set()
    names = {m: n for n, m in model.named_modules()}
    hooks = [
        m.register_forward_hook(lambda mod, _i, _o: used.add(names[mod]))
        for m in model.modules()
        if isinstance(m, nn.Conv2d | nn.Linear)
    ]
    was_training = model.training
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros((1, *[int(s) for s in input_shape]), device=device, dtype=dtype))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    unused = [n for n, _ in prunable_parameters(model) if n.rsplit(".", 1)[0] not in used]
    if not unused:
        return []
    unused_set = set(unused)
    for mod_name, mod in list(model.named_modules()):
        if not mod_name or not _attached(model, mod_name):  # gone with a removed ancestor
            continue
        own = [f"{mod_name}.{n}" for n, _ in prunable_parameters(mod)]
        if own and all(n in unused_set for n in own):
            parent_name, _, child = mod_name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, None)
    return unused


def _attached(model: nn.Module, name: str) -> bool:
    try:
        model.get_submodule(name)
    except AttributeError:
        return False
    return True
