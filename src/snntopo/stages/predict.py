"""Stage ``predict``: predicted accuracy of untrained masks from their metric artifacts."""

from __future__ import annotations

from ..analysis.predictor import write_predictions

__all__ = ["write_predictions"]
