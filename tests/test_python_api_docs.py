"""docs/python-api.md (and the README's "From Python") runs as written: its code blocks, joined in order, read a mask, the masked
initial weights, a trained model and a graph (scipy CSR and igraph) that the CLI made, and what they
print agrees with what the CLI reported when it wrote them."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SNNTOPO = str(Path(sys.executable).parent / "snntopo")
DOC = REPO / "docs" / "python-api.md"


def _cli(cwd: Path, *args: str) -> dict:
    res = subprocess.run([SNNTOPO, *args], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])  # each command's closing JSON line


@pytest.mark.slow
def test_python_api_doc_runs_on_cli_artifacts(tmp_path):
    text = DOC.read_text()
    blocks = re.findall(r"^```python\n(.*?)^```", text, re.M | re.S)
    assert len(blocks) == 3  # a mask; a model; a graph
    net = re.search(r'net = Path\("([^"]+)"\)', blocks[0])[1]
    # the network the page names, made with the CLI on the demo's settings
    _, dataset, arch, method, sparsity, seed = Path(net).parts
    keys = ["--arch", arch, "--dataset", dataset, "--method", method]
    keys += ["--sparsity", sparsity.removeprefix("s"), "--seed", seed.removeprefix("seed")]
    common = [*keys, "--config", str(REPO / "config" / "demo.yaml"), "--threads", "1"]
    mask, init = f"{net}/mask.safetensors", f"{net}/init.safetensors"
    subprocess.run(
        [SNNTOPO, "mask", *common, "--out", mask, "--init", init],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    trained = _cli(
        tmp_path, "train", *common, "--mask", mask, "--epochs", "1", "--limit-batches", "2",
        "--device", "cpu", "--out", net,
    )  # fmt: skip
    graph = _cli(
        tmp_path, "encode", *common, "--mask", mask, "--encoding", "mge",
        "--out", f"{net}/graphs/mge.npz",
    )  # fmt: skip

    res = subprocess.run(
        [sys.executable, "-c", "\n".join(blocks)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    out = res.stdout
    assert out.startswith(f"{method} {float(sparsity.removeprefix('s'))} realised 0.9")
    assert f"test accuracy {trained['accuracy']} epochs 1" in out
    # the graph as the encoder reported it, through the reader, scipy and igraph alike
    n, e = graph["nodes"], graph["edges"]
    assert f"{n} nodes {e} edges ['input'" in out
    assert f"({n}, {n}) {e} [" in out
    assert re.search(rf"^{n} {e} \d+$", out, re.M)

    # the README's short version of the same page
    section = (REPO / "README.md").read_text().split("### From Python", 1)[1].split("\n## ", 1)[0]
    (short,) = re.findall(r"^```python\n(.*?)^```", section, re.M | re.S)
    check = (
        "\nassert A.nnz == G.ecount() == g.n_edges == {e} and len(masks) == len(meta['densities'])"
    )
    res = subprocess.run(
        [sys.executable, "-c", short + check.format(e=e)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
