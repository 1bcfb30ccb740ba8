"""Whole-process cost of one network's MGE encode job and its metric-family jobs, as the workflow
runs them, optionally alternating with another command (e.g. a reference implementation).

    python benchmarks/bench_jobs.py --spec layers.json --weights init.safetensors --out DIR
        [--families local neighbourhood ...] [--cores 2] [--rounds 3]
        [--schedule sequential|cores|both]
        [--other-cmd 'SHELL COMMAND' --other-name NAME]
    python benchmarks/bench_jobs.py --prepare cifar10:resnet20:erk:0.6 --out DIR ...

``--prepare DATASET:ARCH:METHOD:SPARSITY`` first makes ``DIR/layers.json`` and
``DIR/init.safetensors`` with the workflow's own ``spec`` and ``mask`` stages (settings of
``--config``, default ``config/config.yaml``; seed ``--seed``; a data-free method needs no data
set on disk), untimed, so the benchmark runs from a fresh clone.

Each job is a fresh interpreter that does what the workflow's ``encode`` / ``metrics_<family>``
scripts do (``limit_threads`` to the rule's threads, then ``run_job`` of the stage function with
the same arguments): imports, reading the inputs, the work, writing the artifact. Seconds are the
process's wall time from the parent's side; memory is its peak RSS (``ru_maxrss`` from
``os.wait4``). ``--schedule sequential`` (default) runs the jobs one after another: the sum is
the network's sequential cost. ``--schedule cores`` runs the encode, then the metric jobs the way
``snakemake --cores CORES`` overlaps ready jobs (whenever one ends, every waiting job whose
threads fit the free cores starts, in ``--families`` order): the wall time from the encode's start
to the last job's end (``ours-cores``). ``both`` runs each per round. Rounds alternate ours and the
other command, so all see the same load; the summary gives medians and the per-round ratios.

``--warm-gb G`` first touches G GB of memory in a throwaway process before each side of each
round (untimed). Why: on a virtual machine whose host backs guest memory lazily, the first touch
of a page costs far more than a reuse (here ~1.5 ms per MB against ~0.15), so whichever side runs
after a big process starts on warm memory; warming both makes the rounds comparable.

Writes ``DIR/jobs.csv`` (one row per job per round) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

ENCODE = """
import sys
sys.path.insert(0, {src!r})
from snntopo.jobs import limit_threads, run_job
limit_threads(1)
from snntopo.stages.encode import encode_network
run_job(encode_network, {log!r}, encoding="mge", spec_path={spec!r}, weights_path={weights!r},
        params={params!r}, out={out!r})
"""

FAMILY = """
import sys
sys.path.insert(0, {src!r})
from snntopo.jobs import limit_threads, run_job
limit_threads({threads})
from snntopo.stages.metrics import compute_metrics
run_job(compute_metrics, {log!r}, family={family!r}, graphs={{"mge": {graph!r}}},
        params={params!r}, out={out!r})
"""


def timed(cmd: list[str] | str, shell: bool = False) -> tuple[float, float, int]:
    """(wall seconds, peak RSS MB, exit status) of one child process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, shell=shell, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd if shell else cmd[-1][:200]} failed:\n{err[-3000:]}")
    return wall, usage.ru_maxrss / 1024.0, proc.returncode


def family_threads(family: str, cores: int) -> int:
    sys.path.insert(0, str(ROOT / "src"))
    from snntopo.metrics import FAMILIES

    return max(1, min(cores, int(FAMILIES.meta(family).threads)))


def warm_memory(gb: float) -> None:
    """Touch ``gb`` GB in a child process (page by page), untimed."""
    if gb > 0:
        code = f"import numpy as np; a = np.ones(int({gb} * 2**30 // 8)); a.sum()"
        subprocess.run([sys.executable, "-c", code], check=True)


def recorded_network(weights: Path) -> dict[str, Any]:
    """The grid point the init records (the workflow hands it to every job as ``network``)."""
    sys.path.insert(0, str(ROOT / "src"))
    from snntopo.artifacts import read_safetensors_meta, weights_network
    from snntopo.errors import ArtifactError

    try:
        return weights_network(read_safetensors_meta(weights))
    except ArtifactError:
        return {}


PREPARE = """
import sys
sys.path.insert(0, {src!r})
from snntopo.config import load_config
from snntopo.stages.mask import make_mask
from snntopo.stages.spec import make_spec
from snntopo.workflow import job_from_config
job = job_from_config(load_config({config!r}), {dataset!r}, {arch!r}, {method!r},
                      {sparsity!r}, {seed!r})
make_spec(job, {spec!r})
make_mask(job, {mask!r}, {init!r})
"""


def prepare(args: argparse.Namespace) -> None:
    dataset, arch, method, sparsity = args.prepare.split(":")
    args.spec, args.weights = args.out / "layers.json", args.out / "init.safetensors"
    code = PREPARE.format(
        src=str(ROOT / "src"),
        config=str(args.config),
        dataset=dataset,
        arch=arch,
        method=method,
        sparsity=float(sparsity),
        seed=args.seed,
        spec=str(args.spec),
        mask=str(args.out / "mask.safetensors"),
        init=str(args.weights),
    )
    timed([sys.executable, "-c", code])


def job_commands(
    args: argparse.Namespace, work: Path
) -> tuple[list[str], list[tuple[str, int, list[str]]]]:
    """The encode job's command and (family, threads, command) of every metric job."""
    src = str(ROOT / "src")
    graph = str(work / "mge.npz")
    network = recorded_network(args.weights)
    code = ENCODE.format(
        src=src,
        log=str(work / "encode.log"),
        spec=str(args.spec),
        weights=str(args.weights),
        params={"mode": "exact", "identity_edges": False, "weights": "init", "network": network},
        out=graph,
    )
    families = []
    for fam in args.families:
        t = family_threads(fam, args.cores)
        params = {"seed": args.seed, "threads": t, "network": network}
        fam_code = FAMILY.format(
            src=src,
            threads=t,
            log=str(work / f"{fam}.log"),
            family=fam,
            graph=graph,
            params=params,
            out=str(work / f"{fam}.json"),
        )
        families.append((fam, t, [sys.executable, "-c", fam_code]))
    return [sys.executable, "-c", code], families


def run_ours(args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    """Encode, then every family, one job after another."""
    encode, families = job_commands(args, work)
    wall, rss, _ = timed(encode)
    rows = [{"job": "encode", "threads": 1, "seconds": wall, "peak_rss_mb": rss, "start_s": 0.0}]
    t = wall
    for fam, threads, cmd in families:
        wall, rss, _ = timed(cmd)
        rows.append(
            {"job": fam, "threads": threads, "seconds": wall, "peak_rss_mb": rss, "start_s": t}
        )
        t += wall
    return rows


def run_scheduled(args: argparse.Namespace, work: Path) -> tuple[float, list[dict[str, Any]]]:
    """Encode, then the families on ``args.cores`` cores the way ``snakemake --cores`` runs
    ready jobs: whenever a job ends, start every waiting job (in ``--families`` order) whose
    ``threads`` fit the free cores. Returns (wall seconds from the encode's start to the last
    job's end, one row per job with its start offset)."""
    encode, families = job_commands(args, work)
    t0 = time.perf_counter()
    wall, rss, _ = timed(encode)
    rows = [{"job": "encode", "threads": 1, "seconds": wall, "peak_rss_mb": rss, "start_s": 0.0}]
    waiting = list(families)
    running: dict[int, tuple[str, int, float]] = {}
    free = max(1, args.cores)  # family_threads already caps every job's threads at this
    while waiting or running:
        for job in list(waiting):
            fam, threads, cmd = job
            if threads <= free:
                with open(work / f"{fam}.stderr", "wb") as err:  # a file: never a full pipe
                    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
                running[proc.pid] = (fam, threads, time.perf_counter())
                free -= threads
                waiting.remove(job)
        pid, status, usage = os.wait4(-1, 0)
        fam, threads, start = running.pop(pid)
        end = time.perf_counter()
        free += threads
        if os.waitstatus_to_exitcode(status) != 0:
            err = (work / f"{fam}.stderr").read_text(errors="replace")
            raise RuntimeError(f"{fam} failed:\n{err[-3000:]}")
        rows.append(
            {
                "job": fam,
                "threads": threads,
                "seconds": end - start,
                "peak_rss_mb": usage.ru_maxrss / 1024.0,
                "start_s": start - t0,
            }
        )
    return time.perf_counter() - t0, rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spec", type=Path, help="layers.json of the network")
    ap.add_argument("--weights", type=Path, help="masked init.safetensors")
    ap.add_argument("--prepare", metavar="DATASET:ARCH:METHOD:SPARSITY", default=None)
    ap.add_argument("--config", type=Path, default=ROOT / "config" / "config.yaml")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument(
        "--families",
        nargs="+",
        default=["local", "neighbourhood", "strength", "global", "expansion"],
    )
    ap.add_argument(
        "--cores", type=int, default=2, help="cap on a family's threads; cores of --schedule cores"
    )
    ap.add_argument(
        "--schedule",
        choices=("sequential", "cores", "both"),
        default="sequential",
        help="jobs one after another, as snakemake --cores CORES overlaps them, or both per round",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--other-cmd", default=None, help="shell command timed in alternation")
    ap.add_argument("--other-name", default="other")
    ap.add_argument(
        "--warm-gb", type=float, default=0.0, help="touch this much memory before each side"
    )
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.prepare:
        prepare(args)
    elif args.spec is None or args.weights is None:
        ap.error("give --spec and --weights, or --prepare")
    rows: list[dict[str, Any]] = []
    totals: dict[str, list[float]] = {args.other_name: []}
    peaks: dict[str, list[float]] = {args.other_name: []}
    modes = {"sequential": ["sequential"], "cores": ["cores"], "both": ["sequential", "cores"]}
    for r in range(args.rounds):
        for mode in modes[args.schedule]:
            who = "ours" if mode == "sequential" else "ours-cores"
            warm_memory(args.warm_gb)
            load = os.getloadavg()[0]
            if mode == "sequential":
                jobs = run_ours(args, args.out)
                total = sum(j["seconds"] for j in jobs)
            else:
                total, jobs = run_scheduled(args, args.out)
            for j in jobs:
                rows.append({"round": r, "who": who, **j, "load1": round(load, 2)})
                print(
                    f"round {r} {who:10s} {j['job']:14s} {j['seconds']:8.2f} s "
                    f"{j['peak_rss_mb']:8.0f} MB  (from {j['start_s']:.2f} s)"
                )
            totals.setdefault(who, []).append(total)
            peaks.setdefault(who, []).append(max(j["peak_rss_mb"] for j in jobs))
            print(f"round {r} {who:10s} total {total:.2f} s (load {load:.1f})", flush=True)
        if args.other_cmd:
            warm_memory(args.warm_gb)
            load = os.getloadavg()[0]
            wall, rss, _ = timed(args.other_cmd, shell=True)
            rows.append(
                {
                    "round": r,
                    "who": args.other_name,
                    "job": "all",
                    "threads": "",
                    "seconds": wall,
                    "peak_rss_mb": rss,
                    "start_s": 0.0,
                    "load1": round(load, 2),
                }
            )
            totals[args.other_name].append(wall)
            peaks[args.other_name].append(rss)
            print(
                f"round {r} {args.other_name} total {wall:.2f} s {rss:.0f} MB (load {load:.1f})",
                flush=True,
            )
    import csv

    with open(args.out / "jobs.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    summary: dict[str, Any] = {}
    for who, key in (("ours", "ours_total_s"), ("ours-cores", "ours_cores_total_s")):
        if who in totals:
            summary[f"{key}_median"] = statistics.median(totals[who])
            summary[f"{key.removesuffix('_total_s')}_peak_mb"] = max(peaks[who])
    if args.other_cmd:
        other = totals[args.other_name]
        summary.update(
            {
                f"{args.other_name}_total_s_median": statistics.median(other),
                f"{args.other_name}_peak_mb": max(peaks[args.other_name]),
            }
        )
        for who, key in (("ours", "time_ratio"), ("ours-cores", "cores_time_ratio")):
            if who in totals:
                ratios = [o / s for o, s in zip(other, totals[who], strict=True)]
                summary[f"{key}_per_round"] = [round(x, 2) for x in ratios]
                summary[f"{key}_median"] = statistics.median(ratios)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
