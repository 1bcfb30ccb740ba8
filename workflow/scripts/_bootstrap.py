"""Make the checkout's ``src/`` importable, so the rules work in any environment that has the
third-party dependencies (per-rule conda envs or the project's virtualenv); and the working
directory (last, so it shadows nothing installed), so that a ``module:<path>:<fn>`` architecture
imports from the project directory in a job as it does with ``python -m snntopo.cli``."""

import os
import sys
from pathlib import Path

_SRC = str(Path(__file__).resolve().parents[2] / "src")
if _SRC not in sys.path:
    sys.path.insert(0, _SRC)
if os.getcwd() not in sys.path:
    sys.path.append(os.getcwd())
