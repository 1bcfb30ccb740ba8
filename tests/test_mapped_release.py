"""Streamed reads of a memory-mapped graph file (issue 29): the chunked reader checks give the
same verdicts at any chunk size, and pages released after a pass leave every value as it was (a
value written through the copy-on-write map included) while leaving the resident set."""

from __future__ import annotations

import numpy as np
import pytest

from snntopo import mapped
from snntopo.encode.graph import Block, Graph, iter_chunks, load_graph, release_pages, save_graph
from snntopo.errors import GraphError
from snntopo.metrics import algorithms as al


@pytest.fixture(params=[4, 12, 1 << 24], ids=["one-int32", "three-int32", "default"])
def stream_bytes(request, monkeypatch):
    monkeypatch.setattr(mapped, "STREAM_BYTES", request.param)
    return request.param


def _rss_file_kb() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("RssFile:"):
                return int(line.split()[1])
    pytest.skip("no RssFile in /proc/self/status")


def _resident_kb(arr: np.ndarray) -> int:
    """KB of ``arr``'s pages present in this process (``/proc/self/pagemap``)."""
    page = 4096
    first, last = arr.ctypes.data // page, -(-(arr.ctypes.data + arr.nbytes) // page)
    try:
        with open("/proc/self/pagemap", "rb") as fh:
            fh.seek(8 * first)
            flags = np.frombuffer(fh.read(8 * (last - first)), dtype=np.uint64)
    except OSError:
        pytest.skip("no /proc/self/pagemap")
    return int(np.count_nonzero(flags & np.uint64(1 << 63))) * page // 1024


def test_iter_chunks_visit_every_entry_once(stream_bytes):
    a = np.arange(37, dtype=np.int32)
    parts = list(iter_chunks(a))
    assert [s for s, _ in parts] == list(range(0, 37, max(1, stream_bytes // 4)))[: len(parts)]
    np.testing.assert_array_equal(np.concatenate([p for _, p in parts]), a)
    assert list(iter_chunks(a[:0])) == []


def _mge(tmp_path, name, src, dst, weights=None):
    """A 3-block graph (input 0-2, hidden 3-6, output 7-8) saved as an MGE file."""
    src, dst = np.asarray(src), np.asarray(dst)
    order = np.lexsort((dst, src))
    src, dst = src[order], dst[order]
    indptr = np.zeros(10, dtype=np.int64)
    np.cumsum(np.bincount(src, minlength=9), out=indptr[1:])
    w = np.ones(len(dst), np.float32) if weights is None else np.asarray(weights, np.float32)
    blocks = [Block("input", 0, 3, (3,)), Block("h", 3, 7, (4,)), Block("out", 7, 9, (2,))]
    g = Graph(indptr, dst.astype(np.int32), w, blocks, meta={"encoding": "mge"})
    save_graph(tmp_path / name, g)
    return tmp_path / name


#: forward edges: input -> hidden, hidden -> hidden (within a block), hidden -> output
SRC = [0, 0, 1, 2, 3, 3, 4, 5, 5, 6, 6]
DST = [3, 4, 5, 6, 4, 7, 8, 7, 8, 7, 8]


def test_streamed_reader_checks_give_the_same_verdicts_at_any_chunk_size(tmp_path, stream_bytes):
    g = load_graph(_mge(tmp_path, "good.npz", SRC, DST))
    assert g.n_edges == 11 and g.in_degree().tolist() == [0, 0, 0, 1, 2, 1, 1, 3, 3]
    cases = [
        # row 7 (the output block starts at 7) has an edge back to node 4 (the hidden block)
        (SRC + [7], DST + [4], None, "node 7 has an edge back to node 4, an earlier block"),
        (SRC + [5], DST + [1], None, "an edge enters the input block (node 1)"),
        (SRC + [6], DST + [9], None, "edge targets outside [0, 9)"),
        (SRC, DST, [1.0] * 10 + [-0.5], "weights must be finite and > 0 (found -0.5)"),
        (SRC, DST, [1.0] * 5 + [np.nan] + [1.0] * 5, "(found nan)"),
    ]
    for i, (s, d, w, expect) in enumerate(cases):
        with pytest.raises(GraphError) as err:
            load_graph(_mge(tmp_path, f"bad{i}.npz", s, d, w))
        assert expect in str(err.value), (expect, str(err.value))


def test_released_pages_leave_the_resident_set_and_keep_every_value(tmp_path):
    n, e = 1000, 6_000_000  # 24 MB of indices
    rng = np.random.default_rng(3)
    indptr = np.linspace(0, e, n + 1).astype(np.int64)
    indices = np.sort(rng.integers(0, n, e).astype(np.int32))
    save_graph(
        tmp_path / "g.npz",
        Graph(indptr, indices, np.ones(e, np.float32), [Block("a", 0, n, (n,))], meta={}),
    )
    g = load_graph(tmp_path / "g.npz")
    release_pages(g.indices)
    before = _rss_file_kb()
    assert int(g.indices.sum(dtype=np.int64)) == int(indices.sum(dtype=np.int64))
    assert _rss_file_kb() - before > 20_000  # the pass faulted the member in
    release_pages(g.indices)
    assert _rss_file_kb() - before < 2_000  # and the release dropped it
    np.testing.assert_array_equal(g.indices, indices)  # read back from the page cache
    # a value written through the private map is kept: its page is the process's own copy
    g.indices[3_000_000] = -7
    release_pages(g.indices)
    assert g.indices[3_000_000] == -7
    assert np.array_equal(g.indices[:3_000_000], indices[:3_000_000])
    assert np.array_equal(g.indices[3_000_001:], indices[3_000_001:])
    # an array not mapped from a graph file is never touched
    own = indices.copy()
    release_pages(own)
    np.testing.assert_array_equal(own, indices)


def test_global_and_strength_passes_do_not_leave_the_mapped_graph_resident(tmp_path, monkeypatch):
    """The undirected structure, the CSC and the DFS checks read A in released row chunks: the
    file's pages they faulted in are gone afterwards (the structures are equal to scipy's)."""
    import scipy.sparse as sp

    monkeypatch.setattr(al, "EDGE_CHUNK", 1 << 20)
    n, e = 20_000, 4_000_000
    rng = np.random.default_rng(11)
    s = rng.integers(0, n - 1, e)
    d = s + 1 + rng.integers(0, 3000, e) % (n - 1 - s)  # every edge to a higher id
    a = sp.csr_array((np.ones(e, np.float32), (s, d)), shape=(n, n))
    a.sum_duplicates()
    a.sort_indices()
    g0 = Graph(
        a.indptr.astype(np.int64),
        a.indices.astype(np.int32),
        a.data,
        [Block("a", 0, n, (n,))],
        meta={},
    )
    save_graph(tmp_path / "g.npz", g0)
    g = load_graph(tmp_path / "g.npz")
    release_pages(g.indices)
    release_pages(g.weights)
    indptr, indices = al.undirected_adjacency(g)
    in_ptr, in_src = al.in_neighbour_lists(g)
    al.bridges_articulation_components(g)
    # A's own pages (not the process's RssFile, which grows as libraries are first loaded)
    assert _resident_kb(g.indices) < g.indices.nbytes // 1024 // 8, "A stayed resident"
    sym = (a + a.T).tocsr()
    sym.sort_indices()
    np.testing.assert_array_equal(indptr, sym.indptr)
    np.testing.assert_array_equal(indices, sym.indices)
    csc = a.tocsc()
    csc.sort_indices()
    np.testing.assert_array_equal(in_ptr, csc.indptr)
    np.testing.assert_array_equal(in_src, csc.indices)


def _local_dag(tmp_path, n: int = 400_000, reach: int = 50) -> tuple[Graph, Graph]:
    """(in memory, mapped from its file) a DAG of ``n`` nodes laid out like an MGE's layers:
    each node's ~10 targets lie within the next ``reach`` ids (400,000 nodes: 14 MB of int32
    targets)."""
    per = 10
    rng = np.random.default_rng(5)
    src = np.repeat(np.arange(n - reach - 1), per)
    # target k of a node in the k-th tenth of its reach: distinct and ascending, no sort needed
    step = reach // per
    dst = src + 1 + np.tile(np.arange(per) * step, n - reach - 1)
    dst += rng.integers(0, step, src.shape[0])
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(src, minlength=n), out=indptr[1:])
    g0 = Graph(
        indptr, dst.astype(np.int32), np.ones(dst.shape[0], np.float32), [Block("a", 0, n, (n,))]
    )
    save_graph(tmp_path / "g.npz", g0)
    return g0, load_graph(tmp_path / "g.npz")


def test_motif_lists_of_a_few_roots_leave_no_mapped_page_resident(tmp_path):
    """Gathering the in-neighbour lists for a few roots reads every row block, most of which
    hold no entry those roots need: each block's pages go once read (a block with nothing kept
    once stayed resident: 3.3 GB of ResNet-50 224x224's graph). The lists are the CSC's."""
    from snntopo.metrics import neighbourhood as nb

    g0, g = _local_dag(tmp_path)
    release_pages(g.indices)
    roots = np.array([1_000, 250_000])
    rows = nb.SplitRows.of_upward_dag_for_roots(g, roots)
    assert _resident_kb(g.indices) < 64, _resident_kb(g.indices)
    full = nb.SplitRows.of_upward_dag(g0)  # every list, from the in-memory graph
    np.testing.assert_array_equal(
        nb.rooted_connected_4sets(rows, roots), nb.rooted_connected_4sets(full, roots)
    )


def test_motif_count_releases_the_mapped_rows_it_reads(tmp_path, monkeypatch):
    """The motif count reads the upper rows (the mapped graph) around its roots; it drops those
    pages every ``COUNT_RELEASE_ENTRIES`` entries read, so what stays resident during the count
    is about that much, not the rows of every root (ResNet-50 224x224: 5.4 GB). The estimate is
    the same as on an in-memory copy of the graph."""
    from snntopo.metrics import neighbourhood as nb
    from snntopo.metrics.base import DEFAULT_PARAMS

    g0, g = _local_dag(tmp_path)
    params = dict(DEFAULT_PARAMS, motif_sample_fraction=0.0125)  # 5,000 roots over every page
    want = nb.motif_estimate(g0, params)

    monkeypatch.setattr(nb, "COUNT_RELEASE_ENTRIES", 1 << 14)  # 64 KB of int32
    real_release, real_count = mapped.release_pages, nb.rooted_connected_4sets
    seen: list[int] = []
    counting = [False]

    def spy(arr, *a):
        if counting[0]:
            seen.append(_resident_kb(g.indices))  # what the count left resident before releasing
        real_release(arr, *a)

    def count(rows, roots):
        counting[0] = True
        try:
            return real_count(rows, roots)
        finally:
            counting[0] = False

    monkeypatch.setattr(mapped, "release_pages", spy)
    monkeypatch.setattr(nb, "rooted_connected_4sets", count)
    release_pages(g.indices)
    assert _resident_kb(g.indices) == 0
    assert nb.motif_estimate(g, params) == want
    member_kb = g.indices.nbytes // 1024
    # the kernel maps whole page-cache folios around a read (up to a few MB here): a third
    assert len(seen) > 10 and max(seen) < member_kb // 3, (max(seen), member_kb)


def test_certificate_searches_release_the_mapped_rows_they_read(tmp_path, monkeypatch):
    """The scan-first searches read the mapped CSR level by level and drop the pages under what
    they read every ``RELEASE_ENTRIES`` entries, so about that much stays resident between
    releases; the certificate is the one found on the in-memory graph."""
    from snntopo.metrics import cut_certificate as cc

    g0, g = _local_dag(tmp_path, 1_600_000, 20_000)  # 57 MB of targets, ~80 search levels
    want = cc.certificate(g0)
    monkeypatch.setattr(cc, "RELEASE_ENTRIES", 1 << 14)
    real_release = mapped.release_pages
    seen: list[int] = []

    def spy(arr, *a):  # the searches' releases (the in-lists' build releases its own chunks)
        seen.append(_resident_kb(g.indices))
        real_release(arr, *a)

    monkeypatch.setattr(mapped, "release_pages", spy)
    release_pages(g.indices)
    got = cc.certificate(g)
    np.testing.assert_array_equal(got.indptr, want.indptr)
    np.testing.assert_array_equal(got.indices, want.indices)
    member_kb = g.indices.nbytes // 1024
    # what a release finds resident: the folios the kernel mapped around the last reads
    assert len(seen) > 10 and max(seen) < member_kb // 8, (max(seen), member_kb)


def test_coreness_peel_releases_the_mapped_rows_it_reads(tmp_path, monkeypatch):
    """The materialised peel reads each removed node's row once, in its wave, and drops the
    mapped pages every ``PEEL_RELEASE_ENTRIES`` entries read; the coreness is the one of the
    in-memory graph."""
    g0, g = _local_dag(tmp_path, reach=2_000)  # a wider reach: fewer waves, a faster test
    in_ptr, in_src = al.in_neighbour_lists(g0)
    want = al.coreness(g0.indptr, g0.indices, in_ptr, in_src)
    monkeypatch.setattr(al, "PEEL_RELEASE_ENTRIES", 1 << 14)
    real_release = mapped.release_pages
    seen: list[int] = []

    def spy(arr, *a):
        seen.append(_resident_kb(g.indices))
        real_release(arr, *a)

    monkeypatch.setattr(mapped, "release_pages", spy)
    release_pages(g.indices)
    np.testing.assert_array_equal(al.coreness(g.indptr, g.indices, in_ptr, in_src), want)
    member_kb = g.indices.nbytes // 1024
    # the first wave (every node of the smallest degree) reads most rows in one gather; after
    # it, what a release finds is a few waves' rows and the folios around them
    assert len(seen) > 10 and max(seen[1:]) < member_kb // 3, (max(seen[1:]), member_kb)
