"""Switching torch's deterministic-algorithms mode without importing the compiler stack.

Why: ``torch.use_deterministic_algorithms`` imports ``torch._inductor`` (about 4 s on this
project's CI machine, per call site and per job) only to mirror the flag into the compiler's
config. snntopo never uses ``torch.compile``, so it sets the eager-mode switch directly; the
observable behaviour of eager kernels is the same.
"""

from __future__ import annotations

import torch


def set_deterministic_algorithms(mode: bool, warn_only: bool = False) -> None:
    """Equivalent of ``torch.use_deterministic_algorithms(mode, warn_only=...)`` for eager code."""
    setter = getattr(torch._C, "_set_deterministic_algorithms", None)
    if setter is None:  # a future torch without the private hook: take the slow public path
        torch.use_deterministic_algorithms(mode, warn_only=warn_only)
    else:
        setter(mode, warn_only=warn_only)
