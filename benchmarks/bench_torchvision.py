"""Encode torchvision models (ERK, CIFAR-10 shapes) in every encoding and run every applicable
metric family on each graph, one fresh process per step under GNU ``/usr/bin/time -v``.

Each row of the CSV is one step: ``snntopo encode`` (tracing, mask, graph, write) or one family of
``snntopo metrics``; wall seconds of the whole command, the command's own ``seconds`` (the stage
alone) where it prints one, peak RSS (``Maximum resident set size``), nodes and edges of the graph,
and the status (``ok``, ``failed: <last line>``, ``timeout``, ``skipped: <why>``). Rows are appended
as they finish, so an interrupted run keeps what it measured.

    python benchmarks/bench_torchvision.py --out bench.csv [--models resnet18 vgg16_bn]
        [--inputs 32 64] [--encodings mge rolled rolled-channel] [--families local ...]
        [--sparsity 0.9] [--timeout 600] [--max-edges 200000000] [--mem-gb 14] [--keep-graphs]
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


def timed(cmd: list[str], timeout: float, mem_gb: float) -> tuple[str, float, float, str]:
    """(status, wall seconds, peak RSS MB, stdout) of ``cmd`` under ``/usr/bin/time -v``."""
    limit = f"ulimit -v {int(mem_gb * 1024 * 1024)}; " if mem_gb > 0 else ""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        shell = limit + "exec /usr/bin/time -v -o " + tf.name + " " + " ".join(map(_q, cmd))
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(
                ["bash", "-c", shell], capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            return "timeout", time.perf_counter() - t0, float("nan"), ""
        wall = time.perf_counter() - t0
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", tf.read())
        rss = int(m.group(1)) / 1024 if m else float("nan")
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


def markdown(path: Path) -> str:
    """One row per (model, input, encoding): edges, then ``wall s / peak MB`` per step."""
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
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
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    ap.add_argument("--inputs", nargs="+", type=int, default=[32, 64])
    ap.add_argument("--encodings", nargs="+", default=["mge", "rolled", "rolled-channel"])
    ap.add_argument("--families", nargs="+", default=None, help="default: all that apply")
    ap.add_argument("--method", default="erk")
    ap.add_argument("--sparsity", type=float, default=0.9)
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per step")
    ap.add_argument("--max-edges", type=int, default=0, help="skip metrics on larger graphs")
    ap.add_argument("--mem-gb", type=float, default=0.0, help="address-space cap per step")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--keep-graphs", action="store_true")
    args = ap.parse_args(argv)

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
        for size in args.inputs:
            for model in args.models:
                for enc in args.encodings:
                    key = dict(model=model, input=size, encoding=enc)
                    graph = work / f"{model}_{size}_{enc}.npz"
                    status, wall, rss, out = timed(
                        py
                        + ["encode", "--arch", f"torchvision:{model}", "--dataset", "cifar10"]
                        + ["--input-size", str(size), "--method", args.method]
                        + ["--sparsity", str(args.sparsity), "--encoding", enc]
                        + ["--out", str(graph)],
                        args.timeout,
                        args.mem_gb,
                    )
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
                    fams = args.families or applicable_families(enc)
                    for fam in fams:
                        if fam not in applicable_families(enc):
                            continue
                        if args.max_edges and int(edges) > args.max_edges:
                            row(**key, step=fam, status=f"skipped: over {args.max_edges} edges")
                            continue
                        status, wall, rss, out = timed(
                            py
                            + ["metrics", str(graph), "--families", fam]
                            + ["--out", str(work / f"{graph.stem}.{fam}.json")],
                            args.timeout,
                            args.mem_gb,
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
                    if not args.keep_graphs:
                        os.unlink(graph)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
