"""Make the checkout's ``src/`` importable, so the rules work in any environment that has the
third-party dependencies (per-rule conda envs or the project's virtualenv)."""

import sys
from pathlib import Path

_SRC = str(Path(__file__).resolve().parents[2] / "src")
if _SRC not in sys.path:
    sys.path.insert(0, _SRC)
