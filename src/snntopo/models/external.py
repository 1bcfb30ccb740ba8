"""Architectures from outside snntopo: torchvision classifiers and users' own module factories.

Two name forms, accepted wherever an architecture is named (config ``architectures:``, ``--arch``):

- ``torchvision:<name>``: a torchvision classification constructor (``torchvision.models.<name>``),
  built with the data set's ``num_classes`` and, from the config's
  ``model: {kwargs: {"torchvision:<name>": {...}}}``, any extra constructor arguments. The model keeps
  torchvision's own initialisation. If the data set does not have 3 channels, the first conv is
  replaced by one with the data set's channel count (same geometry).
- ``module:<dotted.path>:<callable>``: ``callable(num_classes=, in_channels=, input_size=, **kwargs)``
  from an importable module, returning an ``nn.Module``.

Paths use :func:`slug` (``torchvision__resnet18``, ``module__pkg.mod__make``), which is safe on any
file system and maps back with :func:`unslug`; artifact metadata carry the full name.

Why a static name list: the config check (and ``snakemake -n``) must not import torch or
torchvision; :data:`TORCHVISION_CLASSIFIERS` is the classification list of torchvision 0.29
(``torchvision.models.list_models(module=torchvision.models)``; a test keeps it equal). At build
time the installed torchvision's own list decides.
"""

from __future__ import annotations

import difflib
import importlib
import re
from typing import Any

from ..errors import ConfigError
from ..gridpoint import MODULE, TORCHVISION, slug_problem, unslug
from ..gridpoint import slug as slug  # the path form of a name lives with the grid point
from ..memcheck import available_memory_bytes

#: torchvision's classification constructors (see module docstring).
TORCHVISION_CLASSIFIERS: tuple[str, ...] = (
    "alexnet", "convnext_base", "convnext_large", "convnext_small", "convnext_tiny",
    "densenet121", "densenet161", "densenet169", "densenet201",
    "efficientnet_b0", "efficientnet_b1", "efficientnet_b2", "efficientnet_b3", "efficientnet_b4",
    "efficientnet_b5", "efficientnet_b6", "efficientnet_b7",
    "efficientnet_v2_l", "efficientnet_v2_m", "efficientnet_v2_s",
    "googlenet", "inception_v3", "maxvit_t",
    "mnasnet0_5", "mnasnet0_75", "mnasnet1_0", "mnasnet1_3",
    "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small",
    "regnet_x_16gf", "regnet_x_1_6gf", "regnet_x_32gf", "regnet_x_3_2gf", "regnet_x_400mf",
    "regnet_x_800mf", "regnet_x_8gf", "regnet_y_128gf", "regnet_y_16gf", "regnet_y_1_6gf",
    "regnet_y_32gf", "regnet_y_3_2gf", "regnet_y_400mf", "regnet_y_800mf", "regnet_y_8gf",
    "resnet101", "resnet152", "resnet18", "resnet34", "resnet50",
    "resnext101_32x8d", "resnext101_64x4d", "resnext50_32x4d",
    "shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0",
    "squeezenet1_0", "squeezenet1_1",
    "swin_b", "swin_s", "swin_t", "swin_v2_b", "swin_v2_s", "swin_v2_t",
    "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn",
    "vit_b_16", "vit_b_32", "vit_h_14", "vit_l_16", "vit_l_32",
    "wide_resnet101_2", "wide_resnet50_2",
)  # fmt: skip

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_MODULE_NAME = re.compile(rf"^module:({_IDENT}(?:\.{_IDENT})*):({_IDENT})$")


def is_external(name: str) -> bool:
    """True for the ``torchvision:`` and ``module:`` forms (also their slugs)."""
    name = unslug(str(name))
    return name.startswith(TORCHVISION) or name.startswith(MODULE)


def validate_name(name: str, where: str = "architecture") -> str:
    """Check an external name without importing torch; returns the canonical (unslugged) name.

    Raises :class:`ConfigError` naming the value, with a "did you mean" for torchvision names.
    """
    name = unslug(str(name))
    if name.startswith(TORCHVISION):
        tv = name[len(TORCHVISION) :]
        if tv not in TORCHVISION_CLASSIFIERS:
            close = difflib.get_close_matches(tv, TORCHVISION_CLASSIFIERS, n=1)
            hint = f"; did you mean '{TORCHVISION}{close[0]}'?" if close else ""
            raise ConfigError(
                f"{where} {name!r}: torchvision has no classification model {tv!r}{hint}"
            )
        return name
    if name.startswith(MODULE):
        if not _MODULE_NAME.match(name):
            raise ConfigError(
                f"{where} {name!r:.120}: expected 'module:<dotted.module.path>:<callable>'"
            )
        why = slug_problem(name)
        if why:
            raise ConfigError(f"{where} {name!r:.120}: {why}")
        return name
    raise ConfigError(f"{where} {name!r} is neither 'torchvision:<name>' nor 'module:<path>:<fn>'")


def build(
    name: str,
    num_classes: int = 10,
    in_channels: int = 3,
    input_size: int = 32,
    kwargs: dict[str, Any] | None = None,
) -> Any:
    """Construct the external architecture ``name`` (see module docstring)."""
    from torch import nn

    name = validate_name(name)
    kwargs = dict(kwargs or {})
    if name.startswith(TORCHVISION):
        import torchvision

        tv = name[len(TORCHVISION) :]
        available = torchvision.models.list_models(module=torchvision.models)
        if tv not in available:
            close = difflib.get_close_matches(tv, available, n=1)
            hint = f"; did you mean '{TORCHVISION}{close[0]}'?" if close else ""
            raise ConfigError(f"architecture {name!r}: not in the installed torchvision{hint}")
        try:
            _check_size(
                name,
                kwargs,
                lambda: torchvision.models.get_model(tv, num_classes=int(num_classes), **kwargs),
            )
            model = torchvision.models.get_model(tv, num_classes=int(num_classes), **kwargs)
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"architecture {name!r}: constructor arguments {kwargs}: {exc}"
            ) from None
        if int(in_channels) != 3:
            _set_in_channels(model, int(in_channels))
        return model
    m = _MODULE_NAME.match(name)
    assert m is not None  # validate_name checked the form
    path, fn = m.group(1), m.group(2)
    try:
        module = importlib.import_module(path)
    except ImportError as exc:
        raise ConfigError(f"architecture {name!r}: cannot import {path!r}: {exc}") from None
    factory = getattr(module, fn, None)
    if not callable(factory):
        raise ConfigError(f"architecture {name!r}: {path!r} has no callable {fn!r}")

    def make() -> Any:
        return factory(
            num_classes=int(num_classes),
            in_channels=int(in_channels),
            input_size=int(input_size),
            **kwargs,
        )

    try:
        _check_size(name, kwargs, make)
        model = make()
    except TypeError as exc:
        raise ConfigError(
            f"architecture {name!r}: {fn}(num_classes=, in_channels=, input_size=, ...) "
            f"failed: {exc}"
        ) from None
    if not isinstance(model, nn.Module):
        raise ConfigError(
            f"architecture {name!r}: {fn} returned {type(model).__name__}, not a Module"
        )
    return model


def _check_size(name: str, kwargs: dict[str, Any], make: Any) -> None:
    """Refuse, before allocating, a model whose parameters alone exceed the memory available:
    it is first built on torch's ``meta`` device (shapes, no storage) and its float32 parameter
    bytes estimated (``width_mult=100000`` asked for terabytes and ended in a traceback). A
    constructor that cannot run on the meta device is built as before."""
    import torch

    try:
        with torch.device("meta"):
            probe = make()
        n = sum(p.numel() for p in probe.parameters())
    except Exception:  # noqa: BLE001 - an estimate only: the real build reports its own errors
        return
    need = 4 * n
    have = available_memory_bytes()
    if have is not None and need > have:
        raise ConfigError(
            f"architecture {name!r} with {kwargs}: its {n:,} parameters alone need "
            f"{need / 2**30:,.1f} GiB; {have / 2**30:,.1f} GiB of memory is available"
        )


def _set_in_channels(model: Any, in_channels: int) -> None:
    """Replace the first conv with one reading ``in_channels`` channels (same geometry)."""
    from torch import nn

    first = next((n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)), None)
    if first is None:
        return
    parent_name, _, child_name = first.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    child = getattr(parent, child_name)
    new = nn.Conv2d(
        in_channels,
        child.out_channels,
        child.kernel_size,
        child.stride,
        child.padding,
        child.dilation,
        1,
        child.bias is not None,
        child.padding_mode,
    )
    setattr(parent, child_name, new)
