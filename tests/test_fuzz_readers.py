"""Fuzzing every reader of an artifact snntopo reads back: graph ``.npz``, mask ``.safetensors``,
layer spec ``layers.json``, metric JSON, predictor ``predictor.json``, the canonical CSV tables
and a data set's own files (Tiny-ImageNet's ``wnids.txt``, ``val_annotations.txt`` and images).

Each case starts from valid files the package made on the tiny ResNet-20 (``tiny_job.py``) and
applies seeded random mutations, in two classes:

- *damage*: bit flips, truncation, overwritten or duplicated byte runs, zeroed ranges; the file
  is then read as it is;
- *edits*: a member or JSON field deleted, duplicated, given another type, an extreme or
  non-finite number, an array given another dtype, a huge declared shape or extreme values; the
  file is rewritten as a valid container, with its own digests recomputed where the format has
  one (the graph's ``content_sha256``), as someone editing it on purpose would.

The only allowed outcomes: the consumer's result is the same as the original file's, or one
error of snntopo's types (one line; through the CLI: exit 2, nothing written). A traceback of any
other exception type, or an accepted file with a different result, fails the test and prints the
seed and mutation to replay.

What a *result* is, per kind: a graph's arrays, blocks, layers and the metadata fields a metric
reads; a mask's tensors and grid-point record as the workflow reads it (against the expected
grid point); a layer spec's encoded graphs (rolled, and MGE every few cases); a metric file's
table rows; a predictor's predictions and ranks for a metric file of a new method; the tables'
networks and feature frames as ``fit``/``analyze`` load them; the val split's (image, label)
pairs. Some edits are legitimately accepted and not generated: a metric's value or name
changed in a file without its digest (a file made by hand carries data, not a proof of it; the
workflow's files record ``content_sha256``, so damage to them is caught), a spec field no encoder
reads, a graph weight or kernel value set to another finite positive number with the digest
re-stamped, a predictor number set to another finite number in a file without its digest, a
feature cell set to another finite number or left empty (an undefined metric), a CSV row
deleted (a table of fewer networks); byte damage is not generated for CSV tables (no digest: a
flipped digit is another valid table), nor inside an image's compressed data (JPEG has no
checksum).

Bounded for CI: ``SNNTOPO_FUZZ_ITERATIONS`` cases per kind and class (default 40; about a
minute for the whole file on one core). For a release, run e.g.
``SNNTOPO_FUZZ_ITERATIONS=2000 SNNTOPO_FUZZ_SEED=$RANDOM pytest tests/test_fuzz_readers.py``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from snntopo.errors import SnntopoError

ITERATIONS = int(os.environ.get("SNNTOPO_FUZZ_ITERATIONS", "40"))
SEED = int(os.environ.get("SNNTOPO_FUZZ_SEED", "0"))
NETWORK = {"dataset": "digits", "arch": "resnet20", "method": "erk", "sparsity": 0.5, "seed": 0}


# ----------------------------------------------------------------------------- valid inputs
@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """Spec, mask, init, MGE graph and the ``local`` metric file of the tiny ResNet-20, in the
    workflow's directory layout."""
    from tiny_job import TINY_DIGITS_JOB

    from snntopo.gridpoint import network_dir
    from snntopo.stages import encode_network, make_mask
    from snntopo.stages.metrics import compute_metrics
    from snntopo.stages.spec import make_spec

    root = tmp_path_factory.mktemp("fuzz")
    d = Path(network_dir(str(root / "results"), **NETWORK))
    (d / "metrics").mkdir(parents=True)
    job = {**TINY_DIGITS_JOB, **{k: NETWORK[k] for k in ("method", "sparsity", "seed")}}
    make_spec(job, str(d / "layers.json"))
    make_mask(job, str(d / "mask.safetensors"), str(d / "init.safetensors"))
    encode_network(
        "mge",
        str(d / "layers.json"),
        str(d / "init.safetensors"),
        {"network": NETWORK},
        str(d / "mge.npz"),
    )
    compute_metrics(
        "local",
        {"mge": str(d / "mge.npz")},
        {"network": NETWORK, "seed": 0},
        str(d / "metrics" / "local.json"),
    )
    return d


# ----------------------------------------------------------------------------- mutators
def damage(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """One random kind of damage to a file's bytes, and a description of it."""
    b = bytearray(data)
    kind = rng.choice(["flip", "flips", "truncate", "overwrite", "duplicate", "zero"])
    if kind == "flip":
        i = rng.randrange(len(b))
        bit = rng.randrange(8)
        b[i] ^= 1 << bit
        return bytes(b), f"flip bit {bit} of byte {i}"
    if kind == "flips":
        spots = sorted(rng.randrange(len(b)) for _ in range(rng.randint(2, 16)))
        for i in spots:
            b[i] ^= 1 << rng.randrange(8)
        return bytes(b), f"flip bits in bytes {spots}"
    if kind == "truncate":
        n = rng.randrange(len(b))
        return bytes(b[:n]), f"truncate to {n} bytes"
    i = rng.randrange(len(b))
    n = rng.randint(1, 64)
    if kind == "overwrite":
        b[i : i + n] = bytes(rng.randrange(256) for _ in range(n))
        return bytes(b), f"overwrite {n} bytes at {i}"
    if kind == "duplicate":
        b[i:i] = b[i : i + n]
        return bytes(b), f"duplicate {n} bytes at {i}"
    b[i : i + n] = bytes(len(b[i : i + n]))
    return bytes(b), f"zero {n} bytes at {i}"


def _paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


def _get(obj: Any, path: tuple) -> Any:
    for k in path:
        obj = obj[k]
    return obj


#: values a field may be given instead of its own: other types, extreme and non-finite numbers
ODD_VALUES: list[Any] = [
    None, True, 0, -1, 2**63, -(2**63), 1e308, -1e308, 5e-324, float("nan"), float("inf"),
    "", "x" * 300, [], [1, 2], {}, {"a": 1}, 0.5,
]  # fmt: skip


def edit_json(
    obj: Any, rng: random.Random, skip: Callable[[tuple], bool], odd: list[Any] = ODD_VALUES
) -> tuple[Any, str]:
    """One random structural edit of a JSON value: a key deleted or duplicated (written twice
    with another value), a value swapped for an odd one, a list item removed or repeated, deep
    nesting. ``skip(path)``: paths whose edit is legitimately accepted (module docstring)."""
    obj = json.loads(json.dumps(obj))
    paths = [p for p in _paths(obj) if p and not skip(p)]
    path = rng.choice(paths)
    parent = _get(obj, path[:-1])
    key = path[-1]
    kind = rng.choice(["delete", "swap", "swap", "repeat", "nest", "duplicate_key"])
    if kind == "delete":
        del parent[key]
    elif kind == "swap":
        value = rng.choice(odd)
        if value == parent[key] and type(value) is type(parent[key]):
            value = [value]
        parent[key] = value
        return obj, f"{'.'.join(map(str, path))} = {value!r:.40}"
    elif kind == "repeat" and isinstance(parent, list):
        parent.insert(key, json.loads(json.dumps(parent[key])))
    elif kind == "nest":
        value = parent[key]
        for _ in range(rng.choice([3, 70, 500])):
            value = [value]
        parent[key] = value
    elif kind == "duplicate_key" and isinstance(parent, dict):
        return _DuplicateKey(obj, path, rng.choice(ODD_VALUES)), f"{path} written twice"
    else:
        del parent[key]
        kind = "delete"
    return obj, f"{kind} {'.'.join(map(str, path))}"


class _DuplicateKey:
    """A JSON object to be written with one key twice (``json.dumps`` cannot)."""

    def __init__(self, obj: Any, path: tuple, value: Any) -> None:
        self.obj, self.path, self.value = obj, path, value

    def dumps(self) -> str:
        marker = "__fuzz_duplicate__"
        parent = _get(self.obj, self.path[:-1])
        parent[marker] = self.value
        text = json.dumps(self.obj)
        return text.replace(f'"{marker}"', json.dumps(self.path[-1]), 1)


def dumps(obj: Any) -> str:
    return obj.dumps() if isinstance(obj, _DuplicateKey) else json.dumps(obj)


# ----------------------------------------------------------------------------- the check
def check_outcome(
    read: Callable[[Path], Any], path: Path, baseline: Any, what: str, failures: list[str]
) -> str:
    """Run ``read`` on the mutated ``path``: same result or one snntopo error, else a failure."""
    try:
        result = read(path)
    except SnntopoError as exc:
        if "\n" in str(exc).strip():
            failures.append(f"{what}: multi-line error {str(exc)!r:.300}")
        return "error"
    except Exception as exc:  # noqa: BLE001 - the point: any other type is a traceback
        failures.append(f"{what}: {type(exc).__name__}: {str(exc)[:200]}")
        return "traceback"
    if result != baseline:
        failures.append(f"{what}: accepted with a different result")
        return "changed"
    return "same"


def run_cases(
    name: str, make: Callable[[random.Random, Path], str], read: Callable[[Path], Any], tiny: Path
) -> dict[str, int]:
    rng = random.Random(f"{SEED}:{name}")
    failures: list[str] = []
    counts: dict[str, int] = {}
    work = tiny.parent / f"fuzz-{name}"
    work.mkdir(exist_ok=True)
    for i in range(ITERATIONS):
        case_rng = random.Random(rng.getrandbits(64))
        path = work / f"case{i}"
        path.mkdir(exist_ok=True)
        what = make(case_rng, path)
        outcome = check_outcome(read, path, BASELINES[name], f"{name} case {i} ({what})", failures)
        counts[outcome] = counts.get(outcome, 0) + 1
    print(f"{name}: {counts}")
    assert not failures, f"seed {SEED}: " + "\n".join(failures[:20])
    return counts


BASELINES: dict[str, Any] = {}


def _digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16] + str(a.dtype)


# ----------------------------------------------------------------------------- graphs
#: metadata a metric or a check reads (the rest is a record, e.g. build_seconds); the conv
#: terms are a second form of edges that are in the CSR all the same: a term deleted is the same
#: graph, a term that no longer fits its blocks an error
GRAPH_META_USED = ("encoding", "mode", "network")


def graph_result(path: Path) -> Any:
    from snntopo.encode.graph import load_graph

    g = load_graph(path / "g.npz")
    return (
        [_digest(a) for a in (g.indptr, g.indices, g.weights)],
        [(b.name, b.start, b.stop, b.shape) for b in g.blocks],
        json.dumps(g.layers, sort_keys=True),
        json.dumps({k: g.meta.get(k) for k in GRAPH_META_USED}, sort_keys=True),
        {k: _digest(v) for k, v in g.kernels.items()},
    )


def _members(npz: Path) -> dict[str, np.ndarray]:
    with np.load(npz, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def make_graph_edit(src: Path) -> Callable[[random.Random, Path], str]:
    from snntopo.encode.graph import DIGEST_KEY, content_digest

    base = _members(src)

    def make(rng: random.Random, out: Path) -> str:
        arrays = {k: v.copy() for k, v in base.items() if k != "meta"}
        meta = json.loads(str(base["meta"]))
        names = list(arrays)
        kind = rng.choice(["meta", "meta", "values", "dtype", "delete", "huge", "shape"])
        what = kind
        text = None
        if kind == "meta":
            meta, what = edit_json(meta, rng, skip=lambda p: p[0] == DIGEST_KEY)
            if isinstance(meta, _DuplicateKey):
                text = meta.dumps()
                meta = meta.obj
        elif kind == "values":
            # a kernel is checked for its range, not cross-checked with the edges it repeats
            # (that costs a second encoding), and a weight may be any finite |W| > 0: another
            # positive finite number there is another valid graph, not generated
            k = rng.choice([n for n in names if not n.startswith("kernel_")])
            a = arrays[k]
            i = rng.randrange(a.size)
            odd = [-1, 0, 2**31 - 1, -(2**31), -0.5, float("nan"), float("inf")]
            if k == "weights":
                odd = [0, -0.5, -1e30, float("nan"), float("inf"), float("-inf")]
            v = rng.choice(odd)
            if a.dtype.kind in "iu" and not (
                isinstance(v, int) and np.can_cast(np.min_scalar_type(v), a.dtype)
            ):
                v = -1
            a.reshape(-1)[i] = v
            what = f"{k}[{i}] = {v}"
        elif kind == "dtype":
            k = rng.choice(names)
            dt = rng.choice([np.float64, np.int8, np.complex64, np.uint64, np.float16, np.int64])
            arrays[k] = arrays[k].astype(dt)
            what = f"{k} as {np.dtype(dt)}"
        elif kind == "delete":
            k = rng.choice(names)
            del arrays[k]
            what = f"delete {k}"
        elif kind == "shape":
            k = rng.choice(names)
            a = arrays[k]
            arrays[k] = (
                a.reshape(-1)[: rng.randrange(a.size + 1)]
                if rng.random() < 0.5
                else np.concatenate([a.reshape(-1), a.reshape(-1)[:3]])
            )
            what = f"{k} resized to {arrays[k].shape}"
        meta.pop(DIGEST_KEY, None)
        with contextlib.suppress(TypeError, ValueError):  # an editor re-stamps the digest
            meta[DIGEST_KEY] = content_digest(arrays, meta)
        meta_text = text or json.dumps(meta)
        np.savez(out / "g.npz", **arrays, meta=np.array(meta_text))
        if kind == "huge":
            _declare_huge(out / "g.npz", rng.choice(names), rng)
            what = "huge declared shape"
        return what

    return make


def _declare_huge(npz: Path, member: str, rng: random.Random) -> None:
    """Rewrite ``member``'s ``.npy`` header to declare a huge shape over the same data."""
    import io

    with zipfile.ZipFile(npz) as zf:
        data = {n: zf.read(n) for n in zf.namelist()}
    raw = data[member + ".npy"]
    fh = io.BytesIO(raw)
    from snntopo.io import read_npy_header

    shape, fortran, dtype = read_npy_header(fh)
    body = raw[fh.tell() :]
    huge = rng.choice([(10**12,), (2**62,), (2**31, 2**31), (10**9, 4)])
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header,
        {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": fortran, "shape": huge},
    )
    data[member + ".npy"] = header.getvalue() + body
    with zipfile.ZipFile(
        npz, "w", compression=rng.choice([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
    ) as zf:
        for n, b in data.items():
            zf.writestr(n, b)


def make_damage(src: Path, name: str) -> Callable[[random.Random, Path], str]:
    data = src.read_bytes()

    def make(rng: random.Random, out: Path) -> str:
        bad, what = damage(data, rng)
        (out / name).write_bytes(bad)
        return what

    return make


@pytest.mark.parametrize("klass", ["damage", "edit"])
def test_fuzz_graph(tiny, klass):
    fuzz_file(tiny, "graph", tiny / "mge.npz", "g.npz", graph_result, make_graph_edit, klass)


def fuzz_file(tiny, kind: str, src: Path, name: str, result, make_edit, klass: str) -> None:
    """The baseline is ``result`` of an intact copy of ``src`` (as ``name`` in a folder of its
    own); then every case writes a damaged (byte-level) or edited (field-level) ``name``."""
    import shutil

    ref = tiny.parent / f"{kind}-ref"
    ref.mkdir(exist_ok=True)
    shutil.copy(src, ref / name)
    BASELINES[kind] = result(ref)
    make = make_damage(src, name) if klass == "damage" else make_edit(src)
    run_cases(kind, make, result, tiny)


# ----------------------------------------------------------------------------- masks
def mask_result(path: Path) -> Any:
    from snntopo.pai.io import load_mask

    masks, meta = load_mask(path / "mask.safetensors", expected=NETWORK)
    return (
        {k: _digest(v.numpy()) for k, v in masks.items()},
        json.dumps({k: meta.get(k) for k in NETWORK}, sort_keys=True),
    )


def make_mask_edit(src: Path) -> Callable[[random.Random, Path], str]:
    from safetensors import safe_open

    with safe_open(str(src), framework="numpy") as fh:
        meta_text = fh.metadata()["snntopo"]
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118

    def make(rng: random.Random, out: Path) -> str:
        from safetensors.numpy import save_file

        ts = {k: v.copy() for k, v in tensors.items()}
        kind = rng.choice(["meta", "meta", "tensor", "dtype", "delete", "header"])
        text = meta_text
        if kind == "meta":
            meta, what = edit_json(json.loads(meta_text), rng, skip=lambda p: False)
            text = dumps(meta)
        elif kind == "tensor":
            k = rng.choice(list(ts))
            flat = ts[k].reshape(-1)
            i = rng.randrange(flat.size)
            flat[i] = not flat[i]
            what = f"flip mask bit {k}[{i}]"
        elif kind == "dtype":
            k = rng.choice(list(ts))
            ts[k] = ts[k].astype(rng.choice([np.uint8, np.float32, np.int64]))
            what = f"{k} as {ts[k].dtype}"
        elif kind == "delete":
            k = rng.choice(list(ts))
            del ts[k]
            what = f"delete {k}"
        path = out / "mask.safetensors"
        save_file(ts, str(path), metadata={"snntopo": text})
        if kind == "header":
            what = _edit_safetensors_header(path, rng)
        return what

    return make


def _edit_safetensors_header(path: Path, rng: random.Random) -> str:
    """Edit the safetensors JSON header itself: a tensor's shape, dtype or offsets."""
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    names = [k for k in header if k != "__metadata__"]
    k = rng.choice(names)
    field = rng.choice(["shape", "dtype", "data_offsets"])
    header[k][field] = rng.choice(
        {
            "shape": [[10**12], [2**62, 2], [], [-1], [0]],
            "dtype": ["F64", "U8", "I64", "BOOL2"],
            "data_offsets": [[0, 10**12], [5, 3], [-1, 4]],
        }[field]
    )
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(len(text).to_bytes(8, "little") + text + raw[8 + n :])
    return f"header {k}.{field} = {header[k][field]}"


@pytest.mark.parametrize("klass", ["damage", "edit"])
def test_fuzz_mask(tiny, klass):
    src = tiny / "mask.safetensors"
    fuzz_file(tiny, "mask", src, "mask.safetensors", mask_result, make_mask_edit, klass)


# ----------------------------------------------------------------------------- layer specs
#: spec fields no encoder reads (a record of how the spec was made)
SPEC_UNREAD = ("provenance", "num_classes", "arch")


def graph_digest(path: Path) -> Any:
    from snntopo.encode.graph import load_graph

    g = load_graph(path)
    return (
        [_digest(a) for a in (g.indptr, g.indices, g.weights)],
        [(b.start, b.stop, b.shape) for b in g.blocks],
    )


def spec_result(tiny: Path) -> Callable[[Path], Any]:
    """Encode the spec (rolled every time, MGE every 4th case) and compare with the original's
    graphs: a spec the checks accept must give the very same graphs."""
    from snntopo.stages import encode_network

    refs: dict[str, Any] = {}
    for enc in ("rolled", "mge"):
        g = tiny.parent / f"spec-ref-{enc}.npz"
        encode_network(
            enc, str(tiny / "layers.json"), str(tiny / "init.safetensors"), {}, str(g), strict=False
        )
        refs[enc] = graph_digest(g)
    calls = {"n": 0}

    def read(path: Path) -> Any:
        calls["n"] += 1
        for enc in ("rolled", "mge") if calls["n"] % 4 == 1 else ("rolled",):
            g = path / f"{enc}.npz"
            encode_network(
                enc,
                str(path / "layers.json"),
                str(tiny / "init.safetensors"),
                {},
                str(g),
                strict=False,
            )
            if graph_digest(g) != refs[enc]:
                return f"{enc} differs"
        return "same graphs"

    return read


@pytest.mark.parametrize("klass", ["damage", "edit"])
def test_fuzz_layer_spec(tiny, klass):
    src = tiny / "layers.json"
    read = spec_result(tiny)
    BASELINES["spec"] = "same graphs"
    if klass == "damage":
        make = make_damage(src, "layers.json")
    else:
        spec = json.loads(src.read_text())

        def make(rng: random.Random, out: Path) -> str:
            obj, what = edit_json(spec, rng, skip=lambda p: p[0] in SPEC_UNREAD)
            (out / "layers.json").write_text(dumps(obj))
            return what

    run_cases("spec", make, read, tiny)


# ----------------------------------------------------------------------------- metric JSON
def metrics_result(path: Path) -> Any:
    from snntopo.tables import metric_tables

    tables, layers = metric_tables([str(path)])
    return {k: v.to_json() for k, v in tables.items()}, layers.to_json()


def _metric_value_path(p: tuple) -> bool:
    """A metric value (a number): another finite number there is another valid file; and the
    metric names (the tables take the columns a family wrote, e.g. the ramanujan family's
    per-layer aggregates), so the ``network`` object is not swapped whole either."""
    return len(p) >= 3 and p[0] == "encodings" and p[2] == "network"


@pytest.mark.parametrize("klass", ["damage", "edit"])
def test_fuzz_metric_json(tiny, klass):
    src = tiny / "metrics" / "local.json"
    # the file must sit in its network's directory (the tables check it): mutate in place
    original = src.read_text()
    BASELINES["metrics"] = metrics_result(src)
    rng_root = random.Random(f"{SEED}:metrics:{klass}")
    failures: list[str] = []
    counts: dict[str, int] = {}
    try:
        for i in range(ITERATIONS):
            rng = random.Random(rng_root.getrandbits(64))
            if klass == "damage":
                bad, what = damage(original.encode(), rng)
                src.write_bytes(bad)
            else:
                # an edited file without its digest (with it, every edit is a digest error)
                unstamped = {k: v for k, v in json.loads(original).items() if k != "content_sha256"}
                obj, what = edit_json(unstamped, rng, skip=_metric_value_path)
                src.write_text(dumps(obj))
            outcome = check_outcome(
                metrics_result, src, BASELINES["metrics"], f"metrics case {i} ({what})", failures
            )
            counts[outcome] = counts.get(outcome, 0) + 1
    finally:
        src.write_text(original)
    print(f"metrics {klass}: {counts}")
    assert not failures, f"seed {SEED}: " + "\n".join(failures[:20])


# ----------------------------------------------------------------------------- predictor
#: what a numeric field of a predictor may be given instead: never another valid predictor
#: (another finite number is, and is not generated: a hand-made predictor carries numbers, not a
#: proof of them; ``fit``'s files record ``content_sha256``, so damage to them is caught)
BAD_NUMBERS: list[Any] = [None, True, "0.5", [], {}, float("nan"), float("inf"), -float("inf")]


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def edit_predictor(doc: Any, rng: random.Random) -> tuple[Any, str]:
    """:func:`edit_json`'s edits on the non-numeric fields; a numeric field is given a value of
    another type or a non-finite one, or (in a list) removed or repeated."""
    numeric = [p for p in _paths(doc) if p and _is_number(_get(doc, p))]
    if rng.random() < 0.5 or not numeric:
        # a known method's mean deleted whole is a predictor fit on tables that lack those
        # networks (valid); its fields are edited all the same
        def skip(p: tuple) -> bool:
            return _is_number(_get(doc, p)) or (len(p) == 4 and p[2] == "known_means")

        # [1, 2] for a list of two coefficients is another valid predictor
        return edit_json(doc, rng, skip=skip, odd=[v for v in ODD_VALUES if v != [1, 2]])
    obj = json.loads(json.dumps(doc))
    path = rng.choice(numeric)
    parent, key = _get(obj, path[:-1]), path[-1]
    kind = rng.choice(["swap", "swap", "delete", "repeat"])
    if kind == "swap" or not isinstance(parent, list):
        nullable = "validation" in path or key in ("interval_halfwidth", "alpha")
        value = rng.choice([v for v in BAD_NUMBERS if not (nullable and v is None)])
        parent[key] = value
        return obj, f"{'.'.join(map(str, path))} = {value!r}"
    if kind == "delete":
        del parent[key]
    else:
        parent.insert(key, parent[key])
    return obj, f"{kind} {'.'.join(map(str, path))}"


@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> Path:
    """A predictor fit on synthetic tables (``test_predictor.synthetic``) and one metric file of
    a new method to predict."""
    from test_predictor import fitted_with_new_metrics

    d = tmp_path_factory.mktemp("fuzz-predictor")
    fitted_with_new_metrics(d)
    return d


def predictor_result(fitted: Path) -> Callable[[Path], Any]:
    from snntopo.analysis.predictor import predict

    def read(path: Path) -> Any:
        pred, ranks = predict(path / "predictor.json", [str(fitted / "m.json")])
        return pred.to_json(), ranks.to_json()

    return read


@pytest.mark.parametrize("klass", ["damage", "edit"])
def test_fuzz_predictor(fitted, klass):
    src = fitted / "pred" / "predictor.json"
    read = predictor_result(fitted)
    BASELINES["predictor"] = read(fitted / "pred")
    if klass == "damage":
        make = make_damage(src, "predictor.json")
    else:
        # edited by hand: the file without its digest (with it, every edit is a digest error)
        doc = {k: v for k, v in json.loads(src.read_text()).items() if k != "content_sha256"}

        def make(rng: random.Random, out: Path) -> str:
            obj, what = edit_predictor(doc, rng)
            (out / "predictor.json").write_text(dumps(obj))
            return what

    run_cases("predictor", make, read, fitted)


# ----------------------------------------------------------------------------- tables (CSV)
#: what a cell of a table may be given instead; a key cell or an accuracy must refuse each of
#: them, a feature cell those that are not a finite number or empty (an undefined metric is
#: allowed: NaN)
BAD_CELLS = ["", "nan", "inf", "-inf", "1e400", "abc", "1,5", "True", "0x10", "-1", "2", "1.5",
             "9" * 30, '"', "\u00e9\u00e9"]  # fmt: skip


def make_table_edit(src: Path) -> Callable[[random.Random, Path], str]:
    """Edits of the tables directory ``src`` (``networks.csv``, ``mge.csv``): a column deleted,
    named twice or renamed blank, a row repeated, a cell given a bad value, a ragged row."""
    import csv
    import shutil

    files = sorted(p.name for p in src.glob("*.csv"))

    def make(rng: random.Random, out: Path) -> str:
        for f in files:
            shutil.copy(src / f, out / f)
        name = rng.choice(files)
        with open(src / name, newline="") as fh:
            rows = list(csv.reader(fh))
        header, body = rows[0], rows[1:]
        kind = rng.choice(["cell", "cell", "cell", "drop_column", "twice", "blank", "repeat",
                           "ragged"])  # fmt: skip
        j = rng.randrange(len(header))
        i = rng.randrange(len(body))
        col = header[j]
        if kind == "cell":
            value = rng.choice(BAD_CELLS)
            feature = name != "networks.csv" and col not in ("dataset", "arch", "method",
                                                              "sparsity", "seed")  # fmt: skip
            if feature and value in ("", "nan", "-1", "2", "1.5", "9" * 30):
                value = "inf"  # empty (undefined) or another finite number: a valid table
            if col in ("dataset", "arch", "method") and value not in ("", "nan"):
                value = ""  # any other string is another (valid) name
            body[i][j] = value
            what = f"{name} row {i + 2} {col} = {value!r}"
        elif kind == "drop_column":
            if col not in ("dataset", "arch", "method", "sparsity", "seed", "accuracy"):
                col = "seed"  # a feature column dropped is a valid table with fewer features
                j = header.index(col)
            header, body = header[:j] + header[j + 1 :], [r[:j] + r[j + 1 :] for r in body]
            what = f"{name}: column {col} deleted"
        elif kind == "twice":
            header, body = [*header, col], [[*r, r[j]] for r in body]
            what = f"{name}: column {col} named twice"
        elif kind == "blank":
            header = [*header[:j], "", *header[j + 1 :]]
            what = f"{name}: column {j + 1} renamed blank"
        elif kind == "repeat":
            body.insert(i, list(body[i]))
            what = f"{name}: row {i + 2} repeated"
        else:
            body[i] = [*body[i], "1"]
            what = f"{name}: row {i + 2} has one field too many"
        with open(out / name, "w", newline="") as fh:
            csv.writer(fh).writerows([header, *body])
        return what

    return make


def tables_result(path: Path) -> Any:
    from snntopo.analysis.tables import load_tables

    t = load_tables(path)
    return t.networks.to_json(), {k: v.to_json() for k, v in t.features.items()}


def test_fuzz_tables(fitted):
    """The canonical tables ``snntopo fit``/``analyze`` read. Byte damage is not generated: a
    CSV carries no digest, so a flipped digit in a value is another valid table."""
    src = fitted / "tables"
    BASELINES["tables"] = tables_result(src)
    run_cases("tables", make_table_edit(src), tables_result, fitted)


# ----------------------------------------------------------------------------- data set
@pytest.fixture(scope="module")
def tiny_imagenet(tmp_path_factory) -> Path:
    """The fake ``tiny-imagenet-200`` of ``test_data`` (200 classes, one val image each)."""
    from test_data import write_fake_tiny

    root = tmp_path_factory.mktemp("fuzz-data") / "ref"
    write_fake_tiny(root)
    return root


def data_result(root: Path) -> Any:
    """The val split as the trainer reads it: every (image, label) pair."""
    import torch

    from snntopo.data import load_dataset

    ds = load_dataset("tinyimagenet", root, train=False)
    items = [ds[i] for i in range(len(ds))]
    x = torch.stack([a for a, _ in items]).numpy()
    return _digest(x), [t for _, t in items]


def make_data_case(ref: Path, klass: str) -> Callable[[random.Random, Path], str]:
    """Damage (bytes) or edits (lines deleted, repeated, a field changed) of ``wnids.txt`` and
    ``val_annotations.txt``, or an image cut short. Not generated, because undetectable: flipped
    bits inside an image's compressed data (JPEG has no checksum: another valid image) and two
    lines of ``val_annotations.txt`` swapping their images (every class keeps one image)."""
    import shutil

    texts = ["wnids.txt", "val/val_annotations.txt"]

    def make(rng: random.Random, out: Path) -> str:
        base = out / "tiny-imagenet-200"
        shutil.rmtree(base, ignore_errors=True)  # the other class's case of the same number
        base.mkdir()
        shutil.copy(ref / "tiny-imagenet-200" / "wnids.txt", base)  # the val split reads no train/
        shutil.copytree(ref / "tiny-imagenet-200" / "val", base / "val")
        if rng.random() < 0.2:
            img = base / "val" / "images" / f"val_{rng.randrange(200)}.JPEG"
            data = img.read_bytes()
            n = rng.randrange(len(data) - 2)  # without its end-of-image marker
            img.write_bytes(data[:n])
            return f"{img.name} cut to {n} bytes"
        name = rng.choice(texts)
        f = base / name
        if klass == "damage":
            bad, what = damage(f.read_bytes(), rng)
            f.write_bytes(bad)
            return f"{name}: {what}"
        lines = f.read_text().splitlines()
        i = rng.randrange(len(lines))
        kind = rng.choice(["delete", "repeat", "field"])
        if kind == "delete":
            del lines[i]
        elif kind == "repeat":
            lines.insert(i, lines[i])
        else:
            parts = lines[i].split("\t")
            k = rng.randrange(min(2, len(parts)))
            parts[k] = rng.choice(["", "../" + parts[k], "x" * 300, parts[k] + " ", "\u00e9"])
            lines[i] = "\t".join(parts)
            kind = f"field {k} = {parts[k]!r:.30} in"
        f.write_text("\n".join(lines) + "\n")
        return f"{name}: {kind} line {i + 1}"

    return make


@pytest.mark.parametrize("klass", ["damage", "edit"])
def test_fuzz_data_set(tiny_imagenet, klass):
    """Tiny-ImageNet's val split (the reader of a downloaded data set with files of its own;
    CIFAR's batches are checked against their published md5 before they are read)."""
    BASELINES["data"] = data_result(tiny_imagenet)
    run_cases("data", make_data_case(tiny_imagenet, klass), data_result, tiny_imagenet)
