"""Stage ``data_<dataset>``: fetch (with ``download``) and check one data set, once, before any job
reads it; a missing data set fails here with the loader's message (where it looked, what to do)."""

from __future__ import annotations

import os


def prepare_dataset(name: str, root: str | os.PathLike[str], download: bool) -> None:
    from ..data.loaders import prepare_dataset as _prepare

    _prepare(name, root, download)
