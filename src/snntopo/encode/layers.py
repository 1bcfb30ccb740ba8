"""The layer spec (``layers.json``): a torch-free description of a network's conv/linear layers.

Why a spec at all: every graph encoding is a pure function of (spec, masked weights). Extracting the
geometry once, by *tracing* the model instead of reading ``named_modules`` (what the reference code
does), gets the things the reference has to guess right by construction: the real feature-map sizes
(no padding arithmetic), functional pooling, which tensor is added to which (residual shortcuts),
and the flatten order of the classifier.

How: ``torch.fx.symbolic_trace`` + ``ShapeProp`` on a batch of one. Each traced value is mapped to a
*descriptor*: the node block it comes from, the pooling windows applied to it since, and whether it
was flattened. Conv/linear calls create layers and blocks; BN/ReLU/Dropout/Identity pass values
through; pooling appends a window; ``a + b`` merges a main path and a shortcut (see
:func:`_merge_add`). Anything else raises :class:`UnsupportedOpError` naming the op.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass, field, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from ..errors import SnntopoError

SHORTCUT_NAME = re.compile(r"shortcut|downsample", re.IGNORECASE)

_PASS_MODULES = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.ELU,
    nn.GELU,
    nn.SiLU,
    nn.Sigmoid,
    nn.Tanh,
    nn.Dropout,
    nn.Dropout2d,
    nn.Identity,
)
_PASS_FUNCTIONS = {F.relu, torch.relu, F.dropout, F.gelu, torch.sigmoid, torch.tanh, F.silu}
_PASS_METHODS = {"relu", "relu_", "contiguous", "sigmoid", "tanh"}


class UnsupportedOpError(SnntopoError, NotImplementedError):
    """The model uses an operation the layer-spec walker cannot turn into graph structure."""


@dataclass
class _Value:
    """What a traced tensor is, seen from the graph: a node block plus pending pools/flatten."""

    block: str
    pools: list[dict[str, Any]] = field(default_factory=list)
    flatten: bool = False
    fresh_layer: str | None = None  # layer whose raw output this is (no add in between)


def _pair(v: Any) -> list[int]:
    if isinstance(v, tuple | list):
        return [int(v[0]), int(v[1] if len(v) > 1 else v[0])]
    return [int(v), int(v)]


def _shape(node: fx.Node) -> list[int]:
    meta = node.meta.get("tensor_meta")
    if meta is None:
        raise UnsupportedOpError(
            f"no shape for traced value {node.name!r} ({node.op} {node.target})"
        )
    return [int(s) for s in meta.shape[1:]]


def _pool_window(
    kind: str, kernel: Any, stride: Any, padding: Any, in_shape: list[int], out_shape: list[int]
) -> dict[str, Any]:
    k = _pair(kernel)
    s = _pair(stride if stride not in (None, ()) else kernel)
    return {
        "kind": kind,
        "kernel": k,
        "stride": s,
        "padding": _pair(padding),
        "in_shape": list(in_shape),
        "out_shape": list(out_shape),
    }


def _adaptive_window(in_shape: list[int], out_shape: list[int]) -> dict[str, Any]:
    (_, h, w), (_, oh, ow) = in_shape, out_shape
    if h % oh or w % ow:
        raise UnsupportedOpError(
            f"AdaptiveAvgPool2d from {h}x{w} to {oh}x{ow} has unequal windows; "
            "only divisible sizes are supported"
        )
    return _pool_window("avg", (h // oh, w // ow), (h // oh, w // ow), 0, in_shape, out_shape)


def layer_spec(
    model: nn.Module,
    input_shape: tuple[int, ...] | list[int],
    arch: str | None = None,
    num_classes: int | None = None,
) -> dict[str, Any]:
    """Trace ``model`` on an input of shape ``input_shape`` (C, H, W) and return the layer spec.

    The spec format is documented in ``docs/architecture.md``. Layers come in execution order
    (equal to module order for the bundled models). A conv whose output is added to a main-path
    conv output is a ``role: "shortcut"`` layer writing into the main conv's block: it is
    recognised by its name (``shortcut``/``downsample``) or, failing that, structurally as the
    operand whose input block is older (it skips over the main path). An addend that is not a
    fresh conv output is an identity shortcut and is recorded in ``identity_shortcuts``.
    """
    input_shape = [int(s) for s in input_shape]
    was_training = model.training
    model.eval()
    try:
        gm = fx.symbolic_trace(model)
        with torch.no_grad():
            ShapeProp(gm).propagate(torch.zeros(1, *input_shape))
    except UnsupportedOpError:
        raise
    except Exception as exc:  # tracing errors are about the model, say so plainly
        raise UnsupportedOpError(f"cannot trace model {type(model).__name__}: {exc}") from exc
    finally:
        model.train(was_training)

    modules = dict(gm.named_modules())
    blocks: dict[str, list[int]] = {"input": input_shape}
    layers: list[dict[str, Any]] = []
    by_name: dict[str, dict[str, Any]] = {}
    identity: list[dict[str, str]] = []
    values: dict[fx.Node, Any] = {}
    seen_modules: set[str] = set()
    consumed: set[str] = set()
    num_out: int | None = None

    def new_layer(node: fx.Node, name: str, m: nn.Module, src: _Value) -> _Value:
        if name in seen_modules:
            raise UnsupportedOpError(f"module {name!r} is called twice (shared weights)")
        seen_modules.add(name)
        consumed.add(src.block)
        in_shape = src.pools[-1]["out_shape"] if src.pools else blocks[src.block]
        out_shape = _shape(node)
        param = f"{name}.weight"
        layer: dict[str, Any] = {"name": name, "param": param}
        if isinstance(m, nn.Conv2d):
            if src.flatten:
                raise UnsupportedOpError(f"conv {name!r} applied to a flattened tensor")
            if m.padding_mode != "zeros":
                raise UnsupportedOpError(f"conv {name!r} uses padding_mode={m.padding_mode!r}")
            pad = m.padding
            if isinstance(pad, str):  # 'same'/'valid': resolve to numbers from the shapes
                pad = [
                    0 if pad == "valid" else (m.dilation[i] * (m.kernel_size[i] - 1)) // 2
                    for i in range(2)
                ]
            layer.update(
                kind="conv",
                kernel=_pair(m.kernel_size),
                stride=_pair(m.stride),
                padding=_pair(pad),
                dilation=_pair(m.dilation),
                groups=int(m.groups),
            )
        else:
            in_feat = 1
            for s in in_shape:
                in_feat *= s
            if len(in_shape) != 1 and not src.flatten:
                raise UnsupportedOpError(
                    f"linear {name!r} applied to a {len(in_shape) + 1}-D tensor"
                )
            if in_feat != m.in_features:
                raise UnsupportedOpError(
                    f"linear {name!r} expects {m.in_features} features, sees {in_shape}"
                )
            layer.update(kind="linear", flatten=bool(src.flatten or len(in_shape) != 1))
        layer.update(
            role="main",
            in_block=src.block,
            out_block=name,
            in_shape=list(in_shape),
            out_shape=out_shape,
            pools=[dict(p) for p in src.pools],
            weight_shape=[int(s) for s in m.weight.shape],
            bias=m.bias is not None,
        )
        layers.append(layer)
        by_name[name] = layer
        blocks[name] = out_shape
        return _Value(block=name, fresh_layer=name)

    for node in gm.graph.nodes:
        if node.op == "placeholder":
            values[node] = _Value("input")
            continue
        if node.op == "output":
            out = node.args[0]
            if isinstance(out, fx.Node) and isinstance(values.get(out), _Value):
                v = values[out]
                if v.pools:
                    raise UnsupportedOpError("the network output is a pooled tensor, not a layer")
                final = v.block
                num_out = int(torch.Size(blocks[final]).numel())
            continue
        args = [values.get(a) if isinstance(a, fx.Node) else a for a in node.args]
        tensors = [a for a in args if isinstance(a, _Value)]
        if node.op == "call_module":
            m = modules[node.target]
            src = tensors[0]
            if isinstance(m, nn.Conv2d | nn.Linear):
                values[node] = new_layer(node, str(node.target), m, src)
            elif isinstance(m, _PASS_MODULES):
                values[node] = src
            elif isinstance(m, nn.MaxPool2d | nn.AvgPool2d):
                if isinstance(m, nn.MaxPool2d) and _pair(m.dilation) != [1, 1]:
                    raise UnsupportedOpError(f"MaxPool2d {node.target!r} with dilation")
                kind = "max" if isinstance(m, nn.MaxPool2d) else "avg"
                values[node] = _pooled(src, blocks, node, kind, m.kernel_size, m.stride, m.padding)
            elif isinstance(m, nn.AdaptiveAvgPool2d | nn.AdaptiveMaxPool2d):
                in_shape = src.pools[-1]["out_shape"] if src.pools else blocks[src.block]
                win = _adaptive_window(in_shape, _shape(node))
                if isinstance(m, nn.AdaptiveMaxPool2d):
                    win["kind"] = "max"
                values[node] = replace(src, pools=[*src.pools, win], fresh_layer=None)
            elif isinstance(m, nn.Flatten):
                values[node] = replace(src, flatten=True, fresh_layer=None)
            elif isinstance(m, nn.Sequential) and len(m) == 0:
                values[node] = src
            else:
                raise UnsupportedOpError(
                    f"unsupported module {node.target!r} of type {type(m).__name__}"
                )
        elif node.op == "call_function":
            fn = node.target
            if fn in (operator.add, torch.add) or getattr(fn, "__name__", "") == "add":
                if len(tensors) != 2:
                    raise UnsupportedOpError(f"add {node.name!r} of {len(tensors)} tensors")
                values[node] = _merge_add(*tensors, by_name, blocks, identity, consumed)
            elif fn in _PASS_FUNCTIONS:
                values[node] = tensors[0]
            elif fn is torch.flatten:
                values[node] = replace(tensors[0], flatten=True, fresh_layer=None)
            elif fn in (F.max_pool2d, F.avg_pool2d):
                kw = dict(zip(("kernel_size", "stride", "padding"), node.args[1:], strict=False))
                kw.update({k: v for k, v in node.kwargs.items() if k in kw or k != "input"})
                kind = "max" if fn is F.max_pool2d else "avg"
                values[node] = _pooled(
                    tensors[0],
                    blocks,
                    node,
                    kind,
                    kw["kernel_size"],
                    kw.get("stride"),
                    kw.get("padding", 0),
                )
            elif fn is F.adaptive_avg_pool2d:
                src = tensors[0]
                in_shape = src.pools[-1]["out_shape"] if src.pools else blocks[src.block]
                win = _adaptive_window(in_shape, _shape(node))
                values[node] = replace(src, pools=[*src.pools, win], fresh_layer=None)
            elif fn is getattr:
                values[node] = None
            else:
                raise UnsupportedOpError(f"unsupported function {getattr(fn, '__name__', fn)!r}")
        elif node.op == "call_method":
            name = str(node.target)
            if name in _PASS_METHODS:
                values[node] = tensors[0]
            elif name == "size" or name == "dim":
                values[node] = None
            elif name in ("flatten", "view", "reshape"):
                shp = node.meta.get("tensor_meta")
                if shp is None or len(shp.shape) != 2:
                    raise UnsupportedOpError(f"{name} {node.name!r} that is not a flatten to 2-D")
                values[node] = replace(tensors[0], flatten=True, fresh_layer=None)
            elif name == "add":
                values[node] = _merge_add(*tensors[:2], by_name, blocks, identity, consumed)
            else:
                raise UnsupportedOpError(f"unsupported tensor method {name!r}")
        elif node.op == "get_attr":
            raise UnsupportedOpError(f"unsupported parameter access {node.target!r}")

    if not layers:
        raise UnsupportedOpError("the model has no conv or linear layer")
    live = ["input"] + [lay["out_block"] for lay in layers if lay["role"] == "main"]
    spec = {
        "arch": arch,
        "input_shape": input_shape,
        "num_classes": num_classes if num_classes is not None else num_out,
        "blocks": [{"name": b, "shape": list(blocks[b])} for b in live],
        "layers": layers,
        "identity_shortcuts": identity,
    }
    validate_spec(spec)
    return spec


def _pooled(
    src: _Value,
    blocks: dict[str, list[int]],
    node: fx.Node,
    kind: str,
    kernel: Any,
    stride: Any,
    padding: Any,
) -> _Value:
    if src.flatten:
        raise UnsupportedOpError(f"pooling {node.name!r} of a flattened tensor")
    in_shape = src.pools[-1]["out_shape"] if src.pools else blocks[src.block]
    win = _pool_window(kind, kernel, stride, padding, in_shape, _shape(node))
    return replace(src, pools=[*src.pools, win], fresh_layer=None)


def _merge_add(
    a: _Value,
    b: _Value,
    by_name: dict[str, dict[str, Any]],
    blocks: dict[str, list[int]],
    identity: list[dict[str, str]],
    consumed: set[str],
) -> _Value:
    """Residual sum: decide which addend is the main path and record the shortcut.

    Name rule first (``shortcut``/``downsample`` in the module name), then structure: of two fresh
    conv outputs, the shortcut is the one whose input block is older. An addend that is not a fresh
    conv output (or one another layer has already read) is an identity shortcut from its block.
    """
    if a.pools or b.pools or a.flatten or b.flatten:
        raise UnsupportedOpError("residual add of pooled or flattened tensors")
    order = list(blocks)
    # A layer output already read by another layer is an older block (an identity addend).
    fa = a.fresh_layer if a.block not in consumed else None
    fb = b.fresh_layer if b.block not in consumed else None
    if fa is None and fb is None:
        raise UnsupportedOpError(f"add of two non-layer tensors (blocks {a.block!r}, {b.block!r})")
    if fa is not None and fb is not None:
        la, lb = by_name[fa], by_name[fb]
        na, nb = bool(SHORTCUT_NAME.search(fa)), bool(SHORTCUT_NAME.search(fb))
        if na != nb:
            main, short = (lb, la) if na else (la, lb)
        else:
            ia, ib = order.index(la["in_block"]), order.index(lb["in_block"])
            if ia == ib:
                raise UnsupportedOpError(f"cannot tell main path from shortcut in {fa} + {fb}")
            main, short = (la, lb) if ia > ib else (lb, la)
        if short["role"] == "shortcut":
            raise UnsupportedOpError(f"layer {short['name']!r} is added twice")
        if blocks[short["out_block"]] != blocks[main["out_block"]]:
            raise UnsupportedOpError(f"shortcut {short['name']!r} shape differs from main path")
        blocks.pop(short["out_block"], None)
        short["role"] = "shortcut"
        short["out_block"] = main["out_block"]
        return _Value(block=main["out_block"])
    main_v, other = (a, b) if fa is not None else (b, a)
    if blocks[other.block] != blocks[main_v.block]:
        raise UnsupportedOpError(f"identity shortcut from {other.block!r} changes shape")
    identity.append({"from_block": other.block, "to_block": main_v.block})
    return _Value(block=main_v.block)


def validate_spec(spec: dict[str, Any]) -> None:
    """Check a spec's internal consistency (used on load too: layers.json is an input artifact)."""
    names = [b["name"] for b in spec.get("blocks", [])]
    if not names or names[0] != "input":
        raise SnntopoError("layer spec: first block must be 'input'")
    shapes = {b["name"]: b["shape"] for b in spec["blocks"]}
    for lay in spec["layers"]:
        for key in ("in_block", "out_block"):
            if lay[key] not in shapes:
                raise SnntopoError(f"layer spec: layer {lay['name']!r} refers to unknown {key}")
        if shapes[lay["out_block"]] != lay["out_shape"]:
            raise SnntopoError(f"layer spec: layer {lay['name']!r} out_shape != its block shape")
