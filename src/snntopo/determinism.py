"""Switching torch's deterministic-algorithms mode without importing the compiler stack.

Why: ``torch.use_deterministic_algorithms`` imports ``torch._inductor`` (about 4 s on this
project's CI machine, per call site and per job) only to mirror the flag into the compiler's
config. snntopo never uses ``torch.compile``, so it sets the eager-mode switch directly; the
observable behaviour of eager kernels is the same.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


def set_deterministic_algorithms(mode: bool, warn_only: bool = False) -> None:
    """Equivalent of ``torch.use_deterministic_algorithms(mode, warn_only=...)`` for eager code."""
    setter = getattr(torch._C, "_set_deterministic_algorithms", None)
    if setter is None:  # a future torch without the private hook: take the slow public path
        torch.use_deterministic_algorithms(mode, warn_only=warn_only)
    else:
        setter(mode, warn_only=warn_only)


@contextlib.contextmanager
def deterministic_mode(on: bool, warn_only: bool, cudnn: bool = True) -> Iterator[None]:
    """Set torch's determinism switches for a block and restore the caller's afterwards.

    ``warn_only``: a few CUDA kernels have no deterministic variant (and cuBLAS needs an
    environment variable set before start-up); a warning is better than refusing to run.
    ``cudnn``: also pin cuDNN to deterministic kernels without autotuning (``on``), or let it tune
    (``not on``).
    """
    prev = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )
    try:
        set_deterministic_algorithms(on, warn_only=warn_only)
        if cudnn:
            torch.backends.cudnn.deterministic = on
            torch.backends.cudnn.benchmark = not on
        yield
    finally:
        set_deterministic_algorithms(prev[0], warn_only=prev[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = prev[2], prev[3]
