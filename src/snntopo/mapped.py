"""Streamed reads of mapped graph-file members: chunks whose pages are released after use.

Why a core module of its own: the graph format (:mod:`snntopo.encode.graph`) maps its members,
and the readers that check them (e.g. :func:`snntopo.artifacts.check_finite`) and the metric
families pass over them in chunks; all of them need the same two tools, :func:`iter_chunks` and
:func:`release_pages`, and core code may not import the domain's graph module."""

from __future__ import annotations

import mmap
import os
import weakref
from collections.abc import Iterator
from typing import Any

import numpy as np

#: bytes per chunk of a streamed read of a mapped member (:func:`iter_chunks`)
STREAM_BYTES = 1 << 24


#: the private maps of graph files that :func:`_mapped_members` made, with their addresses: their
#: arrays' pages may be released after a streamed read (:func:`release_pages`); no other array's
_FILE_MAPS: weakref.WeakKeyDictionary[mmap.mmap, int] = weakref.WeakKeyDictionary()
_MMAP = mmap.mmap


def register_map(mm: mmap.mmap) -> None:
    """Record ``mm`` (a private map of a graph file) as one whose views' pages may be released."""
    _FILE_MAPS[mm] = np.frombuffer(mm, dtype=np.uint8).ctypes.data


def _file_map(arr: np.ndarray) -> tuple[mmap.mmap, int] | None:
    """The graph-file map ``arr`` is a view of and the map's address, or ``None``."""
    base: Any = arr
    while isinstance(base, np.ndarray):
        base = base.base
    if isinstance(base, memoryview):  # np.frombuffer wraps the map in one
        base = base.obj
    if not isinstance(base, _MMAP) or base not in _FILE_MAPS:
        return None
    return base, _FILE_MAPS[base]


_PAGE = mmap.PAGESIZE
#: the largest page-cache folio a read may map around it (a huge page: 2 MB on x86-64)
FOLIO_BYTES = 2 << 20
#: /proc/self/pagemap flags: page present, page file-backed (or shared); a present page without
#: the file flag is an anonymous copy made by a write to the private map
_PM_PRESENT, _PM_FILE = np.uint64(1 << 63), np.uint64(1 << 61)


def release_pages(arr: np.ndarray, start: int = 0, stop: int | None = None) -> None:
    """Drop the resident pages under ``arr[start:stop]`` from this process if ``arr`` is a view of
    a mapped graph file (anything else: no-op). The pages stay in the page cache, so a later read
    of the same entries faults them back in from memory, not from disk; the content is the
    file's, which a read-only caller cannot tell apart.

    Why: a mapped page that was read once stays in the process's resident set until the map is
    closed, so a pass over every edge leaves the whole member resident (4 bytes per edge per
    member); released chunk by chunk, a streamed pass holds one chunk (issue 29). Only clean
    pages are released: a page of the private map that the caller wrote to (copy-on-write, an
    anonymous page; ``/proc/self/pagemap`` tells) is kept, so a written value is never lost.
    Where pagemap cannot be read nothing is released.

    The release covers the :data:`FOLIO_BYTES`-aligned span around the range: a read maps the
    whole page-cache folio it falls in, so the pages that reading one chunk mapped in the
    neighbouring (already released) chunk would otherwise stay resident until the map closes
    (ResNet-50 224x224's certificate searches held up to 2.2 GB of them). Dropping a clean page
    of the next chunk early costs a minor fault when it is read."""
    found = _file_map(arr)
    if found is None or arr.ndim != 1 or not arr.flags.c_contiguous:
        return
    fm, base_address = found
    stop = arr.shape[0] if stop is None else min(stop, arr.shape[0])
    if stop <= start:
        return
    lo = arr.ctypes.data + start * arr.itemsize - base_address
    hi = arr.ctypes.data + stop * arr.itemsize - base_address
    # out to the folios around the range (the map starts at the file's offset 0, so map offsets
    # are file offsets, which folios are aligned to)
    lo, hi = lo - lo % FOLIO_BYTES, hi + (-hi) % FOLIO_BYTES
    first, last = lo // _PAGE, min(-(-hi // _PAGE), len(fm) // _PAGE)
    if last <= first:
        return
    try:
        with open("/proc/self/pagemap", "rb") as fh:
            raw = os.pread(fh.fileno(), 8 * (last - first), 8 * ((base_address // _PAGE) + first))
    except OSError:
        return
    flags = np.frombuffer(raw, dtype=np.uint64)
    if flags.shape[0] != last - first:
        return
    written = ((flags & _PM_PRESENT) != 0) & ((flags & _PM_FILE) == 0)
    if not written.any():
        fm.madvise(mmap.MADV_DONTNEED, first * _PAGE, (last - first) * _PAGE)
        return
    # release the runs of clean pages between the written ones
    edges = np.flatnonzero(np.diff(np.concatenate([[True], written, [True]]).astype(np.int8)))
    for a, b in zip(edges[::2], edges[1::2], strict=True):
        if b > a:
            fm.madvise(mmap.MADV_DONTNEED, (first + int(a)) * _PAGE, int(b - a) * _PAGE)


class ReleaseEvery:
    """Drops the pages of mapped arrays once ``entries`` of their entries have been read since
    the last drop: a pass that reads scattered rows of a mapped graph (the coreness peel's waves,
    the certificate's search levels, the motif's roots) keeps about that much resident, not every
    row it reached. ``span`` (where a reader of one array says which entries it read) limits the
    release to what was read, else the whole arrays are released."""

    def __init__(self, *arrays: np.ndarray, entries: int) -> None:
        self.arrays, self.entries = arrays, int(entries)
        self.count = 0
        self.lo: int | None = None  # the span read since the last release (None: everything)
        self.hi = 0
        self.whole = False

    def read(self, count: int, span: tuple[int, int] | None = None) -> None:
        """``count`` more entries were read (``span``: within ``[lo, hi)`` of the one array)."""
        self.count += int(count)
        if span is None:
            self.whole = True
        else:
            self.lo = span[0] if self.lo is None else min(self.lo, span[0])
            self.hi = max(self.hi, span[1])
        if self.count >= self.entries:
            self.release()

    def release(self) -> None:
        """Drop the pages read since the last release now."""
        for arr in self.arrays:
            if self.whole or self.lo is None:
                release_pages(arr)
            else:
                release_pages(arr, self.lo, self.hi)
        self.count, self.lo, self.hi, self.whole = 0, None, 0, False


def iter_chunks(arr: np.ndarray, items: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """``(start, arr[start:start + items])`` over a 1-d array, each chunk's mapped pages released
    (:func:`release_pages`) once the caller asks for the next: the one way a pass over a whole
    mapped member reads it (checks, digests, CRCs, edge-wise passes) without leaving it resident.
    ``items`` defaults to :data:`STREAM_BYTES` worth of entries."""
    n = arr.shape[0]
    step = max(1, items if items is not None else STREAM_BYTES // max(arr.itemsize, 1))
    for lo in range(0, n, step):
        yield lo, arr[lo : lo + step]
        release_pages(arr, lo, lo + step)
