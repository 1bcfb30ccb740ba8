"""Stage ``metrics_<family>``: one metric family on every applicable encoding."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, TypedDict

from ..gridpoint import NetworkKeys
from ..io import file_digest, provenance, write_json

if TYPE_CHECKING:
    from ..memcheck import MemoryGuard

log = logging.getLogger("snntopo.stages")


class MetricParams(TypedDict, total=False):
    """Settings of one ``metrics_<family>`` job: any key of
    :data:`snntopo.metrics.base.DEFAULT_PARAMS` (seed, threads, eigensolver and motif settings)
    plus the network keys."""

    seed: int
    threads: int
    network: NetworkKeys


def family_on_graph(
    family: str, path: str, params: MetricParams, graph: Any = None
) -> dict[str, Any]:
    """One family on one stored graph: the per-encoding entry of a metric artifact (shared by the
    ``metrics_<family>`` rules and ``snntopo metrics``). ``graph``: the graph at ``path`` if the
    caller has already loaded it (several families of one graph load it once)."""
    from concurrent.futures import ThreadPoolExecutor

    from ..artifacts import check_finite
    from ..encode.graph import DIGEST_KEY, load_graph
    from ..metrics import compute_family

    t0 = time.perf_counter()
    graph = load_graph(path) if graph is None else graph
    check_finite({"weights": graph.weights}, path)
    # the graph is named by the content digest the encoder recorded; an older file without one
    # by its bytes' digest, taken on a thread beside the metric work
    recorded = graph.meta.get(DIGEST_KEY)
    with ThreadPoolExecutor(max_workers=1) as pool:
        digest = pool.submit(file_digest, path) if recorded is None else None
        res = compute_family(family, graph, params)
        res["seconds"] = time.perf_counter() - t0
        named = {DIGEST_KEY: recorded} if digest is None else {"digest": digest.result()}
        res["provenance"]["graph"] = {"path": str(path), **named}
    if "provenance" in graph.meta:
        res["provenance"]["graph"]["provenance"] = graph.meta["provenance"]
    for metric, why in (res.get("nan_reasons") or {}).items():
        log.warning("%s/%s: %s is NaN: %s", graph.meta.get("encoding"), family, metric, why)
    return res


def compute_metrics(
    family: str,
    graphs: dict[str, str],
    params: MetricParams,
    out: str,
    memory: MemoryGuard | None = None,
) -> None:
    """One metric family on every applicable encoding of one network -> one small JSON. Each
    graph must be this network's (``params["network"]``) and of the encoding it is read for.
    Given ``memory``, a job whose largest graph's estimated peak does not fit is refused before
    any graph is loaded (:func:`snntopo.memcheck.check_memory`)."""
    from ..encode.graph import load_graph_deferred

    if memory is not None:
        from ..memcheck import check_memory
        from ..metrics.implicit import job_edges

        edges = job_edges(list(graphs.values()), family, dict(params))
        check_memory(f"metric family {family}", edges, memory, [family])

    result: dict[str, Any] = {"family": family, "encodings": {}}
    network = dict(params.get("network") or {})
    for encoding, path in graphs.items():
        # the content digest is checked on a thread while the family runs; waited for before
        # the artifact is written or an error of the family is reported
        graph, verified = load_graph_deferred(path)
        try:
            result["encodings"][encoding] = _checked_family(
                family, encoding, path, params, graph, network
            )
        except BaseException:
            verified()
            raise
        verified()
    result["network"] = params.get("network", {})
    result["provenance"] = provenance(**params)
    write_json(out, result, digest=True)


def _checked_family(
    family: str,
    encoding: str,
    path: str,
    params: MetricParams,
    graph: Any,
    network: dict[str, Any],
) -> dict[str, Any]:
    """:func:`family_on_graph` on a graph checked to be this network's and of ``encoding``."""
    from ..artifacts import NETWORK_KEYS, check_recorded

    if network:
        check_recorded(dict(graph.meta.get("network") or {}), network, path, keys=NETWORK_KEYS)
    if graph.meta.get("encoding") is not None:  # hand-built graphs may not say
        check_recorded(
            {"encoding": graph.meta["encoding"]},
            {"encoding": encoding},
            path,
            keys=("encoding",),
            against="this job",
        )
    return family_on_graph(family, path, params, graph)
