"""Peak memory figures are the process's own, not inherited from the process that started it."""

from __future__ import annotations

import subprocess
import sys

from snntopo.perf import peak_rss_mb


def test_child_reports_its_own_peak_not_the_parents():
    ballast = bytearray(400 * 1024 * 1024)  # the parent's peak is now above 400 MiB
    ballast[::4096] = b"x" * len(ballast[::4096])
    assert peak_rss_mb() > 400
    out = subprocess.run(
        [sys.executable, "-c", "from snntopo.perf import peak_rss_mb; print(peak_rss_mb())"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert float(out.stdout) < 200
    del ballast
