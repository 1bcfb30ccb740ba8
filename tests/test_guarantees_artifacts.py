"""Guarantees, artifacts that vouch for themselves: an artifact of another grid point copied into a
network's directory, an all-zero mask, a mask whose bits were replaced, weights of another mask,
a metrics file of another network in the join, NaN/Inf weights and non-numeric table cells each
stop with one line naming the file, the key and both values; nothing downstream is written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file, save_file
from tiny_job import TINY_DIGITS_JOB

from snntopo.errors import ArtifactError, MaskError, TableError
from snntopo.stages.encode import encode_network
from snntopo.stages.mask import make_mask
from snntopo.stages.metrics import compute_metrics
from snntopo.stages.spec import make_spec

BASE = {**TINY_DIGITS_JOB, "method": "erk"}


def net_dir(root: Path, sparsity: float, seed: int = 0) -> Path:
    return root / "digits" / "resnet20" / "erk" / f"s{sparsity:g}" / f"seed{seed}"


def keys(sparsity: float, seed: int = 0) -> dict:
    return {
        "dataset": "digits",
        "arch": "resnet20",
        "method": "erk",
        "sparsity": sparsity,
        "seed": seed,
    }


@pytest.fixture(scope="module")
def grid(tmp_path_factory) -> Path:
    """Masks and inits of three grid points (ERK 0.9 and 0.98 seed 0, 0.9 seed 1) + the spec."""
    root = tmp_path_factory.mktemp("results")
    for s, seed in ((0.9, 0), (0.98, 0), (0.9, 1)):
        d = net_dir(root, s, seed)
        params = {**BASE, "sparsity": s, "seed": seed, "data_root": str(root)}
        make_mask(params, str(d / "mask.safetensors"), str(d / "init.safetensors"))
    make_spec(BASE, str(root / "digits" / "resnet20" / "layers.json"))
    return root


@pytest.fixture
def copy_grid(grid, tmp_path) -> Path:
    dst = tmp_path / "results"
    shutil.copytree(grid, dst)
    return dst


def _rewrite_meta(path: Path, **changes) -> None:
    """Rewrite a safetensors file's metadata, keeping its tensors (a hostile or careless edit)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        meta = json.loads(fh.metadata()["snntopo"])
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
    meta.update(changes)
    save_file(tensors, str(path), metadata={"snntopo": json.dumps(meta)})


def _encode(root: Path, sparsity: float, seed: int = 0, encoding: str = "rolled") -> Path:
    d = net_dir(root, sparsity, seed)
    out = d / "graphs" / f"{encoding}.npz"
    encode_network(
        encoding,
        str(root / "digits" / "resnet20" / "layers.json"),
        str(d / "init.safetensors"),
        {"network": keys(sparsity, seed)},
        str(out),
        mask_path=str(d / "mask.safetensors"),
    )
    return out


# --------------------------------------------------------------------------- init / mask / model
def test_own_artifacts_encode(copy_grid):
    out = _encode(copy_grid, 0.9)
    assert out.is_file()


def test_init_of_another_sparsity_is_refused(copy_grid):
    d9, d98 = net_dir(copy_grid, 0.9), net_dir(copy_grid, 0.98)
    shutil.copy(d98 / "init.safetensors", d9 / "init.safetensors")
    with pytest.raises(ArtifactError) as err:
        _encode(copy_grid, 0.9)
    msg = str(err.value)
    assert str(d9 / "init.safetensors") in msg and "sparsity is 0.98" in msg and "0.9" in msg
    assert not (d9 / "graphs").exists()


def test_init_and_mask_both_of_another_network_are_refused(copy_grid):
    """Both copied: the pair agrees with itself, but not with the grid point."""
    d9, d98 = net_dir(copy_grid, 0.9), net_dir(copy_grid, 0.98)
    for f in ("init.safetensors", "mask.safetensors"):
        shutil.copy(d98 / f, d9 / f)
    with pytest.raises(
        ArtifactError, match="sparsity is 0.98 but this grid point has sparsity 0.9"
    ):
        _encode(copy_grid, 0.9)


def test_init_of_another_mask_with_forged_metadata_is_refused(copy_grid):
    """seed 1's init relabelled as seed 0: its metadata now agrees, but it vouches for another
    mask file and its nonzero weights sit where seed 0's mask prunes."""
    d0, d1 = net_dir(copy_grid, 0.9, 0), net_dir(copy_grid, 0.9, 1)
    shutil.copy(d1 / "init.safetensors", d0 / "init.safetensors")
    _rewrite_meta(d0 / "init.safetensors", seed=0)
    with pytest.raises(ArtifactError, match=r"mask_sha256 is \w+ but .*mask.safetensors has"):
        _encode(copy_grid, 0.9)
    _rewrite_meta(d0 / "init.safetensors", mask_sha256=None)  # and without the digest:
    with pytest.raises(ArtifactError, match="nonzero weights of .* are pruned by"):
        _encode(copy_grid, 0.9)


def test_mask_of_another_sparsity_is_refused_before_training(copy_grid):
    from snntopo.stages.train import train_network

    d9, d98 = net_dir(copy_grid, 0.9), net_dir(copy_grid, 0.98)
    shutil.copy(d98 / "mask.safetensors", d9 / "mask.safetensors")
    params = {
        **BASE,
        "sparsity": 0.9,
        "seed": 0,
        "data_root": str(copy_grid),
        "training": {"epochs": 1},
    }
    with pytest.raises(MaskError, match="sparsity is 0.98 but this grid point has sparsity 0.9"):
        train_network(
            params,
            str(d9 / "mask.safetensors"),
            str(d9 / "model.safetensors"),
            str(d9 / "train.json"),
            str(d9 / "checkpoint.pt"),
        )
    assert not any((d9 / f).exists() for f in ("model.safetensors", "train.json", "checkpoint.pt"))


def test_all_zero_mask_is_refused(copy_grid):
    from snntopo.pai.io import load_mask, save_mask

    p = net_dir(copy_grid, 0.9) / "mask.safetensors"
    masks, meta = load_mask(p)
    zeros = {n: torch.zeros_like(m) for n, m in masks.items()}
    save_file(zeros, str(p), metadata={"snntopo": json.dumps(meta)})  # bits replaced, meta kept
    with pytest.raises(MaskError, match="all-zero mask"):
        load_mask(p)
    save_mask(p, zeros, meta)  # or written honestly: still a network without edges
    with pytest.raises(MaskError, match=r"all-zero mask \(keeps 0 of \d+ weights"):
        load_mask(p)


def test_mask_bits_replaced_behind_its_metadata_are_refused(copy_grid):
    from snntopo.pai.io import load_mask

    d9, d98 = net_dir(copy_grid, 0.9), net_dir(copy_grid, 0.98)
    bits98 = load_file(str(d98 / "mask.safetensors"))
    _, meta9 = load_mask(d9 / "mask.safetensors")
    save_file(bits98, str(d9 / "mask.safetensors"), metadata={"snntopo": json.dumps(meta9)})
    with pytest.raises(MaskError, match=r"realised_sparsity is recorded as 0\.9\d* but the mask"):
        load_mask(d9 / "mask.safetensors")


def test_graph_of_another_network_is_refused_by_metrics(copy_grid, tmp_path):
    g98 = _encode(copy_grid, 0.98)
    out = tmp_path / "local.json"
    with pytest.raises(
        ArtifactError, match="sparsity is 0.98 but this grid point has sparsity 0.9"
    ):
        compute_metrics("local", {"rolled": str(g98)}, {"network": keys(0.9)}, str(out))
    assert not out.exists()


def test_nan_init_weights_are_one_line(copy_grid):
    from snntopo.errors import NonFiniteError

    p = net_dir(copy_grid, 0.9) / "init.safetensors"
    from safetensors import safe_open

    with safe_open(str(p), framework="pt") as fh:
        meta = fh.metadata()
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
    name = next(iter(tensors))
    tensors[name] = tensors[name].clone()
    tensors[name].view(-1)[0] = float("nan")  # a kept or a pruned weight: both are refused
    save_file(tensors, str(p), metadata=meta)
    with pytest.raises(NonFiniteError, match=f"tensor '{name}' holds 1 NaN/Inf"):
        _encode(copy_grid, 0.9)


# --------------------------------------------------------------------------- the join
def _metric_file(path: Path, family: str, net: dict, value=1.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {"family": family, "encodings": {"mge": {"network": {"x": value}}}, "network": net}
        )
    )
    return path


def _train_file(path: Path, net: dict, acc=0.5) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**net, "accuracy": acc}))
    return path


def test_metrics_file_of_another_network_in_the_join(tmp_path):
    from snntopo.tables import write_tables

    root = tmp_path / "results"
    train = [_train_file(net_dir(root, s) / "train.json", keys(s)) for s in (0.9, 0.98)]
    m9 = _metric_file(net_dir(root, 0.9) / "metrics" / "local.json", "local", keys(0.98))
    m98 = _metric_file(net_dir(root, 0.98) / "metrics" / "local.json", "local", keys(0.98))
    out = tmp_path / "tables"
    with pytest.raises(TableError) as err:
        write_tables([str(p) for p in train], [str(m9), str(m98)], str(out))
    msg = str(err.value)
    assert str(m9) in msg and "sparsity is 0.98" in msg and "its directory has sparsity 0.9" in msg
    assert not out.exists()


def test_duplicate_network_outside_the_layout(tmp_path):
    from snntopo.tables import metric_tables

    a = _metric_file(tmp_path / "a.json", "local", keys(0.9))
    b = _metric_file(tmp_path / "b.json", "local", keys(0.9))
    with pytest.raises(TableError, match=f"{b}: describes the same network .* as {a}"):
        metric_tables([str(a), str(b)])


def test_metric_file_named_for_another_family(tmp_path):
    from snntopo.tables import metric_tables

    p = _metric_file(net_dir(tmp_path, 0.9) / "metrics" / "local.json", "global", keys(0.9))
    with pytest.raises(TableError, match="family is 'global' but the file is named for 'local'"):
        metric_tables([str(p)])


def test_non_numeric_metric_value_names_file_and_metric(tmp_path):
    from snntopo.tables import metric_tables

    p = _metric_file(net_dir(tmp_path, 0.9) / "metrics" / "local.json", "local", keys(0.9), "abc")
    with pytest.raises(TableError, match=f"{p}: mge metric 'x' is 'abc', not a number"):
        metric_tables([str(p)])


def test_non_numeric_table_cell_names_file_and_column(tmp_path):
    from snntopo.analysis.tables import load_canonical_tables

    nets = pd.DataFrame(
        [
            {**keys(s, seed), "accuracy": 0.5, "dense_accuracy": 0.9}
            for s in (0.9, 0.98)
            for seed in (0, 1)
        ]
    )
    nets.to_csv(tmp_path / "networks.csv", index=False)
    feats = nets[["dataset", "arch", "method", "sparsity", "seed"]].assign(
        x=["1", "2", "oops", "4"]
    )
    feats.to_csv(tmp_path / "mge.csv", index=False)
    with pytest.raises(TableError, match=r"mge.csv: column 'x' holds non-numeric value 'oops'"):
        load_canonical_tables(tmp_path)


def test_graph_of_another_encoding_is_refused_by_metrics(copy_grid, tmp_path):
    g = _encode(copy_grid, 0.9, encoding="rolled")
    out = tmp_path / "local.json"
    with pytest.raises(ArtifactError, match="encoding is 'rolled' but this job has encoding 'mge'"):
        compute_metrics("local", {"mge": str(g)}, {"network": keys(0.9)}, str(out))
    assert not out.exists()
