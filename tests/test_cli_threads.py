"""Every ``snntopo`` command caps the BLAS/OpenMP thread pools: ``--threads N``, by default the
cores the process may run on. Checked in a fresh interpreter with threadpoolctl's own report of
the pools loaded (numpy's OpenBLAS at least), after the command ran."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("threadpoolctl")

SRC = str(Path(__file__).resolve().parents[1] / "src")

#: run one command in-process after pinning the CPU affinity, then print the pools' sizes
PROBE = """
import json, os, sys
cores = json.loads(sys.argv[1])
if cores:
    os.sched_setaffinity(0, cores)
from snntopo.cli import main
rc = main(sys.argv[2:])
import numpy  # noqa: F401  (loaded by the command already; here in case it was not)
from threadpoolctl import threadpool_info
print(json.dumps({"rc": rc, "env": os.environ.get("OPENBLAS_NUM_THREADS"),
                  "pools": [p["num_threads"] for p in threadpool_info()]}))
"""


def _probe(tmp_path: Path, cores: list[int] | None, *argv: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    env["PYTHONPATH"] = SRC
    res = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(cores), *argv],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


# a command that loads numpy and stops at once with a one-line error (the graph does not exist)
COMMAND = ("metrics", "missing.npz", "--out", "m.json")


def test_threads_flag_caps_every_pool(tmp_path):
    out = _probe(tmp_path, None, COMMAND[0], "--threads", "1", *COMMAND[1:])
    assert out["rc"] == 2  # the missing graph, reported as one line
    assert out["pools"] and set(out["pools"]) == {1}
    assert out["env"] is None  # main() gives its caller's environment back


def test_default_is_the_cores_the_process_may_use(tmp_path):
    one = _probe(tmp_path, [0], *COMMAND)
    assert set(one["pools"]) == {1}
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        pytest.skip("one core: the default cannot be told apart from 1")
    two = _probe(tmp_path, cores[:2], *COMMAND)
    assert set(two["pools"]) == {2}


@pytest.mark.parametrize(
    "command", ["mask", "train", "encode", "metrics", "analyze", "fit", "predict", "bench"]
)
def test_every_command_takes_threads(command):
    res = subprocess.run(
        [sys.executable, "-m", "snntopo.cli", command, "--help"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": SRC}, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    assert "--threads" in res.stdout
