"""Write a graph file row block by row block, without holding its edges in memory.

The file is the one :func:`snntopo.encode.graph.save_graph` writes (same members in the same
order, same alignment, same metadata and content digest: byte for byte the same file for the same
graph and metadata), made from an iterator of CSR row blocks in node order. Memory: the
``indptr`` (8 bytes per node) plus one row block and a 16 MB copy buffer.

How, given that a zip member's size and CRC-32 stand in its header before its data and that the
content digest hashes ``indptr`` first:

1. ``indptr`` is written as zeros (its size is known: one entry per node, plus one);
2. ``indices`` is written through the zip writer as the rows arrive, behind a ``.npy`` header of
   shape ``(0,)`` (numpy pads the header so that the length of its first axis can grow in place:
   the header of the real shape has the same length); the ``weights`` of the rows go to an
   unnamed temporary file next to the output (the kernel frees it when the process ends, however
   it ends);
3. at the end the real ``indptr`` and the real ``indices`` header are written in place, the CRC-32
   of both members is recomputed (``indices`` read back once, in 16 MB pieces, which the content
   digest needs anyway, since its ``indptr`` comes first) and patched into their local headers
   and, through the entries, into the central directory;
4. ``weights`` is copied from the temporary file as the next member, then ``block_offsets``, the
   kernels and the metadata with the digest, as in ``save_graph``.

Members of 4 GB and more are zip64 (every member is written with ``force_zip64``, as in
``save_graph``). The file is written to a temporary name and renamed when complete
(:func:`snntopo.io.atomic_path`): a crash leaves no output.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ..io import atomic_path
from .graph import (
    DIGEST_KEY,
    Block,
    aligned_member,
    block_offsets,
    digest_member_header,
    digest_meta,
    file_meta,
)

#: bytes per read or write of the copy passes
COPY_BYTES = 1 << 24

#: one row block: ``indptr`` of its rows (``k + 1`` offsets from 0), their targets and weights
Rows = tuple[np.ndarray, np.ndarray, np.ndarray]


def _npy_header(dtype: np.dtype, shape: tuple[int, ...]) -> bytes:
    """The ``.npy`` header ``np.lib.format.write_array`` writes for a C-ordered array."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf,
        {
            "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
            "fortran_order": False,
            "shape": tuple(int(d) for d in shape),
        },
    )
    return buf.getvalue()


def _open_member(zf: zipfile.ZipFile, fh: Any, name: str) -> tuple[Any, zipfile.ZipInfo]:
    """A writer of the next member, aligned as ``save_graph``'s (the file's end is where the
    zip writer puts it: nothing is written past the last member before the directory)."""
    fh.seek(0, os.SEEK_END)
    info = aligned_member(name, fh.tell())
    return zf.open(info, "w", force_zip64=True), info


def _patch_crc(fh: Any, info: zipfile.ZipInfo, crc: int) -> None:
    """Set a written member's CRC-32 in its local header (offset 14 of the zip format's local
    file header) and in its entry, from which the central directory is written at the end."""
    info.CRC = crc
    fh.seek(info.header_offset + 14)
    fh.write(struct.pack("<I", crc))


def _write_array_member(zf: zipfile.ZipFile, fh: Any, name: str, arr: np.ndarray, h: Any) -> None:
    a = np.ascontiguousarray(arr)
    digest_member_header(h, name, a.dtype, a.shape)
    h.update(memoryview(a).cast("B"))
    out, _ = _open_member(zf, fh, name)
    with out:
        np.lib.format.write_array(out, a, allow_pickle=False)


def write_rows(
    path: str | Path,
    n_nodes: int,
    blocks: list[Block],
    rows: Iterable[Rows],
    finish: Callable[[], dict[str, Any]],
    kernels: dict[str, np.ndarray] | None = None,
    layers: list[dict[str, Any]] | None = None,
) -> int:
    """Write the graph whose rows ``rows`` yields, in node order, to ``path`` (module doc).

    ``finish`` is called once every row is written and returns the graph's metadata (what
    :attr:`Graph.meta <snntopo.encode.graph.Graph.meta>` would hold). Returns the edge count.
    """
    idx_dtype = np.dtype(np.int32 if n_nodes < 2**31 else np.int64)
    indptr = np.zeros(n_nodes + 1, dtype=np.int64)
    final = Path(path)
    with atomic_path(final, suffix=".npz") as tmp, open(tmp, "w+b") as fh:
        scratch_dir = final.parent if str(final.parent) else Path(".")
        with (
            tempfile.TemporaryFile(dir=scratch_dir) as side,
            zipfile.ZipFile(fh, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf,
        ):
            # 1. indptr: zeros for now
            out, ip_info = _open_member(zf, fh, "indptr")
            ip_head = _npy_header(indptr.dtype, indptr.shape)
            with out:
                out.write(ip_head)
                ip_data = fh.tell()
                zeros = bytes(min(COPY_BYTES, indptr.nbytes))
                for lo in range(0, indptr.nbytes, len(zeros) or 1):
                    out.write(zeros[: min(len(zeros), indptr.nbytes - lo)])
            # 2. indices through the zip writer, weights to the scratch file
            out, ix_info = _open_member(zf, fh, "indices")
            ix_head = _npy_header(idx_dtype, (0,))
            row = pos = 0
            with out:
                ix_at = fh.tell()
                out.write(ix_head)
                for ptr, idx, w in rows:
                    k = ptr.shape[0] - 1
                    if row + k > n_nodes or idx.shape != w.shape or int(ptr[-1]) != idx.shape[0]:
                        raise ValueError(f"row block at row {row} does not fit the graph")
                    indptr[row + 1 : row + k + 1] = ptr[1:] + pos
                    out.write(memoryview(np.ascontiguousarray(idx, dtype=idx_dtype)).cast("B"))
                    side.write(memoryview(np.ascontiguousarray(w, dtype=np.float32)).cast("B"))
                    row += k
                    pos += int(ptr[-1])
            if row != n_nodes:
                raise ValueError(f"rows end at row {row} of {n_nodes}")
            meta = file_meta(finish(), blocks, list(layers or []))
            h = hashlib.sha256()
            # 3. the real indptr, the real indices header, their CRC-32
            fh.seek(ip_data)
            fh.write(memoryview(indptr).cast("B"))
            _patch_crc(fh, ip_info, zlib.crc32(indptr, zlib.crc32(ip_head)))
            digest_member_header(h, "indptr", indptr.dtype, indptr.shape)
            h.update(memoryview(indptr).cast("B"))
            head = _npy_header(idx_dtype, (pos,))
            if len(head) != len(ix_head):  # numpy's growth-axis padding makes them equal
                raise RuntimeError("the .npy header of the indices changed length")
            fh.seek(ix_at)
            fh.write(head)
            crc = zlib.crc32(head)
            digest_member_header(h, "indices", idx_dtype, (pos,))
            buf = bytearray(COPY_BYTES)
            view = memoryview(buf)
            left = pos * idx_dtype.itemsize
            while left:
                got = fh.readinto(view[: min(left, COPY_BYTES)])
                if not got:
                    raise OSError("the indices member ended early on reading back")
                h.update(view[:got])
                crc = zlib.crc32(view[:got], crc)
                left -= got
            _patch_crc(fh, ix_info, crc)
            # 4. the weights from the scratch file, then the small members and the metadata
            digest_member_header(h, "weights", np.float32, (pos,))
            side.seek(0)
            out, _ = _open_member(zf, fh, "weights")
            with out:
                out.write(_npy_header(np.dtype(np.float32), (pos,)))
                left = pos * 4
                while left:
                    got = side.readinto(view[: min(left, COPY_BYTES)])
                    if not got:
                        raise OSError("the weights scratch file ended early")
                    h.update(view[:got])
                    out.write(view[:got])
                    left -= got
            del view
            small = {"block_offsets": block_offsets(blocks, n_nodes), **(kernels or {})}
            for name, arr in small.items():
                _write_array_member(zf, fh, name, arr, h)
            digest = digest_meta(h, meta)
            out, _ = _open_member(zf, fh, "meta")
            with out:
                np.lib.format.write_array(
                    out, np.array(json.dumps({**meta, DIGEST_KEY: digest})), allow_pickle=False
                )
    return pos
