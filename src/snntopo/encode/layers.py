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
:meth:`_Walker.add`). Anything else raises :class:`UnsupportedOpError` naming the op.
"""

from __future__ import annotations

import contextlib
import io
import operator
import re
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
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
    nn.Hardswish,
    nn.Mish,
    nn.Tanh,
    nn.Dropout,
    nn.Dropout2d,
    nn.Identity,
)
# Activations whose output is read as a gate (squeeze-and-excitation): pass through, mark the value.
_GATE_MODULES = (nn.Sigmoid, nn.Hardsigmoid)
_PASS_FUNCTIONS = {
    F.relu,
    F.relu6,
    torch.relu,
    F.dropout,
    F.gelu,
    torch.tanh,
    F.silu,
    F.hardswish,
    F.leaky_relu,
    F.elu,
}
# Modules that may read a zero-padded tensor (the padding then joins the next conv's).
_PADDED_READERS = (nn.Conv2d, nn.ZeroPad2d, nn.ConstantPad2d, *_PASS_MODULES)
_LAYOUT_FUNCTIONS = {torch.permute, torch.transpose, torch.reshape, torch.flatten, F.layer_norm}
_LAYOUT_METHODS = {"view", "reshape", "permute", "transpose", "flatten"}
_GATE_FUNCTIONS = {torch.sigmoid, F.sigmoid, F.hardsigmoid}
_PASS_METHODS = {"relu", "relu_", "contiguous", "tanh", "clone"}
_GATE_METHODS = {"sigmoid", "sigmoid_"}
# Functions that are the identity in eval mode, matched by name (torchvision wraps them for fx).
_EVAL_IDENTITY_NAMES = {"stochastic_depth", "drop_block2d", "drop_path"}
_ADD = {operator.add, operator.iadd, torch.add}
_MUL = {operator.mul, operator.imul, torch.mul}
_SCALAR_OPS = {operator.sub, operator.isub, operator.truediv, operator.itruediv, torch.sub}


class UnsupportedOpError(SnntopoError, NotImplementedError):
    """The model uses an operation the layer-spec walker cannot turn into graph structure."""


@dataclass(frozen=True)
class _Term:
    """Part of a traced tensor: ``channels`` channels from node block ``block``, seen through the
    pooling windows ``pools``, placed at channel ``offset`` of the tensor."""

    block: str
    channels: int
    pools: tuple[dict[str, Any], ...] = ()
    offset: int = 0
    start: int = 0  # first channel of the block it reads (a channel slice or permutation)


@dataclass
class _Value:
    """What a traced tensor is, seen from the graph: the node blocks its elements come from.

    ``shape`` is the (C, H, W) or (F,) shape before any flatten; ``terms`` tile (cat) or overlay
    (gating, sums of non-layer tensors) its channels.
    """

    terms: list[_Term]
    shape: list[int]
    flatten: bool = False
    fresh_layer: str | None = None  # layer whose raw output this is (no add in between)
    gate: bool = False  # came out of a sigmoid-like activation
    # zero padding (top, bottom, left, right) applied by F.pad / nn.ZeroPad2d, not yet read by a
    # conv: ``shape`` stays the unpadded one, the next conv takes it as (asymmetric) padding
    pad: tuple[int, int, int, int] | None = None

    @property
    def block(self) -> str:
        return self.terms[0].block

    @property
    def simple(self) -> bool:
        """One term covering the whole tensor from the block's first channel (the walker also
        checks that it covers the whole block: the spec's plain ``in_block`` + ``pools`` form)."""
        t = self.terms[0]
        return (
            len(self.terms) == 1 and t.offset == 0 and t.start == 0 and t.channels == self.shape[0]
        )


@dataclass
class _Layout:
    """A tensor that is not in (C, H, W) order (after view/transpose/permute): ``idx`` has the
    tensor's per-sample shape and holds, per element, the channel-major index of the element of
    ``base`` (a (C, H, W) value) it is. Elementwise ops pass it; a view back to (C', H, W) that
    only permutes or selects whole channels becomes a value again; a channels-last layout is read
    by LayerNorm (passes) and Linear (a 1x1 conv)."""

    base: _Value
    idx: np.ndarray


@dataclass(frozen=True)
class _Param:
    """A parameter or buffer read in ``forward`` (``get_attr``), e.g. a layer scale."""

    target: str


def _is_data(v: Any) -> bool:
    if isinstance(v, tuple):
        return any(_is_data(x) for x in v)
    return isinstance(v, _Value | _Layout)


def _with_channels(pools: tuple[dict[str, Any], ...], n: int) -> tuple[dict[str, Any], ...]:
    return tuple(
        {**p, "in_shape": [n, *p["in_shape"][1:]], "out_shape": [n, *p["out_shape"][1:]]}
        for p in pools
    )


def _pair(v: Any) -> list[int]:
    if isinstance(v, tuple | list):
        return [int(v[0]), int(v[1] if len(v) > 1 else v[0])]
    return [int(v), int(v)]


def _shape(node: fx.Node) -> list[int]:
    meta = node.meta.get("tensor_meta")
    if meta is None or not hasattr(meta, "shape"):
        raise UnsupportedOpError(f"no single tensor shape for traced value {node.name!r}")
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


def _adaptive_window(kind: str, in_shape: list[int], out_shape: list[int]) -> dict[str, Any]:
    """Adaptive pooling: equal windows when the sizes divide (the paper models' global pools), else
    torch's adaptive windows ``[floor(i*H/OH), ceil((i+1)*H/OH))``, which also covers upsampling
    (a 1x1 map taken to 7x7 replicates each position)."""
    (_, h, w), (_, oh, ow) = in_shape, out_shape
    if h % oh == 0 and w % ow == 0:
        return _pool_window(kind, (h // oh, w // ow), (h // oh, w // ow), 0, in_shape, out_shape)
    return {
        "kind": kind,
        "adaptive": True,
        "in_shape": list(in_shape),
        "out_shape": list(out_shape),
    }


def _module_of(node: fx.Node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    if node.op == "call_module":
        return str(node.target)
    return str(list(stack)[-1]) if stack else "<top level>"


def layer_spec(
    model: nn.Module,
    input_shape: tuple[int, ...] | list[int],
    arch: str | None = None,
    num_classes: int | None = None,
) -> dict[str, Any]:
    """Trace ``model`` on an input of shape ``input_shape`` (C, H, W) and return the layer spec.

    The spec format and the rule for each operation are documented in ``docs/architecture.md``.
    Layers come in execution order (equal to module order for the bundled models). A conv whose
    output is added to a main-path conv output is a ``role: "shortcut"`` layer writing into the
    main conv's block: it is recognised by its name (``shortcut``/``downsample``) or, failing that,
    structurally as the operand whose input block is older (it skips over the main path). An addend
    that is not a fresh conv output is an identity shortcut and is recorded in
    ``identity_shortcuts``. A layer whose input is not one block seen through pools (a channel
    concatenation, a gated tensor, a sum of non-layer tensors) lists its sources in ``inputs``.
    """
    input_shape = [int(s) for s in input_shape]
    model_name = arch or type(model).__name__
    attention = _attention_module(model)
    if attention is not None:
        raise UnsupportedOpError(
            f"cannot encode model {model_name}: it uses attention ({attention}), whose weights "
            "depend on the input: it has no static graph to encode"
        )
    was_training = model.training
    model.eval()
    try:
        gm = fx.symbolic_trace(model)
        # ShapeProp prints a traceback of a failing node itself; the error below says it in a line
        with torch.no_grad(), contextlib.redirect_stderr(io.StringIO()):
            ShapeProp(gm).propagate(torch.zeros(1, *input_shape))
    except Exception as exc:  # tracing errors are about the model, say so plainly
        cause = exc.__cause__ or exc
        text = str(cause).strip()
        msg = text.splitlines()[0] if text else type(cause).__name__
        if _SIZE_ERROR.search(text):
            side = _smallest_input(model, input_shape)
            if side is not None:
                raise UnsupportedOpError(
                    f"input {input_shape[1]}x{input_shape[2]} is too small for model "
                    f"{model_name}: the smallest input that works is {side}x{side}"
                ) from None
        raise UnsupportedOpError(f"cannot trace model {model_name}: {msg}") from exc
    finally:
        model.train(was_training)

    walker = _Walker(dict(gm.named_modules()), input_shape)
    for node in gm.graph.nodes:
        try:
            walker.visit(node)
        except UnsupportedOpError as exc:
            raise UnsupportedOpError(
                f"cannot encode model {model_name}: {exc} (node {node.name!r} in module "
                f"{_module_of(node)!r})"
            ) from None

    layers = walker.layers
    if not layers:
        raise UnsupportedOpError(
            f"cannot encode model {model_name}: it has no conv or linear layer"
        )
    blocks = walker.blocks
    live = ["input"] + [lay["out_block"] for lay in layers if lay["role"] == "main"]
    spec = {
        "arch": arch,
        "input_shape": input_shape,
        "num_classes": num_classes if num_classes is not None else walker.num_out,
        "blocks": [{"name": b, "shape": list(blocks[b])} for b in live],
        "layers": layers,
        "identity_shortcuts": walker.identity,
    }
    validate_spec(spec)
    return spec


# torch's messages for a feature map that a conv or pool cannot read any more
_SIZE_ERROR = re.compile(
    r"too small|smaller than kernel|can't be greater than actual input size|"
    r"padding should be at most half|Output size is",
    re.IGNORECASE,
)
# torchvision's ViT (nn.MultiheadAttention), Swin (ShiftedWindowAttention[V2]), MaxViT
# (RelativePositionalMultiHeadAttention)
_ATTENTION_NAMES = re.compile(r"multi-?head\w*attention|windowattention", re.IGNORECASE)


def _attention_module(model: nn.Module) -> str | None:
    """The first attention submodule (``nn.MultiheadAttention`` or a multi-head/window attention
    class, as in torchvision's ViT, Swin and MaxViT), as ``'Type' in 'qualified.name'``."""
    for name, m in model.named_modules():
        if name and _ATTENTION_NAMES.search(type(m).__name__):
            return f"{type(m).__name__} in {name or '<top level>'!r}"
    return None


def _runs(model: nn.Module, shape: list[int]) -> bool:
    try:
        with torch.no_grad(), contextlib.redirect_stderr(io.StringIO()):
            model(torch.zeros(1, *shape))
    except Exception:  # any failure: this size does not work
        return False
    return True


def _smallest_input(model: nn.Module, input_shape: list[int], limit: int = 1024) -> int | None:
    """The smallest square input side, above the given one, on which an eval-mode forward runs
    (doubling, then bisection; feature maps shrink monotonically with the input); ``None`` if
    none up to ``limit`` does (the failure is then not about the size)."""
    c, h, w = input_shape
    lo, hi = max(h, w), max(h, w)
    while not _runs(model, [c, hi, hi]):
        lo, hi = hi, hi * 2
        if hi > limit:
            return None
    while hi - lo > 1:  # lo fails, hi works
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if _runs(model, [c, mid, mid]) else (mid, hi)
    return hi


def _terms_spec(v: _Value) -> list[dict[str, Any]]:
    """A value's terms as spec ``inputs``: rows = the element range of the tensor it fills."""
    area = 1
    for s in v.shape[1:]:
        area *= s
    out = []
    for t in v.terms:
        term = {
            "block": t.block,
            "pools": [dict(p) for p in t.pools],
            "rows": [t.offset * area, (t.offset + t.channels) * area],
        }
        if t.start:
            term["from_channel"] = t.start
        out.append(term)
    return out


class _Walker:
    """Maps every traced fx node to a :class:`_Value` and collects layers, blocks, shortcuts."""

    def __init__(self, modules: dict[str, nn.Module], input_shape: list[int]) -> None:
        self.modules = modules
        self.blocks: dict[str, list[int]] = {"input": input_shape}
        self.layers: list[dict[str, Any]] = []
        self.by_name: dict[str, dict[str, Any]] = {}
        self.identity: list[dict[str, Any]] = []
        self.values: dict[fx.Node, Any] = {}
        self.seen_modules: set[str] = set()
        self.consumed: set[str] = set()
        self.num_out: int | None = None

    # -- dispatch -------------------------------------------------------------------------------
    def visit(self, node: fx.Node) -> None:
        if node.op == "placeholder":
            shape = list(self.blocks["input"])
            self.values[node] = _Value([_Term("input", shape[0])], shape)
            return
        if node.op == "output":
            out = node.args[0]
            if isinstance(out, fx.Node) and isinstance(self.values.get(out), _Layout):
                raise UnsupportedOpError("the network output is not in (C, H, W) or (F,) order")
            if isinstance(out, fx.Node) and isinstance(self.values.get(out), _Value):
                v = self.values[out]
                if not self.whole(v):
                    raise UnsupportedOpError("the network output is not the output of a layer")
                if v.terms[0].pools:
                    # a pooled conv (SqueezeNet: 1x1 conv, ReLU, global pool, flatten): the
                    # pool's positions are the last layer's nodes, which stay the output block
                    last = [lay["out_block"] for lay in self.layers if lay["role"] == "main"]
                    if not last or v.block != last[-1]:
                        raise UnsupportedOpError(
                            "the network output is a pooled tensor that is not the last layer's"
                        )
                self.num_out = int(torch.Size(v.shape).numel())
            return
        if node.op == "get_attr":
            self.values[node] = _Param(str(node.target))
            return
        args = [self.values.get(a) if isinstance(a, fx.Node) else a for a in node.args]
        tensors = [a for a in args if isinstance(a, _Value | _Layout)]
        if node.op != "call_module" and not any(
            _is_data(self.values.get(a)) for a in node.all_input_nodes
        ):
            # shape arithmetic (x.shape[i], x.size(), b, c, h, w = x.shape, c // g) and constants
            # made from it: metadata, no graph; a tensor built from it is a constant
            self.values[node] = None
            return
        if any(isinstance(t, _Value) and t.pad is not None for t in tensors):
            self.check_padded_reader(node)
        if any(isinstance(t, _Layout) for t in tensors):
            self.check_layout_reader(node)
        if node.op == "call_function" and node.target is operator.getitem:
            self.values[node] = self.getitem(node, args)
            return
        if any(isinstance(a, _Param) for a in args) and (
            (node.op == "call_function" and node.target in _MUL)
            or (node.op == "call_method" and node.target in ("mul", "mul_"))
        ):  # scaling by a learned tensor (layer scale): elementwise, same nodes
            self.values[node] = self.param_scaled(node, tensors)
            return
        if node.op == "call_module":
            self.values[node] = self.module(node, self.modules[str(node.target)], tensors)
        elif node.op == "call_function":
            self.values[node] = self.function(node, node.target, tensors)
        elif node.op == "call_method":
            self.values[node] = self.method(node, str(node.target), tensors)

    def whole(self, v: _Value) -> bool:
        """One term that is its whole block (seen through pools)."""
        return v.simple and v.terms[0].channels == self.blocks[v.block][0]

    def check_layout_reader(self, node: fx.Node) -> None:
        """Which ops may read a tensor that is not in (C, H, W) order."""
        t = node.target
        ok = False
        if node.op == "call_module":
            m = self.modules[str(t)]
            ok = isinstance(m, (nn.Linear, nn.LayerNorm, *_PASS_MODULES))
        elif node.op == "call_function":
            ok = (
                t in _PASS_FUNCTIONS
                or t in _LAYOUT_FUNCTIONS
                or t in _MUL
                or t is getattr
                or getattr(t, "__name__", "") in _EVAL_IDENTITY_NAMES
            )
        elif node.op == "call_method":
            ok = t in _PASS_METHODS or t in _LAYOUT_METHODS or t in ("size", "dim", "mul")
        if not ok:
            raise UnsupportedOpError(
                f"{node.op} {getattr(t, '__name__', t)!r} of a tensor whose elements are not in "
                "(C, H, W) order (after view/transpose/permute): only channel permutations and "
                "channels-last LayerNorm/Linear are supported"
            )

    def check_padded_reader(self, node: fx.Node) -> None:
        """A zero-padded tensor may pass through elementwise ops and must then be read by a conv
        (the padding joins the conv's); any other reader would need nodes for the zeros."""
        t = node.target
        if node.op == "call_module":
            m = self.modules[str(t)]
            if isinstance(m, _PADDED_READERS):
                return
        elif node.op == "call_function":
            if (
                t in _PASS_FUNCTIONS
                or t is F.pad
                or t is getattr
                or getattr(t, "__name__", "") in _EVAL_IDENTITY_NAMES
            ):
                return
        elif node.op == "call_method" and (t in _PASS_METHODS or t in ("size", "dim")):
            return
        raise UnsupportedOpError("zero padding (F.pad / ZeroPad2d) that is not read by a conv")

    def padded(self, src: _Value, pad: Any, mode: str = "constant") -> _Value:
        """``F.pad``/``nn.ZeroPad2d``/``nn.ConstantPad2d`` on H, W: constants, no nodes; recorded
        on the value for the conv that reads it."""
        pad = [int(p) for p in (pad if isinstance(pad, tuple | list) else [pad] * 4)]
        if mode != "constant" or len(pad) not in (2, 4) or min(pad) < 0 or src.flatten:
            raise UnsupportedOpError(
                f"padding {pad} (mode {mode!r}): only non-negative constant padding of H and W"
            )
        left, right, top, bottom = (*pad, 0, 0)[:4]
        old = src.pad or (0, 0, 0, 0)
        new = (old[0] + top, old[1] + bottom, old[2] + left, old[3] + right)
        return replace(src, pad=new, fresh_layer=None, gate=False)

    def module(self, node: fx.Node, m: nn.Module, tensors: list[_Value]) -> Any:
        src = tensors[0]
        name = str(node.target)
        if isinstance(m, nn.Linear) and isinstance(src, _Layout):
            return self.channels_last_linear(node, name, m, src)
        if isinstance(m, nn.Conv2d | nn.Linear):
            return self.new_layer(node, name, m, src)
        if isinstance(m, nn.LayerNorm):
            return self.layer_norm(src, m.normalized_shape)
        if isinstance(m, _PASS_MODULES):
            return src
        if isinstance(m, _GATE_MODULES):
            return replace(src, gate=True)
        if isinstance(m, nn.MaxPool2d | nn.AvgPool2d):
            if isinstance(m, nn.MaxPool2d) and _pair(m.dilation) != [1, 1]:
                raise UnsupportedOpError(f"MaxPool2d {name!r} with dilation")
            kind = "max" if isinstance(m, nn.MaxPool2d) else "avg"
            return self.pooled(src, node, kind, m.kernel_size, m.stride, m.padding)
        if isinstance(m, nn.AdaptiveAvgPool2d | nn.AdaptiveMaxPool2d):
            kind = "max" if isinstance(m, nn.AdaptiveMaxPool2d) else "avg"
            return self.adaptive(src, node, kind)
        if isinstance(m, nn.Flatten):
            return self.reshaped(node, src)
        if isinstance(m, nn.Sequential) and len(m) == 0:
            return src
        if isinstance(m, nn.ZeroPad2d | nn.ConstantPad2d):
            return self.padded(src, m.padding)
        raise UnsupportedOpError(f"unsupported module of type {type(m).__name__}")

    def function(self, node: fx.Node, fn: Any, tensors: list[_Value]) -> Any:
        fname = getattr(fn, "__name__", str(fn))
        if fn in _ADD:
            return self.add(tensors)
        if fn in _MUL:
            return self.mul(tensors)
        if fn in _SCALAR_OPS:
            if len(tensors) != 1:
                raise UnsupportedOpError(f"{fname} of {len(tensors)} tensors")
            return replace(tensors[0], fresh_layer=None)
        if fn in _PASS_FUNCTIONS or fname in _EVAL_IDENTITY_NAMES:
            return tensors[0]
        if fn in _GATE_FUNCTIONS:
            return replace(tensors[0], gate=True)
        if fn in (torch.flatten, torch.reshape):
            return self.reshaped(node, tensors[0])
        if fn in (torch.permute, torch.transpose):
            return self.transposed(node, fn.__name__, tensors[0])
        if fn is F.layer_norm:
            shape = node.args[1] if len(node.args) > 1 else node.kwargs["normalized_shape"]
            return self.layer_norm(tensors[0], shape)
        if fn in (torch.chunk, torch.split):
            return self.split(node, tensors[0], 0)
        if fn is F.pad:
            names = ("input", "pad", "mode")
            kw = dict(zip(names, node.args, strict=False))
            kw.update({k: v for k, v in node.kwargs.items() if k in names})
            return self.padded(tensors[0], kw["pad"], kw.get("mode") or "constant")
        if fn is torch.cat or fn is torch.concat:
            seq = node.args[0]
            dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
            if isinstance(seq, fx.Node):  # torch.cat(x.chunk(2, 1), 1): a traced tuple
                parts = list(self.values.get(seq) or ())
            else:
                parts = [self.values.get(a) if isinstance(a, fx.Node) else a for a in seq]
            return self.cat(node, parts, dim)
        if fn in (F.max_pool2d, F.avg_pool2d):
            names = ("kernel_size", "stride", "padding")
            kw = dict(zip(names, node.args[1:], strict=False))
            kw.update({k: v for k, v in node.kwargs.items() if k in names})
            if fn is F.max_pool2d and _pair(node.kwargs.get("dilation", 1)) != [1, 1]:
                raise UnsupportedOpError("max_pool2d with dilation")
            kind = "max" if fn is F.max_pool2d else "avg"
            return self.pooled(
                tensors[0], node, kind, kw["kernel_size"], kw.get("stride"), kw.get("padding", 0)
            )
        if fn in (F.adaptive_avg_pool2d, F.adaptive_max_pool2d):
            return self.adaptive(tensors[0], node, "max" if fn is F.adaptive_max_pool2d else "avg")
        if fn is torch.mean:
            return self.mean(node, tensors[0])
        if fn is getattr:
            return None
        raise UnsupportedOpError(f"unsupported function {fname!r}")

    def method(self, node: fx.Node, name: str, tensors: list[_Value]) -> Any:
        if name in _PASS_METHODS:
            return tensors[0]
        if name in _GATE_METHODS:
            return replace(tensors[0], gate=True)
        if name in ("size", "dim"):
            return None
        if name in ("flatten", "view", "reshape"):
            return self.reshaped(node, tensors[0])
        if name in ("permute", "transpose"):
            return self.transposed(node, name, tensors[0])
        if name in ("chunk", "split"):
            return self.split(node, tensors[0], 0)
        if name in ("add", "add_"):
            return self.add(tensors)
        if name in ("mul", "mul_"):
            return self.mul(tensors)
        if name == "mean":
            return self.mean(node, tensors[0])
        raise UnsupportedOpError(f"unsupported tensor method {name!r}")

    # -- layouts: view / transpose / permute chains, channel slices ------------------------------
    def to_layout(self, v: _Value | _Layout) -> _Layout:
        if isinstance(v, _Layout):
            return v
        if v.flatten or len(v.shape) != 3 or v.pad is not None:
            raise UnsupportedOpError(f"view/transpose/permute of a tensor of shape {v.shape}")
        return _Layout(v, np.arange(int(np.prod(v.shape))).reshape(v.shape))

    def reshaped(self, node: fx.Node, src: _Value | _Layout) -> Any:
        """flatten / view / reshape: a flatten to (N, F), the shape it has, or a layout."""
        out = _shape(node)
        if isinstance(src, _Value):
            if not src.flatten and out == src.shape:
                return src  # a view to the shape it has: nothing moves
            if len(out) == 1:
                return self.flattened(src, node)
        if not out:
            raise UnsupportedOpError("view/reshape/flatten over the batch dimension")
        lay = self.to_layout(src)
        if len(out) == 1:
            if np.array_equal(lay.idx.ravel(), np.arange(lay.idx.size)):
                return self.flattened(lay.base, node)
            raise UnsupportedOpError(
                "flatten of a tensor whose elements are not in (C, H, W) order"
            )
        return self.resolve(_Layout(lay.base, lay.idx.reshape(out)))

    def transposed(self, node: fx.Node, name: str, src: _Value | _Layout) -> Any:
        lay = self.to_layout(src)
        nd = lay.idx.ndim + 1
        rest = [a for a in node.args[1:]] or list(node.kwargs.values())
        if name == "permute":
            dims = list(rest[0]) if len(rest) == 1 and isinstance(rest[0], list | tuple) else rest
            dims = [int(d) % nd for d in dims]
        else:
            d0, d1 = (int(d) % nd for d in rest[:2])
            dims = list(range(nd))
            dims[d0], dims[d1] = dims[d1], dims[d0]
        if dims[0] != 0:
            raise UnsupportedOpError(f"{name} that moves the batch dimension")
        idx = lay.idx.transpose([d - 1 for d in dims[1:]])
        return self.resolve(_Layout(lay.base, idx))

    def resolve(self, lay: _Layout) -> _Value | _Layout:
        """A layout that is (C', H, W) and takes whole channels of its base is a value again."""
        base, idx = lay.base, lay.idx
        c, h, w = base.shape
        if idx.ndim != 3 or tuple(idx.shape[1:]) != (h, w):
            return lay
        first = idx[:, :1, :1]
        if not (
            (first % (h * w) == 0).all()
            and np.array_equal(
                idx - first, np.broadcast_to(np.arange(h * w).reshape(1, h, w), idx.shape)
            )
        ):
            return lay
        perm = first.ravel() // (h * w)
        if len(perm) == c and np.array_equal(perm, np.arange(c)):
            return base
        return self.permuted(base, [int(p) for p in perm])

    def permuted(self, base: _Value, perm: list[int]) -> _Value:
        """Output channel k is channel ``perm[k]`` of ``base``: runs of channels that stay
        contiguous in one term keep one term."""
        runs: list[list[Any]] = []  # [term, offset, start, channels]
        last: dict[tuple[str, str], int] = {}
        for k, p in enumerate(perm):
            for t in base.terms:
                if not t.offset <= p < t.offset + t.channels:
                    continue
                key = (t.block, repr(_with_channels(t.pools, 1)))
                src = t.start + p - t.offset
                j = last.get(key)
                if (
                    j is not None
                    and runs[j][1] + runs[j][3] == k
                    and runs[j][2] + runs[j][3] == src
                ):
                    runs[j][3] += 1
                    continue
                last[key] = len(runs)
                runs.append([t, k, src, 1])
        terms = [
            _Term(t.block, n, _with_channels(t.pools, n), off, start) for t, off, start, n in runs
        ]
        return _Value(terms, [len(perm), *base.shape[1:]])

    def channel_slice(self, v: _Value, lo: int, hi: int) -> _Value:
        if v.flatten or len(v.shape) != 3 or v.pad is not None:
            raise UnsupportedOpError(f"channel slice of a tensor of shape {v.shape}")
        terms = []
        for t in v.terms:
            a, b = max(lo, t.offset), min(hi, t.offset + t.channels)
            if a < b:
                n = b - a
                pools = _with_channels(t.pools, n)
                terms.append(_Term(t.block, n, pools, a - lo, t.start + a - t.offset))
        return _Value(terms, [hi - lo, *v.shape[1:]])

    def split(self, node: fx.Node, src: Any, default_dim: int) -> tuple[_Value, ...]:
        """chunk / split along the channels: a tuple of channel slices."""
        names = ("tensor", "size", "dim")
        dim = node.args[2] if len(node.args) > 2 else node.kwargs.get("dim", default_dim)
        metas = node.meta.get("tensor_meta")
        if not isinstance(src, _Value) or int(dim) % (len(src.shape) + 1) != 1 or not metas:
            raise UnsupportedOpError(f"{node.target} along dim {dim} (only channels)")
        del names
        out, lo = [], 0
        for m in metas:
            n = int(m.shape[1])
            out.append(self.channel_slice(src, lo, lo + n))
            lo += n
        return tuple(out)

    def getitem(self, node: fx.Node, args: list[Any]) -> Any:
        box, key = args[0], args[1]
        if isinstance(box, tuple):
            return box[key]
        if isinstance(box, _Value) and isinstance(key, tuple) and len(key) >= 2:
            full = slice(None)
            rest_full = all(k == full or k is Ellipsis for k in key[2:])
            if key[0] == full and isinstance(key[1], slice) and rest_full:
                lo, hi, step = key[1].indices(box.shape[0])
                if step == 1 and lo < hi:
                    return self.channel_slice(box, lo, hi)
        if _is_data(box):
            raise UnsupportedOpError(f"indexing with {key!r} (only channel slices x[:, a:b])")
        return None

    def param_scaled(self, node: fx.Node, tensors: list[Any]) -> Any:
        """Elementwise product with a parameter (layer scale): the tensor's nodes, unchanged."""
        if len(tensors) != 1:
            raise UnsupportedOpError(f"mul of {len(tensors)} tensors and a parameter")
        (v,) = tensors
        shape = list(v.idx.shape) if isinstance(v, _Layout) else v.shape
        if v.flatten if isinstance(v, _Value) else False:
            shape = [int(np.prod(shape))]
        if _shape(node) != shape:
            raise UnsupportedOpError(f"parameter product that broadcasts {shape} to {_shape(node)}")
        return v

    def layer_norm(self, src: Any, normalized_shape: Any) -> Any:
        """LayerNorm over the channels of a channels-last tensor: per-position normalisation,
        which makes no edges (like BatchNorm)."""
        ns = (
            [int(normalized_shape)] if isinstance(normalized_shape, int) else list(normalized_shape)
        )
        if isinstance(src, _Layout) and self.channels_last(src) and ns == [src.base.shape[0]]:
            return src
        raise UnsupportedOpError(
            f"LayerNorm over {ns} (only over the channels of a channels-last tensor)"
        )

    @staticmethod
    def channels_last(lay: _Layout) -> bool:
        c, h, w = lay.base.shape
        want = np.arange(c * h * w).reshape(c, h, w).transpose(1, 2, 0)
        return lay.idx.shape == want.shape and np.array_equal(lay.idx, want)

    def channels_last_linear(self, node: fx.Node, name: str, m: nn.Linear, src: _Layout) -> Any:
        """Linear on the last axis of a channels-last tensor: a 1x1 conv of its base."""
        base = src.base
        if not self.channels_last(src) or m.in_features != base.shape[0]:
            raise UnsupportedOpError(f"linear {name!r} on a tensor that is not channels-last")
        self._claim(name, base)
        _, h, w = base.shape
        out_shape = [int(m.out_features), h, w]
        self._add_layer(
            name,
            base,
            {
                "kind": "conv",
                "kernel": [1, 1],
                "stride": [1, 1],
                "padding": [0, 0],
                "dilation": [1, 1],
                "groups": 1,
            },  # fmt: skip
            list(base.shape),
            out_shape,
            [*map(int, m.weight.shape), 1, 1],
            m,
            # the parameter keeps its 2-d shape; the spec checks read it from here
            extra={"param_shape": [int(s) for s in m.weight.shape]},
        )
        value = _Value([_Term(name, out_shape[0])], out_shape, fresh_layer=name)
        return _Layout(
            value, np.arange(int(np.prod(out_shape))).reshape(out_shape).transpose(1, 2, 0)
        )

    # -- layers -----------------------------------------------------------------------------------
    def new_layer(self, node: fx.Node, name: str, m: nn.Module, src: _Value) -> _Value:
        self._claim(name, src)
        in_shape = list(src.shape)
        out_shape = _shape(node)
        layer: dict[str, Any] = {}
        if isinstance(m, nn.Conv2d):
            if src.flatten:
                raise UnsupportedOpError(f"conv {name!r} applied to a flattened tensor")
            if m.padding_mode != "zeros":
                raise UnsupportedOpError(f"conv {name!r} uses padding_mode={m.padding_mode!r}")
            pad = m.padding
            if isinstance(pad, str):  # 'same'/'valid': torch's numbers, the odd one at the end
                total = [0 if pad == "valid" else m.dilation[i] * (m.kernel_size[i] - 1)
                         for i in range(2)]  # fmt: skip
                begin = [t // 2 for t in total]
                end = [t - b for t, b in zip(total, begin, strict=True)]
            else:
                begin = end = _pair(pad)
            if src.pad is not None:  # F.pad / ZeroPad2d before the conv: (top, bottom, left, right)
                begin = [begin[0] + src.pad[0], begin[1] + src.pad[2]]
                end = [end[0] + src.pad[1], end[1] + src.pad[3]]
            layer.update(
                kind="conv",
                kernel=_pair(m.kernel_size),
                stride=_pair(m.stride),
                padding=list(begin),
                dilation=_pair(m.dilation),
                groups=int(m.groups),
            )
            if end != begin:  # asymmetric: padding is the top/left side, this the bottom/right
                layer["padding_end"] = list(end)
        else:
            in_feat = 1
            for s in in_shape:
                in_feat *= s
            if src.pad is not None:
                raise UnsupportedOpError(f"linear {name!r} applied to a zero-padded tensor")
            if len(in_shape) != 1 and not src.flatten:
                raise UnsupportedOpError(
                    f"linear {name!r} applied to a {len(in_shape) + 1}-D tensor"
                )
            if in_feat != m.in_features:
                raise UnsupportedOpError(
                    f"linear {name!r} expects {m.in_features} features, sees {in_shape}"
                )
            layer.update(kind="linear", flatten=bool(src.flatten or len(in_shape) != 1))
        self._add_layer(name, src, layer, in_shape, out_shape, [int(s) for s in m.weight.shape], m)
        return _Value([_Term(name, out_shape[0])], list(out_shape), fresh_layer=name)

    def _claim(self, name: str, src: _Value) -> None:
        """A module becomes a layer once (shared weights have no place in the graph), and its
        input blocks count as read (no longer fresh outputs for a residual merge)."""
        if name in self.seen_modules:
            raise UnsupportedOpError(f"module {name!r} is called twice (shared weights)")
        self.seen_modules.add(name)
        for t in src.terms:
            self.consumed.add(t.block)

    def _add_layer(
        self,
        name: str,
        src: _Value,
        kind_fields: dict[str, Any],
        in_shape: list[int],
        out_shape: list[int],
        weight_shape: list[int],
        m: nn.Module,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Record the spec entry of layer ``name`` reading ``src`` (keys in the order the spec
        files have always had: layers.json is digested as written) and its output block."""
        simple = self.whole(src)
        layer: dict[str, Any] = {
            "name": name,
            "param": f"{name}.weight",
            **kind_fields,
            "role": "main",
            "in_block": src.block,
            "out_block": name,
            "in_shape": in_shape,
            "out_shape": out_shape,
            "pools": [dict(p) for p in src.terms[0].pools] if simple else [],
            "weight_shape": weight_shape,
            **(extra or {}),
            "bias": m.bias is not None,
        }
        if not simple:
            layer["inputs"] = _terms_spec(src)
        self.layers.append(layer)
        self.by_name[name] = layer
        self.blocks[name] = out_shape

    # -- shape-only operations ----------------------------------------------------------------------
    def _windowed(self, src: _Value, out_shape: list[int], make: Any) -> _Value:
        if src.flatten:
            raise UnsupportedOpError("pooling of a flattened tensor")
        if len(out_shape) != 3:
            raise UnsupportedOpError(f"pooling to shape {out_shape}")
        terms = [
            replace(
                t,
                pools=(
                    *t.pools,
                    make([t.channels, *src.shape[1:]], [t.channels, *out_shape[1:]]),
                ),
            )
            for t in src.terms
        ]
        return _Value(terms, out_shape)

    def pooled(
        self, src: _Value, node: fx.Node, kind: str, kernel: Any, stride: Any, padding: Any
    ) -> _Value:
        return self._windowed(
            src, _shape(node), lambda i, o: _pool_window(kind, kernel, stride, padding, i, o)
        )

    def adaptive_to(self, src: _Value, out_shape: list[int]) -> _Value:
        return self._windowed(src, out_shape, lambda i, o: _adaptive_window("avg", i, o))

    def adaptive(self, src: _Value, node: fx.Node, kind: str) -> _Value:
        return self._windowed(src, _shape(node), lambda i, o: _adaptive_window(kind, i, o))

    def mean(self, node: fx.Node, src: _Value) -> _Value:
        dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
        dims = {int(d) % 4 for d in (dims if isinstance(dims, tuple | list) else [dims])}
        if len(src.shape) != 3 or dims != {2, 3}:
            raise UnsupportedOpError("mean over anything but the spatial dimensions")
        v = self.adaptive_to(src, [src.shape[0], 1, 1])
        keep = node.kwargs.get("keepdim", node.args[2] if len(node.args) > 2 else False)
        return v if keep else replace(v, flatten=True)

    def flattened(self, src: _Value, node: fx.Node) -> _Value:
        return replace(src, flatten=True, fresh_layer=None, gate=False)

    def cat(self, node: fx.Node, parts: list[_Value], dim: int) -> _Value:
        if not parts or any(not isinstance(p, _Value) for p in parts):
            raise UnsupportedOpError("cat of non-tensor values")
        ndim = len(parts[0].shape) + 1
        if int(dim) % ndim != 1 or any(p.flatten for p in parts):
            raise UnsupportedOpError(f"cat along dim {dim} (only channels are supported)")
        terms, off = [], 0
        for p in parts:
            terms.extend(replace(t, offset=t.offset + off) for t in p.terms)
            off += p.shape[0]
        return _Value(terms, _shape(node))

    def mul(self, tensors: list[_Value]) -> _Value:
        """Channel-wise gating: the main path passes through; the gate's blocks overlay it."""
        if len(tensors) == 1:  # scaling by a constant: same structure
            return replace(tensors[0], fresh_layer=None)
        if len(tensors) != 2:
            raise UnsupportedOpError(f"mul of {len(tensors)} tensors")
        a, b = tensors
        if a.terms == b.terms and a.shape == b.shape:  # x * f(x) with no layer in f
            return replace(a, fresh_layer=None, gate=False)
        if a.gate != b.gate:
            gate, main = (a, b) if a.gate else (b, a)
        else:
            area = [1 if len(v.shape) == 1 else v.shape[1] * v.shape[2] for v in (a, b)]
            if area[0] == area[1]:
                raise UnsupportedOpError("mul of two feature maps (only channel-wise gating)")
            gate, main = (a, b) if area[0] < area[1] else (b, a)
        if gate.flatten or main.flatten or gate.shape[0] != main.shape[0]:
            raise UnsupportedOpError(f"mul of shapes {gate.shape} and {main.shape}")
        if len(main.shape) == 3 and gate.shape[1:] != main.shape[1:]:
            if gate.shape[1:] != [1, 1]:
                raise UnsupportedOpError(f"gate of shape {gate.shape} on {main.shape}")
            gate = _Value(
                [
                    replace(
                        t,
                        pools=(
                            *t.pools,
                            {
                                "kind": "gate",
                                "adaptive": True,
                                "in_shape": [t.channels, 1, 1],
                                "out_shape": [t.channels, *main.shape[1:]],
                            },
                        ),
                    )
                    for t in gate.terms
                ],
                list(main.shape),
            )
        return _Value([*main.terms, *gate.terms], list(main.shape))

    # -- residual sums ------------------------------------------------------------------------------
    def add(self, tensors: list[_Value]) -> _Value:
        """Residual sum: fresh layer outputs merge into one block, other addends are identity
        shortcuts into it; with no fresh layer output the sum is the union of its addends."""
        if len(tensors) == 1:  # adding a constant
            return replace(tensors[0], fresh_layer=None)
        if len(tensors) != 2:
            raise UnsupportedOpError(f"add of {len(tensors)} tensors")
        a, b = tensors
        if a.shape != b.shape or a.flatten != b.flatten:
            raise UnsupportedOpError(f"add of shapes {a.shape} and {b.shape} (broadcasting)")
        fresh = [v for v in (a, b) if v.fresh_layer is not None and v.block not in self.consumed]
        if not fresh:
            return _Value([*a.terms, *b.terms], list(a.shape), flatten=a.flatten)
        main = fresh[0]
        if len(fresh) == 2:
            main = self.merge(fresh[0], fresh[1])
        for v in (a, b):
            if v not in fresh:
                self.identity.append(
                    _identity_record(v, main.block)
                    if not self.whole(v) or v.terms[0].pools
                    else {"from_block": v.block, "to_block": main.block}
                )
        return _Value([_Term(main.block, main.shape[0])], list(main.shape), fresh_layer=main.block)

    def merge(self, a: _Value, b: _Value) -> _Value:
        """Two fresh layer outputs are added: the shortcut's block joins the main path's block."""
        la, lb = self.by_name[a.fresh_layer], self.by_name[b.fresh_layer]
        na, nb = bool(SHORTCUT_NAME.search(la["name"])), bool(SHORTCUT_NAME.search(lb["name"]))
        order = list(self.blocks)
        if na != nb:
            main, short = (b, a) if na else (a, b)
        else:
            ia, ib = order.index(la["in_block"]), order.index(lb["in_block"])
            # older input block = the skip; equal inputs (parallel branches): the left operand leads
            main, short = (a, b) if ia >= ib else (b, a)
        keep, drop = main.block, short.block
        if self.blocks[keep] != self.blocks[drop]:
            raise UnsupportedOpError(f"shortcut {drop!r} shape differs from main path {keep!r}")
        for lay in self.layers:
            if lay["out_block"] == drop:
                lay["out_block"] = keep
                lay["role"] = "shortcut"
        for rec in self.identity:
            if rec["to_block"] == drop:
                rec["to_block"] = keep
        self.blocks.pop(drop)
        return main


def _identity_record(v: _Value, to_block: str) -> dict[str, Any]:
    return {"from_block": v.block, "to_block": to_block, "inputs": _terms_spec(v)}


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
        for term in lay.get("inputs", []):
            if term["block"] not in shapes:
                raise SnntopoError(f"layer spec: layer {lay['name']!r} reads unknown block")
    for rec in spec.get("identity_shortcuts", []):
        for b in [rec["from_block"], rec["to_block"], *(t["block"] for t in rec.get("inputs", []))]:
            if b not in shapes:
                raise SnntopoError(f"layer spec: identity shortcut refers to unknown block {b!r}")
