"""Faults: a job killed part-way leaves no complete-looking output and its rerun gives the same
result as an uninterrupted run; out-of-memory is reported with the graph size and the memory asked
for; the retry asks for more."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from snntopo.encode.graph import Block, from_edges, save_graph
from snntopo.workflow import graph_mem_mb

REPO = Path(__file__).resolve().parents[1]


def _layered_graph(n_layers: int = 6, width: int = 3000, degree: int = 60, seed: int = 0):
    """A random layered graph big enough that the neighbourhood family takes a few seconds."""
    rng = np.random.default_rng(seed)
    blocks, src, dst = [], [], []
    for layer in range(n_layers):
        blocks.append(Block(f"l{layer}", layer * width, (layer + 1) * width, (width,)))
    for layer in range(n_layers - 1):
        s = np.repeat(np.arange(width), degree) + layer * width
        d = rng.integers(0, width, size=s.size) + (layer + 1) * width
        src.append(s)
        dst.append(d)
    src, dst = np.concatenate(src), np.concatenate(dst)
    return from_edges(src, dst, rng.random(src.size) + 0.1, blocks, sum_duplicates=True)


def _metrics_cmd(graph: Path, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "snntopo.cli",
        "metrics",
        str(graph),
        "--families",
        "local",
        "neighbourhood",
        "global",
        "expansion",
        "--seed",
        "3",
        "--out",
        str(out),
    ]


def _values(path: Path) -> dict:
    data = json.loads(path.read_text())
    arts = data.values() if "network" not in data else [data]
    return {a["family"]: a["network"] for a in arts}


@pytest.mark.slow
def test_killed_metric_job_leaves_nothing_and_rerun_is_identical(tmp_path):
    graph = tmp_path / "g.npz"
    save_graph(graph, _layered_graph(n_layers=8, width=8000, degree=120))
    reference = tmp_path / "reference.json"
    subprocess.run(_metrics_cmd(graph, reference), check=True, capture_output=True)

    out = tmp_path / "killed.json"
    proc = subprocess.Popen(_metrics_cmd(graph, out), stdout=subprocess.DEVNULL)
    time.sleep(2.5)  # past start-up and loading, inside the computation (~8 s in all)
    assert proc.poll() is None, "the job finished before it could be killed; enlarge the graph"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files

    subprocess.run(_metrics_cmd(graph, out), check=True, capture_output=True)
    assert _values(out) == _values(reference)


def test_out_of_memory_is_reported_with_graph_size_and_request(tmp_path):
    graph = tmp_path / "g.npz"
    save_graph(graph, _layered_graph(n_layers=3, width=2000, degree=30))
    log = tmp_path / "job.log"
    out = tmp_path / "m.json"
    script = textwrap.dedent(
        f"""
        import numpy as np
        from snntopo.jobs import limit_memory, run_job

        def greedy(graph_path, out):
            # stands in for a metric whose memory outgrows the estimate
            blocks = [np.ones(10**8) for _ in range(100)]

        limit_memory(200)
        run_job(greedy, {str(log)!r}, job_context={{"mem_mb": 200, "attempt": 1}},
                graph_path={str(graph)!r}, out={str(out)!r})
        """
    )
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert res.returncode == 1, res.stderr
    text = log.read_text()
    assert "out of memory in greedy" in text
    from snntopo.encode.graph import load_graph

    assert f"{graph}: {load_graph(graph).n_edges} edges" in text
    assert "asked for 200 MB (attempt 1)" in text
    assert "a retry asks for 400 MB" in text
    assert "Traceback" not in text
    assert not out.exists()


def test_retry_asks_for_more_memory():
    first = graph_mem_mb(25e6, attempt=1)
    assert graph_mem_mb(25e6, attempt=2) == 2 * first
    assert graph_mem_mb(25e6, attempt=3) == 4 * first
    assert graph_mem_mb(1.6e8, attempt=1) > first  # bigger graphs ask for more


def test_memory_default_is_the_schemas_and_covers_the_measured_peak():
    import yaml

    from snntopo.workflow import MEM_MB_PER_MILLION_EDGES

    schema = yaml.safe_load((Path(__file__).parents[1] / "config" / "schema.yaml").read_text())
    res = schema["properties"]["resources"]["properties"]
    assert res["mem_mb_per_million_edges"]["default"] == MEM_MB_PER_MILLION_EDGES
    # docs/benchmarks.md: Conv-6 SynFlow 0.6 neighbourhood peaked at 4,117 MB for 172.5M edges
    assert graph_mem_mb(172_524_084, attempt=1) > 4117


def test_metric_request_follows_stored_graph_size(tmp_path):
    from snntopo.workflow import metrics_mem_mb

    small, big = tmp_path / "small.npz", tmp_path / "big.npz"
    save_graph(small, _layered_graph(n_layers=2, width=100, degree=5))
    save_graph(big, _layered_graph(n_layers=4, width=2000, degree=50))
    cfg = {"resources": {"mem_mb_per_million_edges": 1000.0}}
    assert metrics_mem_mb([str(big)], 1, cfg) > metrics_mem_mb([str(small)], 1, cfg)
    assert metrics_mem_mb([str(big)], 2, cfg) == 2 * metrics_mem_mb([str(big)], 1, cfg)


def test_cuda_requested_without_gpu_is_a_clear_error():
    import torch

    from snntopo.errors import DeviceError
    from snntopo.train import resolve_device

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(DeviceError, match="cuda"):
        resolve_device("cuda")


def test_missing_dataset_is_a_clear_error(tmp_path):
    from snntopo.data import load_dataset
    from snntopo.errors import DataError

    with pytest.raises(DataError, match=str(tmp_path)):
        load_dataset("cifar10", root=tmp_path, train=True, download=False)
