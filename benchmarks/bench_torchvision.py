"""Encode torchvision models (ERK, CIFAR-10 shapes) in every encoding and run every applicable
metric family on each graph, one fresh process per step under GNU ``/usr/bin/time -v``.

Each row of the CSV is one step: ``snntopo encode`` (tracing, mask, graph, write) or one family of
``snntopo metrics``; wall seconds of the whole command, the command's own ``seconds`` (the stage
alone) where it prints one, peak RSS (``Maximum resident set size``), nodes and edges of the graph,
and the status (``ok``, ``failed: <last line>``, ``timeout``, ``skipped: <why>``). Rows are appended
as they finish, so an interrupted run keeps what it measured.

``--models cnn`` is every torchvision classification builder
(``torchvision.models.list_models(module=torchvision.models)``) except the attention models
(``vit_*``, ``swin_*``, ``maxvit_t``: input-dependent weights, no static graph). ``--inputs
smallest`` runs each model at the smallest input side that works, from ``--min-input`` (32) up:
the first encode runs at ``--min-input``, and when the walker answers that the input is too small
("the smallest input that works is NxN", e.g. alexnet 63, inception_v3 75) it reruns at N (the
row's ``input`` is the size measured). ``--families none`` stops after the encode (walk, layer
spec, mask, graph build, write). ``--graph-steps`` replaces the per-encoding ``snntopo encode``
processes by one process per model that times the cheap steps one by one: ``walk`` (tracing and
the layer spec), ``mask`` (the PaI method, seed 0), then ``graph`` per encoding (``build_graph``,
not written); each row's peak RSS is the process's peak so far (``ru_maxrss``), and the row of
the ``walk`` step carries the whole process's wall seconds (importing torch and building the
model included). Steps of the models matching ``--lock-models`` run under
``flock --lock`` (a lock shared with other heavy jobs); the wall seconds and the timeout start
once the lock is held.

    python benchmarks/bench_torchvision.py --out bench.csv [--models resnet18 vgg16_bn | cnn]
        [--inputs 32 64 | smallest] [--encodings mge rolled rolled-channel]
        [--families local ... | none] [--sparsity 0.9] [--timeout 600] [--max-edges 200000000]
        [--mem-gb 14] [--threads 1] [--lock FILE --lock-models REGEX] [--keep-graphs]
        [--graph-steps]
    python benchmarks/bench_torchvision.py --markdown bench.csv   # the table of docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODELS = (
    "resnet18",
    "resnet50",
    "vgg16_bn",
    "mobilenet_v2",
    "mobilenet_v3_small",
    "densenet121",
    "efficientnet_b0",
)
#: torchvision builders whose networks use attention (no static graph to encode)
ATTENTION = re.compile(r"^(vit_|swin_|maxvit)")
#: the walker's answer to an input below a model's smallest one
TOO_SMALL = re.compile(r"smallest input that works is (\d+)x(\d+)")
FIELDS = (
    "model",
    "input",
    "encoding",
    "step",
    "status",
    "wall_s",
    "stage_s",
    "peak_rss_mb",
    "nodes",
    "edges",
)


def cnn_models() -> list[str]:
    """Every torchvision classification builder that is a CNN (not an attention model)."""
    import torchvision

    names = torchvision.models.list_models(module=torchvision.models)
    return [n for n in names if not ATTENTION.match(n)]


def graph_steps(model: str, side: int, method: str, sparsity: float, encodings: list[str]) -> dict:
    """Walk, mask and build every encoding of ``torchvision:model`` in this process (the steps of
    ``snntopo encode``, the write left out); at the walker's smallest input if ``side`` is too
    small. Returns the per-step seconds, peak RSS so far and the graphs' sizes."""
    import resource

    import torch

    from snntopo.encode import build_graph
    from snntopo.encode.layers import UnsupportedOpError, layer_spec
    from snntopo.models import build_model, prunable_parameters
    from snntopo.pai import compute_mask

    def peak() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    arch = f"torchvision:{model}"
    out: dict = {"steps": []}
    for _attempt in range(2):
        net = build_model(arch, 10, 3, side, seed=0)
        t0 = time.perf_counter()
        try:
            spec = layer_spec(net, (3, side, side), arch=arch, num_classes=10)
        except UnsupportedOpError as exc:
            small = TOO_SMALL.search(str(exc))
            if not small or _attempt:
                raise
            side = int(small.group(1))
            continue
        break
    out["input"] = side
    out["steps"].append({"step": "walk", "seconds": time.perf_counter() - t0, "peak": peak()})
    t0 = time.perf_counter()
    masks, _info = compute_mask(
        method, net, sparsity, seed=0, params={"input_shape": [3, side, side]}
    )
    out["steps"].append({"step": "mask", "seconds": time.perf_counter() - t0, "peak": peak()})
    with torch.no_grad():
        weights = {n: (p.detach() * masks[n]).numpy() for n, p in prunable_parameters(net)}
    del net
    for enc in encodings:
        t0 = time.perf_counter()
        g = build_graph(enc, spec, weights)
        secs = time.perf_counter() - t0
        out["steps"].append(
            {
                "step": "graph",
                "encoding": enc,
                "seconds": secs,
                "peak": peak(),
                "nodes": int(g.n_nodes),
                "edges": int(g.n_edges),
            }  # fmt: skip
        )
        del g
    return out


def timed(
    cmd: list[str], timeout: float, mem_gb: float, lock: str | None = None
) -> tuple[str, float, float, str]:
    """(status, wall seconds, peak RSS MB, stdout) of ``cmd`` under ``/usr/bin/time -v``; with
    ``lock``, the command (and its timeout) starts once ``flock lock`` is held, and the wall time
    is GNU time's (the wait for the lock left out)."""
    limit = f"ulimit -v {int(mem_gb * 1024 * 1024)}; " if mem_gb > 0 else ""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        inner = ["timeout", "-s", "KILL", str(int(timeout))] if lock else []
        inner += ["/usr/bin/time", "-v", "-o", tf.name, *cmd]
        if lock:
            inner = ["flock", lock, *inner]
        shell = limit + "exec " + " ".join(map(_q, inner))
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(
                ["bash", "-c", shell],
                capture_output=True,
                text=True,
                timeout=None if lock else timeout,
            )
        except subprocess.TimeoutExpired:
            return "timeout", time.perf_counter() - t0, float("nan"), ""
        wall = time.perf_counter() - t0
        report = tf.read()
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", report)
        rss = int(m.group(1)) / 1024 if m else float("nan")
        e = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", report)
        if lock and e:
            wall = sum(float(v) * 60**i for i, v in enumerate(reversed(e.group(1).split(":"))))
    if lock and proc.returncode in (124, 137) and wall >= timeout - 1:
        return "timeout", wall, rss, ""
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines() or ["?"]
        return f"failed: {lines[-1][:200]}", wall, rss, proc.stdout
    return "ok", wall, rss, proc.stdout


def _q(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'"


def last_json(stdout: str) -> dict:
    for line in reversed(stdout.strip().splitlines()):
        try:
            return json.loads(line)
        except ValueError:
            continue
    return {}


def markdown_graph_steps(rows: list[dict[str, str]]) -> str:
    """``--graph-steps`` rows: one line per model, the seconds of each step, edges per encoding,
    the process's peak RSS and wall seconds."""
    encs = ["mge", "rolled", "rolled-channel"]
    head = (
        "| model | input | walk s | mask s | "
        + " | ".join(f"{e} edges | {e} s" for e in encs)
        + " | peak MB | process s | status |"
    )
    lines = [head, "|---|" + "---:|" * (5 + 2 * len(encs)) + "---|"]
    models: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        models.setdefault(r["model"], []).append(r)
    for model, rs in models.items():
        by = {(r["step"], r["encoding"]): r for r in rs}
        walk = by.get(("walk", ""), {})
        cells = [model, rs[-1]["input"]]
        cells += [by.get((st, ""), {}).get("stage_s", "") for st in ("walk", "mask")]
        for e in encs:
            g = by.get(("graph", e), {})
            cells += [f"{int(g['edges']):,}" if g.get("edges") else "", g.get("stage_s", "")]
        peaks = [float(r["peak_rss_mb"]) for r in rs if r.get("peak_rss_mb")]
        cells += [f"{max(peaks):,.0f}" if peaks else "", walk.get("wall_s", "")]
        bad = [r["status"] for r in rs if r["status"] != "ok"]
        cells.append(bad[0].split(":")[0] + ": " + bad[0].split(":", 1)[-1][:80] if bad else "ok")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown(path: Path) -> str:
    """One row per (model, input, encoding): edges, then ``wall s / peak MB`` per step
    (``--graph-steps`` files: :func:`markdown_graph_steps`)."""
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    if any(r["step"] in ("walk", "graph") for r in rows):
        return markdown_graph_steps(rows)
    steps = ["encode", "local", "neighbourhood", "strength", "global", "expansion", "ramanujan"]
    graphs: dict[tuple[str, str, str], dict[str, str]] = {}
    for r in rows:
        g = graphs.setdefault((r["model"], r["input"], r["encoding"]), {"edges": r["edges"]})
        if r["status"] == "ok":
            g[r["step"]] = f"{float(r['wall_s']):.1f} / {float(r['peak_rss_mb']):,.0f}"
        else:
            g[r["step"]] = r["status"].split(":")[0]
        g["edges"] = g["edges"] or r["edges"]
    head = "| model | input | encoding | edges | " + " | ".join(steps) + " |"
    lines = [head, "|" + "---|" * 4 + "---:|" * len(steps)]
    for (model, size, enc), g in graphs.items():
        edges = f"{int(g['edges']):,}" if g.get("edges") else ""
        cells = [g.get(s, "" if (s == "ramanujan" and enc == "mge") else "n/a") for s in steps]
        lines.append(f"| {model} | {size} | {enc} | {edges} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["--markdown"]:
        print(markdown(Path(argv[1])))
        return 0
    if argv[:1] == ["--run-graph-steps"]:  # the child process of --graph-steps
        model, side, method, sparsity, *encs = argv[1:]
        print(json.dumps(graph_steps(model, int(side), method, float(sparsity), encs)))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--models", nargs="+", default=list(MODELS), help="names, or 'cnn'")
    ap.add_argument("--inputs", nargs="+", default=["32", "64"], help="sides, or 'smallest'")
    ap.add_argument("--min-input", type=int, default=32, help="where 'smallest' starts")
    ap.add_argument("--encodings", nargs="+", default=["mge", "rolled", "rolled-channel"])
    ap.add_argument(
        "--families", nargs="+", default=None, help="default: all that apply; 'none': encode only"
    )
    ap.add_argument("--method", default="erk")
    ap.add_argument("--sparsity", type=float, default=0.9)
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per step")
    ap.add_argument("--max-edges", type=int, default=0, help="skip metrics on larger graphs")
    ap.add_argument("--mem-gb", type=float, default=0.0, help="address-space cap per step")
    ap.add_argument("--threads", type=int, default=1, help="snntopo --threads of each step")
    ap.add_argument("--lock", default=None, help="flock file for the --lock-models steps")
    ap.add_argument("--lock-models", default="", help="regex of models that take --lock")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--keep-graphs", action="store_true")
    ap.add_argument(
        "--graph-steps", action="store_true", help="one process per model: walk, mask, graphs"
    )
    args = ap.parse_args(argv)
    models = [m for name in args.models for m in (cnn_models() if name == "cnn" else [name])]
    sizes = [v if v == "smallest" else int(v) for v in args.inputs]
    families = [] if args.families == ["none"] else args.families

    from snntopo.metrics import applicable_families

    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_tv_"))
    work.mkdir(parents=True, exist_ok=True)
    new = not args.out.exists()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        if new:
            writer.writeheader()

        def row(**kw) -> None:
            rec = {k: kw.get(k, "") for k in FIELDS}
            for k in ("wall_s", "stage_s", "peak_rss_mb"):
                if isinstance(rec[k], float):
                    rec[k] = f"{rec[k]:.1f}"
            writer.writerow(rec)
            fh.flush()
            print(json.dumps(rec), flush=True)

        py = [sys.executable, "-m", "snntopo.cli"]
        threads = ["--threads", str(args.threads)]
        for want in sizes:
            for model in models:
                size = args.min_input if want == "smallest" else want
                lock = (
                    args.lock
                    if args.lock and args.lock_models and re.search(args.lock_models, model)
                    else None
                )
                if args.graph_steps:
                    status, wall, rss, out = timed(
                        [sys.executable, str(Path(__file__).resolve()), "--run-graph-steps"]
                        + [model, str(size), args.method, str(args.sparsity), *args.encodings],
                        args.timeout,
                        args.mem_gb,
                        lock,
                    )
                    info = last_json(out)
                    size = info.get("input", size)
                    if status != "ok" or not info:
                        row(model=model, input=size, step="walk", status=status or "failed: ?",
                            wall_s=wall, peak_rss_mb=rss)  # fmt: skip
                        continue
                    for st in info["steps"]:
                        first = st["step"] == "walk"
                        row(model=model, input=size, encoding=st.get("encoding", ""),
                            step=st["step"], status="ok", wall_s=wall if first else "",
                            stage_s=st["seconds"], peak_rss_mb=st["peak"],
                            nodes=st.get("nodes", ""), edges=st.get("edges", ""))  # fmt: skip
                    continue
                for enc in args.encodings:
                    graph = work / f"{model}_{enc}.npz"

                    for _attempt in range(2):
                        status, wall, rss, out = timed(
                            py
                            + ["encode", *threads, "--arch", f"torchvision:{model}"]
                            + ["--dataset", "cifar10", "--input-size", str(size)]
                            + ["--method", args.method, "--sparsity", str(args.sparsity)]
                            + ["--encoding", enc, "--out", str(graph)],
                            args.timeout,
                            args.mem_gb,
                            lock,
                        )
                        small = TOO_SMALL.search(status) if want == "smallest" else None
                        if not small:
                            break
                        size = int(small.group(1))  # the walker's smallest input; rerun there
                    key = dict(model=model, input=size, encoding=enc)
                    info = last_json(out)
                    nodes, edges = info.get("nodes", ""), info.get("edges", "")
                    row(
                        **key,
                        step="encode",
                        status=status,
                        wall_s=wall,
                        stage_s=info.get("seconds", ""),
                        peak_rss_mb=rss,
                        nodes=nodes,
                        edges=edges,
                    )
                    if status != "ok":
                        continue
                    fams = applicable_families(enc) if families is None else families
                    for fam in fams:
                        if fam not in applicable_families(enc):
                            continue
                        if args.max_edges and int(edges) > args.max_edges:
                            row(**key, step=fam, status=f"skipped: over {args.max_edges} edges")
                            continue
                        status, wall, rss, out = timed(
                            py
                            + ["metrics", *threads, str(graph), "--families", fam]
                            + ["--out", str(work / f"{graph.stem}.{fam}.json")],
                            args.timeout,
                            args.mem_gb,
                            lock,
                        )
                        row(
                            **key,
                            step=fam,
                            status=status,
                            wall_s=wall,
                            stage_s=last_json(out).get("seconds", ""),
                            peak_rss_mb=rss,
                            nodes=nodes,
                            edges=edges,
                        )
                    if not args.keep_graphs and graph.exists():
                        os.unlink(graph)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
