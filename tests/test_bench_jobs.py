"""benchmarks/bench_jobs.py from nothing: --prepare makes the network with the workflow's own
stages, then the encode and a family job run as whole processes and are recorded."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_bench_jobs_prepares_and_times_whole_jobs(tmp_path):
    out = tmp_path / "jobs"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "bench_jobs.py"),
            "--prepare",
            "cifar10:resnet20:erk:0.6",
            "--families",
            "local",
            "strength",
            "--schedule",
            "both",
            "--out",
            str(out),
            "--warm-gb",
            "0.05",
            "--other-cmd",
            "true",
            "--other-name",
            "noop",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    with open(out / "jobs.csv") as fh:
        everything = list(csv.DictReader(fh))
    rows = [r for r in everything if r["who"] == "ours"]
    assert [r["job"] for r in rows] == ["encode", "local", "strength"]
    # overlapped on 2 cores: both one-thread families start together, right after the encode
    cores = {r["job"]: r for r in everything if r["who"] == "ours-cores"}
    assert set(cores) == {"encode", "local", "strength"}
    encode_end = float(cores["encode"]["seconds"])
    for fam in ("local", "strength"):
        assert encode_end <= float(cores[fam]["start_s"]) < encode_end + 1.0
    others = [(r["who"], r["job"]) for r in everything if not r["who"].startswith("ours")]
    assert others == [("noop", "all")]
    assert all(float(r["seconds"]) > 0 and float(r["peak_rss_mb"]) > 50 for r in rows)
    local = json.loads((out / "local.json").read_text())["encodings"]["mge"]["network"]
    # ResNet-20 exact-mode MGE at 32x32: the paper code's 191,894 nodes less 396 padding nodes
    assert local["nodes"] == 191_498
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ours_total_s_median"] == pytest.approx(sum(float(r["seconds"]) for r in rows))
    assert summary["noop_total_s_median"] > 0 and len(summary["time_ratio_per_round"]) == 1
    ends = [float(r["start_s"]) + float(r["seconds"]) for r in cores.values()]
    assert summary["ours_cores_total_s_median"] >= max(ends) - 0.05
    assert len(summary["cores_time_ratio_per_round"]) == 1
