"""A training's per-epoch history outside ``train.json``: ``history.csv`` beside it, and optional
TensorBoard event files under the network's folder.

Why a CSV: ``train.json`` holds the history as a list of objects, which a spreadsheet, pandas or
``column -s, -t`` cannot read directly; the CSV has one row per epoch and the same columns as the
history (:data:`HISTORY_COLUMNS`). It is written once, atomically, with the other artifacts
(never half-written); to watch a training while it runs, follow its log or turn on TensorBoard.

Why TensorBoard is optional and off by default: ``torch.utils.tensorboard`` needs the
``tensorboard`` package, which snntopo does not depend on. With ``tensorboard: true`` in the
config and the package importable, each epoch's scalars are written as it ends; without the
package a warning says so and training goes on. Stdlib only at import: torch loads on first use.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..io import write_text

log = logging.getLogger("snntopo.train")

#: the columns of ``history.csv``, in order: the keys of one ``train.json`` history row
HISTORY_COLUMNS = ("epoch", "loss", "train_acc", "test_acc", "lr", "images_per_s", "seconds")

#: TensorBoard tag of each scalar column (``epoch`` is the step)
TENSORBOARD_TAGS = {
    "loss": "train/loss",
    "train_acc": "train/accuracy",
    "test_acc": "test/accuracy",
    "lr": "train/lr",
    "images_per_s": "speed/images_per_s",
    "seconds": "speed/seconds_per_epoch",
}


def _cell(v: Any) -> str:
    """A CSV cell: empty for a missing value (an epoch without test evaluation), ``repr`` of a
    float (round-trips exactly)."""
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)
    return str(v)


def history_csv(history: Iterable[Mapping[str, Any]]) -> str:
    """The history as CSV text: a header of :data:`HISTORY_COLUMNS` (then any extra keys the
    rows carry, in first-seen order) and one row per epoch."""
    rows = list(history)
    extra = [k for r in rows for k in r if k not in HISTORY_COLUMNS]
    cols = [*HISTORY_COLUMNS, *dict.fromkeys(extra)]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for r in rows:
        w.writerow([_cell(r.get(c)) for c in cols])
    return buf.getvalue()


def write_history_csv(path: str | os.PathLike[str], history: Iterable[Mapping[str, Any]]) -> Path:
    """Write ``history.csv`` atomically; returns its path."""
    write_text(path, history_csv(history))
    return Path(path)


def summary_writer_class() -> Any:
    """``torch.utils.tensorboard.SummaryWriter``, or ``None`` when it cannot be imported (the
    ``tensorboard`` package is missing)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter


class TensorBoardLog:
    """Per-epoch scalars to TensorBoard event files under ``logdir``; a no-op (after one warning)
    when the writer cannot be imported. Call it with a history row; :meth:`close` at the end.
    """

    def __init__(self, logdir: str | os.PathLike[str]) -> None:
        self.logdir = Path(logdir)
        cls = summary_writer_class()
        self.writer = None
        if cls is None:
            log.warning(
                "tensorboard: true, but torch.utils.tensorboard cannot be imported (pip install "
                "tensorboard); no event files are written"
            )
        else:
            self.logdir.mkdir(parents=True, exist_ok=True)
            self.writer = cls(log_dir=str(self.logdir))

    def __call__(self, row: Mapping[str, Any]) -> None:
        if self.writer is None:
            return
        step = int(row["epoch"])
        for key, tag in TENSORBOARD_TAGS.items():
            v = row.get(key)
            if v is not None:
                self.writer.add_scalar(tag, float(v), step)
        self.writer.flush()

    def replay(self, history: Iterable[Mapping[str, Any]]) -> None:
        """Write every row of a finished history (a training restored instead of run)."""
        for row in history:
            self(row)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
