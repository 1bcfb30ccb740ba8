"""Guarantees, CLI arguments: bad values stop at parse time with one line naming the argument; an
output that is one of the inputs is refused before anything is written."""

from __future__ import annotations

import numpy as np
import pytest

from snntopo.cli import main
from snntopo.encode.graph import Block, from_edges, save_graph


@pytest.fixture
def graph_file(tmp_path):
    blocks = [Block("input", 0, 3, (3,)), Block("out", 3, 5, (2,))]
    g = from_edges(
        np.array([0, 1, 2, 0]), np.array([3, 3, 4, 4]), np.array([0.5, -1.0, 2.0, 0.1]), blocks
    )
    p = tmp_path / "g.npz"
    save_graph(p, g)
    return p


def _argparse_error(argv, capsys, *fragments):
    with pytest.raises(SystemExit) as err:
        main(argv)
    assert err.value.code == 2
    msg = capsys.readouterr().err.strip().splitlines()[-1]
    for frag in fragments:
        assert frag in msg, (frag, msg)
    return msg


def test_metrics_refuses_to_overwrite_its_graph(graph_file, capsys):
    before = graph_file.read_bytes()
    rc = main(["metrics", str(graph_file), "--families", "local", "--out", str(graph_file)])
    assert rc == 2
    assert "is the input file" in capsys.readouterr().err
    assert graph_file.read_bytes() == before


def test_metrics_refuses_same_file_by_another_name(graph_file, tmp_path, capsys):
    link = tmp_path / "alias.npz"
    link.hardlink_to(graph_file)
    before = graph_file.read_bytes()
    assert main(["metrics", str(graph_file), "--families", "local", "--out", str(link)]) == 2
    assert graph_file.read_bytes() == before


@pytest.mark.parametrize("value", ["0", "-1", "nan", "abc"])
def test_width_must_be_positive(value, capsys):
    argv = ["mask", "--arch", "resnet20", "--dataset", "digits", "--method", "erk"]
    _argparse_error(
        [*argv, "--sparsity", "0.9", "--seed", "0", f"--width={value}", "--out", "m.st"],
        capsys,
        "argument --width",
    )


def test_input_size_below_smallest_valid(capsys):
    argv = ["train", "--arch", "resnet20", "--dataset", "digits", "--input-size", "1"]
    _argparse_error([*argv, "--out", "x"], capsys, "argument --input-size", "8")


@pytest.mark.parametrize("command", ["metrics", "bench"])
def test_threads_zero(command, graph_file, capsys):
    argv = ["metrics", str(graph_file)] if command == "metrics" else ["bench"]
    _argparse_error([*argv, "--threads", "0", "--out", "o"], capsys, "argument --threads")


def test_seed_beyond_32_bits(capsys):
    argv = ["mask", "--arch", "resnet20", "--dataset", "digits", "--method", "erk"]
    _argparse_error(
        [*argv, "--sparsity", "0.9", f"--seed={2**64}", "--out", "m.st"], capsys, "--seed"
    )


@pytest.mark.parametrize(
    "param", ["motif_sample_fraction=2", "motif_sample_fraction=0", "eigsh_maxiter=0"]
)
def test_out_of_range_metric_param(param, graph_file, tmp_path, capsys):
    out = tmp_path / "m.json"
    rc = main(["metrics", str(graph_file), "--param", param, "--out", str(out)])
    assert rc == 2
    err = capsys.readouterr().err
    assert param.split("=")[0] in err and "out of range" in err, err
    assert not out.exists()


def test_out_of_range_pai_batch_size(capsys, tmp_path):
    argv = ["mask", "--arch", "resnet20", "--dataset", "digits", "--method", "snip"]
    _argparse_error(
        [*argv, "--sparsity", "0.9", "--seed", "0", "--batch-size", "0", "--out", "m.st"],
        capsys,
        "argument --batch-size",
    )


def test_unwritable_out_fails_before_the_work(graph_file, tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        rc = main(["metrics", str(graph_file), "--out", str(ro / "sub" / "m.json")])
    finally:
        ro.chmod(0o700)
    err = capsys.readouterr().err
    if rc == 0:  # pragma: no cover - running as root: permissions are not enforced
        pytest.skip("permissions not enforced for this user")
    assert rc == 2 and "cannot write to" in err, err


def test_out_under_a_file_fails_before_the_work(graph_file, tmp_path, capsys):
    """Works as root too: a directory cannot be created under a regular file."""
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    rc = main(["metrics", str(graph_file), "--out", str(blocker / "sub" / "m.json")])
    err = capsys.readouterr().err
    assert rc == 2 and "cannot write to" in err and str(blocker) in err, err
