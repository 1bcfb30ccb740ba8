"""Checks of a layer spec (``layers.json``) read from a file, before any encoding uses it.

A spec is made by :func:`snntopo.encode.layers.layer_spec`; a file handed to ``snntopo encode
--spec`` may have been edited or made for another network. Two checks, each raising
:class:`~snntopo.errors.ArtifactError` with one line naming the file, the field and the value:

- :func:`check_spec`: the types the encoders index with, block names that exist and are unique,
  each layer's input and output shapes equal to its blocks' shapes, and a convolution's output
  side equal to torch's arithmetic of its input side, kernel, stride, padding and dilation (a
  stride changed by hand is refused here).
- :func:`check_spec_weights`: the spec's layers against the weights to encode: every layer's
  parameter present with the spec's weight shape, and every prunable weight of the network (the
  mask's tensors, or an init's weights) a layer of the spec (a spec cut after its first layers is
  refused here; it would encode a smaller graph without a word).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import ArtifactError


def _show(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def _ints(v: Any, n: int | None = None, least: int = 0) -> bool:
    return (
        isinstance(v, list)
        and (n is None or len(v) == n)
        and all(isinstance(x, int) and not isinstance(x, bool) and x >= least for x in v)
    )


def check_spec(spec: Mapping[str, Any], path: str) -> None:
    """Raise ``ArtifactError`` for a spec whose fields have the wrong type, name missing blocks, or
    disagree with each other (module docstring)."""

    def fail(field: str, value: Any, why: str) -> None:
        raise ArtifactError(f"{path}: {field} is {_show(value)}: {why}")

    if not _ints(spec.get("input_shape"), least=1) or not spec["input_shape"]:
        fail("input_shape", spec.get("input_shape"), "expected a list of sizes >= 1")
    blocks = spec.get("blocks")
    if not isinstance(blocks, list) or not blocks:
        fail("blocks", blocks, "expected a non-empty list")
    shapes: dict[str, list[int]] = {}
    for i, b in enumerate(blocks):
        if not isinstance(b, dict) or not isinstance(b.get("name"), str):
            fail(f"blocks[{i}]", b, "expected an object with a string name")
        if not _ints(b.get("shape"), least=1) or not b["shape"]:
            fail(f"blocks[{i}].shape", b.get("shape"), "expected a list of sizes >= 1")
        if b["name"] in shapes:
            fail(f"blocks[{i}].name", b["name"], "a second block of that name")
        shapes[b["name"]] = b["shape"]
    layers = spec.get("layers")
    if not isinstance(layers, list) or not layers:
        fail("layers", layers, "expected a non-empty list")
    params: set[str] = set()
    for i, lay in enumerate(layers):
        where = f"layers[{i}]"
        if not isinstance(lay, dict):
            fail(where, lay, "expected an object")
        for key in ("name", "param", "kind"):
            if not isinstance(lay.get(key), str):
                fail(f"{where}.{key}", lay.get(key), "expected a string")
        where = f"layer {lay['name']!r}"
        if lay["param"] in params:
            fail(f"{where} param", lay["param"], "a second layer of that parameter")
        params.add(lay["param"])
        for side in ("in_block", "out_block"):
            if not isinstance(lay.get(side), str) or lay[side] not in shapes:
                fail(f"{where} {side}", lay.get(side), "names no block of the spec")
        for key in ("in_shape", "out_shape", "weight_shape"):
            if not _ints(lay.get(key), least=1):
                fail(f"{where} {key}", lay.get(key), "expected a list of sizes >= 1")
        if lay["out_shape"] != shapes[lay["out_block"]]:
            fail(
                f"{where} out_shape",
                lay["out_shape"],
                f"its block {lay['out_block']!r} has shape {shapes[lay['out_block']]}",
            )
        if lay.get("role") not in ("main", "shortcut"):
            fail(f"{where} role", lay.get("role"), "expected 'main' or 'shortcut'")
        if "pools" not in lay:
            fail(f"{where} pools", None, "expected a list (empty without pooling)")
        pools = lay["pools"]
        _check_pools(pools, f"{where} pools", fail)
        if "inputs" in lay:
            _check_inputs(lay["inputs"], f"{where} inputs", shapes, fail)
        if not pools and not lay.get("inputs") and lay["in_shape"] != shapes[lay["in_block"]]:
            fail(
                f"{where} in_shape",
                lay["in_shape"],
                f"its block {lay['in_block']!r} has shape {shapes[lay['in_block']]}",
            )
        if lay["kind"] == "conv":
            _check_conv(lay, where, fail)
    shortcuts = spec.get("identity_shortcuts", [])
    if not isinstance(shortcuts, list):
        fail("identity_shortcuts", shortcuts, "expected a list")
    for i, sc in enumerate(shortcuts):
        where = f"identity_shortcuts[{i}]"
        if not isinstance(sc, dict):
            fail(where, sc, "expected an object")
        for side in ("from_block", "to_block"):
            if not isinstance(sc.get(side), str) or sc[side] not in shapes:
                fail(f"{where}.{side}", sc.get(side), "names no block of the spec")
        if "inputs" in sc:
            _check_inputs(sc["inputs"], f"{where}.inputs", shapes, fail)


def _check_pools(pools: Any, where: str, fail: Any) -> None:
    if not isinstance(pools, list):
        fail(where, pools, "expected a list of objects")
    for i, pool in enumerate(pools):
        if not isinstance(pool, dict) or not isinstance(pool.get("kind"), str):
            fail(f"{where}[{i}]", pool, "expected an object with a string kind")
        adaptive = pool.get("adaptive", False)
        if not isinstance(adaptive, bool):
            fail(f"{where}[{i}].adaptive", adaptive, "expected true or false")
        for key, least in (("kernel", 1), ("stride", 1), ("padding", 0)):
            required = not adaptive
            if (required or key in pool) and not _ints(pool.get(key), 2, least):
                fail(f"{where}[{i}].{key}", pool.get(key), f"expected two integers >= {least}")
        for key in ("in_shape", "out_shape"):
            if not _ints(pool.get(key), 3, 1):
                fail(f"{where}[{i}].{key}", pool.get(key), "expected three sizes >= 1")
        if not adaptive:
            # torch's floor or ceil mode (the spec does not record which): either side fits
            pad = pool.get("padding", [0, 0])
            fits = []
            for d in range(2):
                span = pool["in_shape"][1 + d] + 2 * pad[d] - pool["kernel"][d]
                lo = span // pool["stride"][d] + 1
                fits.append(pool["out_shape"][1 + d] in (lo, -(-span // pool["stride"][d]) + 1))
            if not all(fits) or pool["in_shape"][0] != pool["out_shape"][0]:
                fail(
                    f"{where}[{i}]",
                    {k: pool.get(k) for k in ("kernel", "stride", "padding")},
                    f"does not map {pool['in_shape']} to {pool['out_shape']}",
                )


def _check_inputs(inputs: Any, where: str, shapes: dict[str, list[int]], fail: Any) -> None:
    if not isinstance(inputs, list) or not inputs:
        fail(where, inputs, "expected a non-empty list of objects")
    for i, term in enumerate(inputs):
        if not isinstance(term, dict) or not isinstance(term.get("block"), str):
            fail(f"{where}[{i}]", term, "expected an object naming a block of the spec")
        if term["block"] not in shapes:
            fail(f"{where}[{i}]", term, "expected an object naming a block of the spec")
        _check_pools(term.get("pools", []), f"{where}[{i}].pools", fail)
        rows = term.get("rows")
        if rows is not None and (not _ints(rows, 2) or rows[0] > rows[1]):
            fail(f"{where}[{i}].rows", rows, "expected a range [start, stop] of rows")


def _check_conv(lay: dict[str, Any], where: str, fail: Any) -> None:
    from .graph import conv_output_side

    for key, least in (("kernel", 1), ("stride", 1), ("padding", 0), ("dilation", 1)):
        if not _ints(lay.get(key), 2, least):
            fail(f"{where} {key}", lay.get(key), f"expected two integers >= {least}")
    groups = lay.get("groups", 1)
    if not isinstance(groups, int) or isinstance(groups, bool) or groups < 1:
        fail(f"{where} groups", groups, "expected an integer >= 1")
    if len(lay["in_shape"]) != 3 or len(lay["weight_shape"]) != 4:
        fail(f"{where} in_shape", lay["in_shape"], "a convolution needs (C, H, W) and 4-d weights")
    w = lay["weight_shape"]
    if w[0] != lay["out_shape"][0] or w[1] * groups != lay["in_shape"][0]:
        fail(
            f"{where} weight_shape",
            w,
            f"does not map {lay['in_shape'][0]} to {lay['out_shape'][0]} channels "
            f"in {groups} group(s)",
        )
    if lay["weight_shape"][2:] != lay["kernel"]:
        fail(f"{where} kernel", lay["kernel"], f"the weight shape is {lay['weight_shape']}")
    if lay.get("pools") or lay.get("inputs") or len(lay["out_shape"]) != 3:
        return  # pooled or multi-input layers: their shapes were checked against the blocks
    end = lay.get("padding_end")
    if end is not None and not _ints(end, 2, 0):
        fail(f"{where} padding_end", end, "expected two integers >= 0")
    # torch's padding='same' with an even kernel pads the far side one more: ``padding`` is the
    # near side then, ``padding_end`` the far one (symmetric when absent)
    sides = [
        conv_output_side(
            lay["in_shape"][1 + d] + (0 if end is None else end[d] - lay["padding"][d]),
            lay["kernel"][d],
            lay["stride"][d],
            lay["padding"][d],
            lay["dilation"][d],
        )
        for d in range(2)
    ]
    if sides != lay["out_shape"][1:]:
        fail(
            f"{where} stride",
            lay["stride"],
            f"input {lay['in_shape']} with kernel {lay['kernel']}, padding {lay['padding']} and "
            f"dilation {lay['dilation']} gives output sides {sides}, not {lay['out_shape'][1:]}",
        )


def check_spec_weights(
    spec: Mapping[str, Any],
    spec_path: str,
    weights: Mapping[str, Any],
    weights_path: str,
    prunable: Mapping[str, tuple[int, ...]] | None = None,
    prunable_source: str | None = None,
    outside: Iterable[str] = (),
) -> None:
    """The spec's layers against the weights to encode (module docstring). ``prunable`` maps the
    network's prunable parameters to their shapes (a mask's tensors); without it, the weights
    are the masks a trained model holds, else its 2-d and 4-d ``*.weight`` tensors (the conv and
    linear weights, what :func:`snntopo.models.prunable_parameters` lists). Weights the mask lists
    as ``outside`` the inference network (auxiliary heads, kept dense) need no layer."""
    from ..artifacts import MASK_PREFIX

    for lay in spec["layers"]:
        w = weights.get(lay["param"])
        if w is None:
            continue  # named by the caller's own check (missing weights)
        # a Linear read on the channel axis is a 1x1 conv whose parameter keeps its 2-d shape
        if list(w.shape) != list(lay.get("param_shape") or lay["weight_shape"]):
            raise ArtifactError(
                f"{spec_path}: layer {lay['name']!r} has weight_shape {lay['weight_shape']} but "
                f"{weights_path} holds {lay['param']} with shape {list(w.shape)}"
            )
    if prunable is None:
        masked = {k[len(MASK_PREFIX) :] for k in weights if k.startswith(MASK_PREFIX)}
        if masked:
            names, source = masked, f"{weights_path} (its masks)"
        else:  # conv and linear weights: the 4-d and 2-d ``*.weight`` tensors
            names = {
                k
                for k, w in weights.items()
                if (k == "weight" or k.endswith(".weight")) and len(w.shape) in (2, 4)
            }
            source = weights_path
    else:
        names, source = set(prunable), prunable_source or "the mask"
    in_spec = {lay["param"] for lay in spec["layers"]}
    missing = sorted(names - in_spec - set(outside))
    if missing:
        raise ArtifactError(
            f"{spec_path}: has no layer for {len(missing)} prunable weight(s) of {source}, "
            f"e.g. {missing[0]!r} (a spec of another network, or cut short?)"
        )
    extra = sorted(in_spec - names)
    if extra:
        raise ArtifactError(
            f"{spec_path}: layer parameter {extra[0]!r} is not a prunable weight of {source}"
        )
