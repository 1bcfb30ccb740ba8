"""Shared machinery of the pruning-at-initialization (PaI) methods.

Why one module: every method reduces to either *scores -> global top-k* (SNIP, GraSP, SynFlow,
ProsPr) or *layer densities -> random masks with exact per-layer counts* (uniform, ER, ERK). Keeping
the selection rules here means the budget, the tie-breaking and the RNG discipline are identical for
all methods, so differences between masks come from the methods and nothing else.

Conventions (all methods):

* The budget counts every conv and linear weight (``prunable_parameters``) of the inference
  network, never biases or BatchNorm parameters; a request for sparsity ``s`` keeps
  ``round(N * (1 - s))`` weights. Layers an eval-mode forward never runs (auxiliary heads, as in
  GoogLeNet and Inception-v3) are taken out of the copy the method scores, kept dense, left out
  of the budget and listed as ``outside_inference`` in the mask's metadata; a train-mode output
  that is a tuple or named tuple is read through its first field, the logits
  (``snntopo.models.common.main_output``), in scoring and in training alike.
* Global selection sorts scores with a *stable* sort, so equal scores are broken by the flat index
  (module order, then row-major): the lower index wins. The result is a pure function of the scores.
* Randomness comes only from ``torch.Generator`` objects seeded from the caller's seed, on the CPU,
  so the same seed gives the same mask on CPU and CUDA and no global RNG state is consumed.
* Masks are returned as CPU ``torch.bool`` tensors (artifacts are device-free).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..determinism import deterministic_mode
from ..errors import ConfigError, DataError
from ..models import prunable_parameters

log = logging.getLogger("snntopo.pai")

Masks = dict[str, torch.Tensor]
LoaderFactory = Callable[[int], Iterable[tuple[torch.Tensor, torch.Tensor]]]


@dataclass
class PaiContext:
    """Everything a method may use besides the model: seed, device, data and method parameters.

    ``batches`` is the only sanctioned way for a method to read data: it records every batch it
    hands out in a sha256 fingerprint, so the artifact states exactly which inputs shaped the mask.
    """

    seed: int
    device: torch.device
    params: dict[str, Any] = field(default_factory=dict)
    loader_factory: LoaderFactory | None = None
    method: str = ""
    _hash: Any = field(default_factory=hashlib.sha256)
    n_batches: int = 0
    n_samples: int = 0

    def generator(self, salt: int = 0) -> torch.Generator:
        """A fresh CPU generator seeded from the run seed (``salt`` separates independent streams)."""
        g = torch.Generator(device="cpu")
        g.manual_seed(int(self.seed) * 1_000_003 + int(salt))
        return g

    def param(self, name: str, default: Any) -> Any:
        return self.params.get(name, default)

    def batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield ``(x, y)`` batches on the device, fingerprinting each one as it is handed out."""
        if self.loader_factory is None:
            raise ConfigError(
                f"PaI method {self.method!r} needs training data: pass loader_factory "
                "(a function batch_size -> iterable of (inputs, targets) batches)"
            )
        for x, y in self.loader_factory(int(batch_size)):
            self._record(x, y)
            yield x.to(self.device), y.to(self.device)

    def _record(self, x: torch.Tensor, y: torch.Tensor) -> None:
        for t in (x, y):
            t = t.detach().to("cpu").contiguous()
            self._hash.update(str((tuple(t.shape), str(t.dtype))).encode())
            self._hash.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        self.n_batches += 1
        self.n_samples += int(x.shape[0])

    def fingerprint(self) -> str | None:
        return self._hash.hexdigest() if self.n_batches else None


def n_keep(total: int, density: float) -> int:
    """Number of weights a budget keeps: ``round(N * d)`` (Python's round-half-even is fine here:
    it is deterministic and within half a weight of the request)."""
    return int(min(total, max(0, round(total * density))))


def shapes_of(model: nn.Module) -> dict[str, torch.Size]:
    return {name: p.shape for name, p in prunable_parameters(model)}


def split_flat(flat: torch.Tensor, shapes: Mapping[str, torch.Size]) -> Masks:
    """Cut one flat mask over all prunable weights (module order) back into per-layer masks."""
    out: Masks = {}
    offset = 0
    for name, shape in shapes.items():
        n = math.prod(shape)
        out[name] = flat[offset : offset + n].reshape(shape).clone()
        offset += n
    return out


def global_topk(scores: Mapping[str, torch.Tensor], density: float, largest: bool = True) -> Masks:
    """Keep exactly ``round(N * d)`` weights with the largest (or smallest) scores over all layers.

    NaN scores are treated as the least worth keeping. Ties at the threshold are broken by flat
    index (lower index kept first), so the mask is a deterministic function of the scores on any
    device. Selection is a k-th-value threshold (linear time, on the scores' device) rather than a
    full sort, because SynFlow calls this 100 times per mask.
    """
    shapes = {k: v.shape for k, v in scores.items()}
    flat = torch.cat([s.detach().reshape(-1).to(torch.float64) for s in scores.values()])
    key = flat if largest else -flat
    key = torch.nan_to_num(key, nan=-math.inf, posinf=math.inf, neginf=-math.inf)
    total = key.numel()
    k = n_keep(total, density)
    if k == 0:
        keep = torch.zeros(total, dtype=torch.bool, device=key.device)
    elif k == total:
        keep = torch.ones(total, dtype=torch.bool, device=key.device)
    else:
        threshold = torch.kthvalue(key, total - k + 1).values
        keep = key > threshold
        missing = k - int(keep.sum())
        if missing > 0:
            ties = torch.nonzero(key == threshold).reshape(-1)[:missing]
            keep[ties] = True
    return split_flat(keep.to("cpu"), shapes)


def apportion(counts: Mapping[str, int], densities: Mapping[str, float], total_keep: int) -> dict:
    """Integer per-layer budgets from real densities, summing exactly to ``total_keep``.

    Largest-remainder rounding (ties by layer order), capped at each layer's size; this lets the
    layer-wise methods hit the global budget exactly instead of drifting by up to half a weight per
    layer (or by the Bernoulli noise of the reference implementation).
    """
    raw = {k: min(1.0, max(0.0, densities[k])) * counts[k] for k in counts}
    keep = {k: min(counts[k], math.floor(v)) for k, v in raw.items()}
    rest = total_keep - sum(keep.values())
    order = sorted(counts, key=lambda k: -(raw[k] - math.floor(raw[k])))
    # Hand out the remainder one weight at a time, cycling while capacity remains.
    while rest > 0:
        progressed = False
        for k in order:
            if rest == 0:
                break
            if keep[k] < counts[k]:
                keep[k] += 1
                rest -= 1
                progressed = True
        if not progressed:
            break
    while rest < 0:  # only if densities over-ask; take back from the largest remainders last
        for k in reversed(order):
            if rest == 0:
                break
            if keep[k] > 0:
                keep[k] -= 1
                rest += 1
    return keep


def random_layer_masks(
    shapes: Mapping[str, torch.Size], keep: Mapping[str, int], generator: torch.Generator
) -> Masks:
    """Exactly ``keep[name]`` uniformly random positions per layer, drawn from ``generator`` in
    layer order (so the mask is a pure function of the seed and the budgets)."""
    out: Masks = {}
    for name, shape in shapes.items():
        n = math.prod(shape)
        flat = torch.zeros(n, dtype=torch.bool)
        flat[torch.randperm(n, generator=generator)[: keep[name]]] = True
        out[name] = flat.reshape(shape)
    return out


def erk_densities(
    raw: Mapping[str, float], counts: Mapping[str, int], density: float
) -> dict[str, float]:
    """RigL's solve: densities ``eps * raw_l`` with ``sum_l d_l n_l = d N``, capped at 1.

    Layers whose density would exceed 1 are made dense and removed from the solve, the largest
    ``raw`` first, until no density exceeds 1 (the iterative redistribution of Evci et al. 2020).
    """
    total = sum(counts.values())
    if density >= 1.0:
        return {k: 1.0 for k in counts}
    dense: set[str] = set()
    while True:
        free = [k for k in counts if k not in dense]
        if not free:
            return {k: 1.0 for k in counts}
        rhs = density * total - sum(counts[k] for k in dense)
        divisor = sum(raw[k] * counts[k] for k in free)
        eps = rhs / divisor
        worst = max(raw[k] for k in free)
        if eps * worst > 1.0:
            dense.update(k for k in free if raw[k] == worst)
            continue
        out = {k: 1.0 for k in dense}
        out.update({k: eps * raw[k] for k in free})
        return {k: out[k] for k in counts}


def deterministic() -> contextlib.AbstractContextManager[None]:
    """Deterministic kernels (cuDNN included) while a mask is computed; the caller's settings are
    restored afterwards. Warn-only, because a warning is better than refusing to prune."""
    return deterministic_mode(True, warn_only=True)


def num_classes_of(model: nn.Module) -> int:
    """Output width of the network: the last prunable layer's output dimension."""
    return int(prunable_parameters(model)[-1][1].shape[0])


def input_shape_of(model: nn.Module, ctx: PaiContext) -> tuple[int, ...]:
    """Per-sample input shape: ``params['input_shape']``, else a ``model.input_shape`` attribute,
    else (first conv's in-channels, 32, 32), the size every paper data set is resized to. Callers
    with other input sizes (the digits demo) must pass ``input_shape``."""
    if "input_shape" in ctx.params:
        return tuple(int(v) for v in ctx.params["input_shape"])
    if getattr(model, "input_shape", None) is not None:
        return tuple(int(v) for v in model.input_shape)
    first = prunable_parameters(model)[0][1]
    return (int(first.shape[1]), 32, 32)


def need_samples_per_class(
    ctx: PaiContext, batch_size: int, num_classes: int, per_class: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scan shuffled batches until every class has ``per_class`` samples (GraSP's data rule).

    The result is ordered class by class (as the reference's fetch does), so a given stream of
    batches always yields the same tensor.
    """
    xs: list[list[torch.Tensor]] = [[] for _ in range(num_classes)]
    have = [0] * num_classes
    for x, y in ctx.batches(batch_size):
        labels = y.tolist()  # one device sync per batch, not one per sample
        for i, c in enumerate(labels):
            if 0 <= c < num_classes and have[c] < per_class:
                xs[c].append(x[i : i + 1])
                have[c] += 1
        if min(have) >= per_class:
            break
    if min(have) < per_class:
        short = [c for c in range(num_classes) if have[c] < per_class]
        raise DataError(
            f"GraSP needs {per_class} samples per class but the loader ran out; classes short: "
            f"{short[:10]}{' ...' if len(short) > 10 else ''}"
        )
    x = torch.cat([torch.cat(v) for v in xs])
    y = torch.cat(
        [torch.full((per_class,), c, dtype=torch.long, device=x.device) for c in range(num_classes)]
    )
    return x, y


def layerwise_random(
    model: nn.Module,
    density: float,
    ctx: PaiContext,
    raw: Callable[[tuple[int, ...]], float],
) -> Masks:
    """The ER/ERK recipe: raw per-layer densities ``raw(shape)`` scaled to the budget and capped at
    1 (:func:`erk_densities`), exact per-layer counts summing to ``round(N d)`` (:func:`apportion`),
    then a seeded random choice of that many weights in each layer."""
    shapes = shapes_of(model)
    counts = {k: math.prod(s) for k, s in shapes.items()}
    dens = erk_densities({k: raw(tuple(s)) for k, s in shapes.items()}, counts, density)
    keep = apportion(counts, dens, n_keep(sum(counts.values()), density))
    return random_layer_masks(shapes, keep, ctx.generator())


class _Hardsigmoid(nn.Module):
    """``hardsigmoid(x) = relu6(x + 3) / 6`` written with ops torch can differentiate twice
    (``hardsigmoid_backward`` has no derivative, so the second-order methods, GraSP and ProsPr,
    fail through MobileNetV3's squeeze-and-excitation gates)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu6(x + 3.0) / 6.0


def twice_differentiable(model: nn.Module) -> nn.Module:
    """Replace, in place, activation modules whose backward torch cannot differentiate
    (``nn.Hardsigmoid``) by equal functions it can; returns ``model``."""
    for m in list(model.modules()):
        for child_name, child in list(m.named_children()):
            if isinstance(child, nn.Hardsigmoid):
                setattr(m, child_name, _Hardsigmoid())
    return model
