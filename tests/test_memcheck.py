"""Pre-flight memory check: a graph job whose estimated peak exceeds the memory the process may use
stops with one line (needed, available, what to do) before it starts, and writes nothing."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from snntopo import memcheck
from snntopo.cli import main
from snntopo.encode.graph import Block, from_edges, save_graph
from snntopo.errors import MemoryLimitError
from snntopo.memcheck import MB, MemoryGuard, check_memory

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def graph_file(tmp_path):
    blocks = [Block("input", 0, 3, (3,)), Block("out", 3, 5, (2,))]
    g = from_edges(
        np.array([0, 1, 2, 0]), np.array([3, 3, 4, 4]), np.array([0.5, -1.0, 2.0, 0.1]), blocks
    )
    p = tmp_path / "g.npz"
    save_graph(p, g)
    return p


def _fake_machine(monkeypatch, *, rss, avail, cgroup=None, rlimit_as=None, vmsize=0):
    """Replace every limit reader: a process holding ``rss`` bytes on a machine with ``avail``
    bytes available, optionally a cgroup room and an address-space limit."""
    import resource

    monkeypatch.setattr(memcheck, "_status", lambda: {"VmRSS": rss, "VmSize": vmsize})
    monkeypatch.setattr(memcheck, "available_memory_bytes", lambda: avail)
    monkeypatch.setattr(memcheck, "_cgroup_room", lambda: cgroup)
    real = resource.getrlimit

    def getrlimit(which):
        if which == resource.RLIMIT_AS and rlimit_as is not None:
            return (rlimit_as, resource.RLIM_INFINITY)
        if which in (resource.RLIMIT_AS, resource.RLIMIT_DATA):
            return (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
        return real(which)

    monkeypatch.setattr(memcheck.resource, "getrlimit", getrlimit)


def test_the_smallest_limit_wins_and_held_memory_counts(monkeypatch):
    # 100 MB held + 1000 MB available; cgroup room 600 MB; ulimit -v 3000 MB of which 2500 in use
    _fake_machine(
        monkeypatch, rss=100 * MB, avail=1000 * MB, cgroup=600 * MB, rlimit_as=3000 * MB,
        vmsize=2500 * MB,
    )  # fmt: skip
    limits = dict((s, b // MB) for b, s in memcheck.memory_limits(explicit_mb=800))
    assert limits == {
        "MemAvailable of /proc/meminfo": 1100,
        "the cgroup's memory limit": 700,
        "the address-space limit (ulimit -v)": 600,
        "the job's memory limit": 800,
    }


def test_refusal_is_one_line_with_need_available_and_what_to_do(monkeypatch):
    _fake_machine(monkeypatch, rss=100 * MB, avail=900 * MB)
    # 500 MB + 32 MB per million: 20M edges need 1140 MB > 1000 MB usable
    with pytest.raises(MemoryLimitError) as err:
        check_memory("metrics on g.npz", 20e6, MemoryGuard())
    msg = str(err.value)
    assert "\n" not in msg
    for frag in ("needs about 1,140 MB", "20,000,000 edges", "only 1,000 MB", "MemAvailable"):
        assert frag in msg, (frag, msg)
    assert "smaller input" in msg and "more memory" in msg and "--force-memory" in msg
    check_memory("metrics on g.npz", 15e6, MemoryGuard())  # 980 MB fits
    check_memory("metrics on g.npz", 20e6, MemoryGuard(force=True))  # forced: no check
    check_memory("metrics on g.npz", 20e6, None)  # no guard: no check
    with pytest.raises(MemoryLimitError, match="needs about 2,500 MB"):  # the config's rate
        check_memory("x", 20e6, MemoryGuard(per_million_edges=100.0))


def test_cgroup_limits_are_read_from_both_hierarchies(tmp_path):
    # v2: the job's cgroup has 2000 - 500 bytes left, its parent 10000 - 9000
    root = tmp_path / "cg"
    leaf = root / "a" / "b"
    leaf.mkdir(parents=True)
    (leaf / "memory.max").write_text("2000\n")
    (leaf / "memory.current").write_text("500\n")
    (root / "a" / "memory.max").write_text("max\n")
    membership = tmp_path / "cgroup"
    membership.write_text("0::/a/b\n")
    assert memcheck._cgroup_room(root, membership) == 1500
    (root / "a" / "memory.max").write_text("10000\n")
    (root / "a" / "memory.current").write_text("9000\n")
    assert memcheck._cgroup_room(root, membership) == 1000
    # v1: the memory controller's tree; 2^63 - 4096 means no limit
    v1 = root / "memory" / "job"
    v1.mkdir(parents=True)
    (v1 / "memory.limit_in_bytes").write_text("4000\n")
    (v1 / "memory.usage_in_bytes").write_text("1000\n")
    (root / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    membership.write_text("4:memory:/job\n1:cpu:/\n")
    assert memcheck._cgroup_room(root, membership) == 3000
    membership.write_text("1:cpu:/\n")
    assert memcheck._cgroup_room(root, membership) is None


def test_metrics_cli_refuses_before_loading_and_writes_nothing(graph_file, tmp_path, capsys):
    out = tmp_path / "m.json"
    argv = ["metrics", str(graph_file), "--families", "local", "--out", str(out)]
    # 4 edges: the estimate is its 500 MB base
    assert main([*argv, "--mem-limit-mb", "400"]) == 2  # a user-facing error
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "needs about 500 MB" in err[0] and "only 400 MB" in err[0], err
    assert "the job's memory limit" in err[0] and "--force-memory" in err[0]
    assert not out.exists()
    assert main([*argv, "--mem-limit-mb", "400", "--force-memory"]) == 0
    assert out.exists()
    out.unlink()
    assert main([*argv, "--mem-limit-mb", "600"]) == 0
    assert out.exists()


def test_out_of_memory_past_the_check_is_one_line(graph_file, tmp_path, capsys, monkeypatch):
    """A family that runs out of memory after the check let it start (``--force-memory``, or an
    estimate that fell short, as ResNet-50 224x224's global structure did): one line with numpy's
    words, exit 2, nothing written, no traceback."""
    from snntopo.metrics import algorithms as al

    def short(*args, **kwargs):
        return np.empty(1 << 52, dtype=np.int64)  # 32 PiB: numpy's own MemoryError

    monkeypatch.setattr(al, "_dfs_two_part", short)
    out = tmp_path / "m.json"
    argv = ["metrics", str(graph_file), "--families", "global", "--out", str(out)]
    assert main([*argv, "--force-memory"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and err[0].startswith("snntopo metrics: global (1/1)"), err
    assert err[1].startswith("snntopo metrics: error: out of memory (Unable to allocate 32.0 PiB")
    assert "more memory than this process may use" in err[1]
    assert not out.exists()


def test_metrics_under_ulimit_v_stop_with_one_line(graph_file, tmp_path):
    """A real address-space limit (set in a fresh process after its imports, as ``ulimit -v``
    would be): 200 MB of room left is less than the 500 MB estimate."""
    out = tmp_path / "m.json"
    script = textwrap.dedent(
        f"""
        import resource, sys
        import numpy, scipy.sparse, scipy.linalg, scipy.sparse.linalg  # noqa: F401
        from snntopo.cli import main
        import snntopo.cli.metrics, snntopo.memcheck, snntopo.workflow  # noqa: F401
        size = snntopo.memcheck._status()["VmSize"]
        resource.setrlimit(resource.RLIMIT_AS, (size + 200 * 2**20, resource.RLIM_INFINITY))
        sys.exit(main(["metrics", {str(graph_file)!r}, "--families", "local",
                       "--out", {str(out)!r}, "--threads", "1"]))
        """
    )
    res = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    )
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert "ulimit -v" in lines[0] and "needs about 500 MB" in lines[0], lines
    assert not out.exists()


def test_encode_stage_refuses_a_graph_whose_estimate_exceeds_the_limit(tmp_path):
    """The encode stage estimates from the spec and the mask (the rules' estimate) before it
    builds: the estimate is at least the graph's true edge count, so at 1 MB per thousand edges
    a limit one MB below 500 MB + (edges // 1000) MB refuses, and the output is not written."""
    import torch  # noqa: F401  (the layer spec is traced from the model)
    from safetensors.numpy import save_file

    from snntopo.encode.graph import load_graph
    from snntopo.encode.layers import layer_spec
    from snntopo.io import write_json
    from snntopo.models import build_model, prunable_parameters
    from snntopo.stages.encode import encode_network

    model = build_model("resnet20", width=0.25, input_size=8, seed=0)
    spec = tmp_path / "layers.json"
    write_json(spec, layer_spec(model, (3, 8, 8)))
    weights = tmp_path / "init.safetensors"
    save_file({n: p.detach().numpy() for n, p in prunable_parameters(model)}, str(weights))
    free = tmp_path / "free.npz"
    encode_network("mge", str(spec), str(weights), {}, str(free))
    edges = load_graph(free).n_edges
    out = tmp_path / "g.npz"
    tight = MemoryGuard(limit_mb=500 + edges // 1000 - 1, per_million_edges=1e3)
    with pytest.raises(MemoryLimitError, match="encoding mge needs about") as err:
        encode_network("mge", str(spec), str(weights), {}, str(out), memory=tight)
    assert "the job's memory limit" in str(err.value)
    assert not out.exists()
    roomy = MemoryGuard(limit_mb=500 + 2 * edges // 1000, per_million_edges=1e3)
    encode_network("mge", str(spec), str(weights), {}, str(out), memory=roomy)
    assert load_graph(out).n_edges == edges


def test_a_streamed_encode_is_checked_by_its_nodes_not_its_edges(tmp_path, monkeypatch):
    """An uncompressed MGE is written as it is built (issue 29): its estimate is the streamed
    one (nodes and weights, not edges) where that is smaller, in the stage's check and in the
    rule's request alike; a deflated MGE is built whole and keeps the edge estimate."""
    import torch  # noqa: F401  (the layer spec is traced from the model)
    from safetensors.numpy import save_file

    from snntopo.encode import encode_nodes
    from snntopo.encode.graph import load_graph
    from snntopo.encode.layers import layer_spec
    from snntopo.io import write_json
    from snntopo.models import build_model, prunable_parameters
    from snntopo.stages.encode import encode_network
    from snntopo.workflow import encode_mem_mb

    model = build_model("resnet20", width=0.25, input_size=8, seed=0)
    spec_doc = layer_spec(model, (3, 8, 8))
    spec = tmp_path / "layers.json"
    write_json(spec, spec_doc)
    weights = tmp_path / "init.safetensors"
    save_file({n: p.detach().numpy() for n, p in prunable_parameters(model)}, str(weights))
    free = tmp_path / "free.npz"
    encode_network("mge", str(spec), str(weights), {}, str(free))
    g = load_graph(free)
    assert encode_nodes(spec_doc) == g.n_nodes  # the blocks' sizes are the built graph's nodes
    monkeypatch.setattr(memcheck, "STREAM_ENCODE_MB", 10.0)
    monkeypatch.setattr(memcheck, "STREAM_ENCODE_MB_PER_MILLION_NODES", 1e3)  # 1 KB per node
    monkeypatch.setattr(memcheck, "STREAM_ENCODE_WEIGHT_FACTOR", 0.0)
    streamed_mb = 10 + 1e3 * g.n_nodes / 1e6
    edge_mb = 500 + g.n_edges / 1e3  # at 1 MB per thousand edges, below the spec's estimate
    assert streamed_mb < edge_mb
    guard = MemoryGuard(limit_mb=(streamed_mb + edge_mb) / 2, per_million_edges=1e3)
    out = tmp_path / "g.npz"
    encode_network("mge", str(spec), str(weights), {}, str(out), memory=guard)
    assert load_graph(out).n_edges == g.n_edges
    deflated = tmp_path / "z.npz"
    with pytest.raises(MemoryLimitError, match="encoding mge needs about"):
        encode_network(
            "mge", str(spec), str(weights), {"compress": True}, str(deflated), memory=guard
        )
    assert not deflated.exists()
    cfg = {"resources": {"mem_mb_per_million_edges": 1e3}, "encode": {"compress": False}}
    assert encode_mem_mb(str(spec), str(weights), "mge", 1, cfg) == int(streamed_mb)
    assert encode_mem_mb(str(spec), str(weights), "mge", 2, cfg) == int(2 * streamed_mb)
    cfg["encode"]["compress"] = True
    assert encode_mem_mb(str(spec), str(weights), "mge", 1, cfg) > edge_mb


def test_the_rule_script_refuses_with_one_log_line(graph_file, tmp_path):
    """``workflow/scripts/metrics.py`` as Snakemake runs it (a ``snakemake`` object in its
    globals): a job whose ``resources.mem_mb`` is below its estimate stops with exit 1 and one
    error line in its log naming the config switch; no artifact."""
    out, log = tmp_path / "local.json", tmp_path / "job.log"
    script = textwrap.dedent(
        f"""
        import runpy, sys, types
        sys.path.insert(0, {str(REPO / "workflow" / "scripts")!r})

        class Inputs(types.SimpleNamespace):
            def items(self):
                return self.__dict__.items()

        sm = types.SimpleNamespace(
            threads=1,
            config={{"resources": {{"mem_mb_per_million_edges": 32}}}},
            resources=types.SimpleNamespace(mem_mb=300),
            log=[{str(log)!r}],
            params=types.SimpleNamespace(family="local", metrics={{"seed": 0}}),
            input=Inputs(mge={str(graph_file)!r}),
            output=[{str(out)!r}],
        )
        runpy.run_path({str(REPO / "workflow" / "scripts" / "metrics.py")!r},
                       init_globals={{"snakemake": sm}})
        """
    )
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert res.returncode == 1, res.stderr
    errors = [ln for ln in log.read_text().splitlines() if " ERROR " in ln]
    assert len(errors) == 1 and "Traceback" not in log.read_text()
    assert "MemoryLimitError: metric family local needs about 500 MB" in errors[0]
    assert "only 300 MB" in errors[0] and "resources: {force_memory: true}" in errors[0]
    assert not out.exists()


def test_metric_jobs_ask_for_their_familys_rate(monkeypatch, tmp_path):
    """Issue 29: a metric job's estimate is its family's measured rate (local 10, strength 16,
    global 16 MB per million edges; others the flat 32), scaled by ``mem_mb_per_million_edges``;
    several families ask for the largest. Against resident-memory limits (MemAvailable, a cgroup,
    the rule's own request) global counts 12, and 7 from 2**28 edges, where it takes its sparse
    certificate (no int64 copies past 2**31 entries either: the DFS runs on the certificate).
    The pre-flight check and the workflow's request use the same numbers."""
    from snntopo.memcheck import family_mb_per_million
    from snntopo.workflow import metrics_mem_mb

    assert family_mb_per_million(["local"], 1e6) == 10.0
    assert family_mb_per_million(["strength"], 1e6) == 16.0
    assert family_mb_per_million(["global"], 1e6) == 16.0
    assert family_mb_per_million(["global"], 1.43e9) == 16.0  # ResNet-50 224x224 ERK 0.9
    assert family_mb_per_million(["global"], 2.1e9) == 16.0  # the certificate: no int64 copies
    assert family_mb_per_million(["neighbourhood"], 1e6) == 32.0
    assert family_mb_per_million(["local", "global"], 1e6) == 16.0
    assert family_mb_per_million(None, 1e6) == 32.0
    assert family_mb_per_million(["local"], 1e6, per_million=64.0) == 20.0

    # resident memory: global's map is read in released chunks, so its resident rate is lower
    assert family_mb_per_million(["global"], 1e6, resident=True) == 12.0
    assert family_mb_per_million(["strength"], 1e6, resident=True) == 16.0
    assert family_mb_per_million(["global"], 2.1e9, resident=True) == 7.0
    assert family_mb_per_million(["global"], 2**28 - 1, resident=True) == 12.0
    assert family_mb_per_million(["expansion"], 1e6, resident=True) == 14.0
    # neighbourhood: from 2**28 edges its motif lists come in batches and the graph's pages are
    # released as read (7 instead of 14); the address-space rate stays the flat one
    from snntopo import memcheck
    from snntopo.metrics import neighbourhood

    assert family_mb_per_million(["neighbourhood"], 1e6, resident=True) == 14.0
    assert family_mb_per_million(["neighbourhood"], 2**28 - 1, resident=True) == 14.0
    assert family_mb_per_million(["neighbourhood"], 3.02e9, resident=True) == 7.0
    assert family_mb_per_million(["neighbourhood"], 3.02e9) == 32.0
    # the threshold is where the motif starts batching (its budget's floor)
    assert memcheck.NEIGHBOURHOOD_BATCHED_MIN_EDGES == neighbourhood.MOTIF_ROWS_MIN_ENTRIES
    assert family_mb_per_million(["ramanujan"], 1e6, resident=True) == 32.0

    _fake_machine(monkeypatch, rss=100 * MB, avail=900 * MB)
    # 35M edges: flat 500 + 32 * 35 = 1620 MB > 1000 MB usable; local 500 + 10 * 35 = 850 fits;
    # local with global, resident: 500 + 12 * 35 = 920 fits; strength: 500 + 16 * 35 = 1060
    # does not
    with pytest.raises(MemoryLimitError):
        check_memory("metrics on g.npz", 35e6, MemoryGuard())
    check_memory("metrics on g.npz", 35e6, MemoryGuard(), ["local"])
    check_memory("metrics on g.npz", 35e6, MemoryGuard(), ["local", "global"])
    with pytest.raises(MemoryLimitError) as err:
        check_memory("metrics on g.npz", 35e6, MemoryGuard(), ["strength"])
    assert "needs about 1,060 MB" in str(err.value) and "16 MB per million" in str(err.value)
    # an address-space limit of the same size counts global's whole map: 1060 does not fit
    _fake_machine(monkeypatch, rss=100 * MB, avail=9000 * MB, rlimit_as=1000 * MB, vmsize=100 * MB)
    with pytest.raises(MemoryLimitError) as err:
        check_memory("metrics on g.npz", 35e6, MemoryGuard(), ["local", "global"])
    assert "needs about 1,060 MB" in str(err.value) and "ulimit -v" in str(err.value)

    path = tmp_path / "g.npz"
    np.savez(path, indices=np.zeros(10_000_000, dtype=np.int32))  # the header is all it reads
    cfg = {"resources": {"mem_mb_per_million_edges": 32}}
    asks = {f: metrics_mem_mb([str(path)], 1, cfg, f) for f in ("local", "global", "expansion")}
    assert asks == {"local": 600, "global": 620, "expansion": 640}  # resident rates
    assert metrics_mem_mb([str(path)], 1, cfg) == 820  # no family: the flat rate, as before
    assert metrics_mem_mb([str(path)], 2, cfg, "local") == 1200
