"""Coverage of an MGE's conv terms, and the graph file with only the previous rule's terms.

    python benchmarks/bench_conv_terms.py coverage GRAPH [--arch ARCH --input-size N]
    python benchmarks/bench_conv_terms.py plain-only GRAPH OUT

``coverage`` prints one JSON line: the share of the edges held by conv terms (``stored``) and by
the terms the spectral operator applies densely (``used``: dense enough, see
``snntopo.metrics.conv_operator.MIN_DENSITY``), for all the file's terms (``after``) and for the
plain convs alone (``before``: one group, symmetric padding, no pooling folded in, one input
tensor -- the rule before pooled and grouped convs became terms; ``--arch`` names a torchvision
model whose spec tells which convs read several tensors). ``plain-only`` writes the same graph
with only those plain terms: the input of a "before" run of the expansion family.
"""

from __future__ import annotations

import argparse
import json

from snntopo.encode.graph import load_graph, save_graph
from snntopo.metrics import conv_operator as co


def _several_inputs(arch: str | None, size: int) -> set[str]:
    if not arch or not arch.startswith("torchvision:"):
        return set()
    import torchvision

    from snntopo.encode.layers import layer_spec

    net = getattr(torchvision.models, arch.split(":", 1)[1])()
    return {lay["name"] for lay in layer_spec(net, (3, size, size))["layers"] if "inputs" in lay}


def _plain(term: dict, multi: set[str]) -> bool:
    return (
        not term.get("pools")
        and term.get("groups", 1) == 1
        and "padding_end" not in term
        and term["layer"] not in multi
    )


def coverage(path: str, arch: str | None, size: int) -> dict:
    g = load_graph(path)
    multi = _several_inputs(arch, size)
    rows = []
    for t in g.meta.get("conv_terms", []):
        k = g.kernels[t["kernel"]]
        op = co._ConvTerm(t, k, g.blocks[t["in_block"]], g.blocks[t["out_block"]])
        rows.append((op.n_edges, _plain(t, multi), op.n_edges >= co.MIN_DENSITY * op.cost))
    e = g.n_edges
    return {
        "graph": path,
        "edges": e,
        "terms_before": sum(1 for r in rows if r[1]),
        "terms_after": len(rows),
        "stored_before": round(sum(n for n, p, _ in rows if p) / e, 4),
        "stored_after": round(sum(n for n, _, _ in rows) / e, 4),
        "used_before": round(sum(n for n, p, d in rows if p and d) / e, 4),
        "used_after": round(sum(n for n, _, d in rows if d) / e, 4),
    }


def plain_only(path: str, out: str, multi: set[str]) -> None:
    g = load_graph(path)
    keep = [t for t in g.meta.get("conv_terms", []) if _plain(t, multi)]
    g.meta["conv_terms"] = keep
    g.kernels = {t["kernel"]: g.kernels[t["kernel"]] for t in keep}
    save_graph(out, g)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=["coverage", "plain-only"])
    ap.add_argument("graph")
    ap.add_argument("out", nargs="?")
    ap.add_argument("--arch")
    ap.add_argument("--input-size", type=int, default=32)
    args = ap.parse_args()
    if args.what == "coverage":
        print(json.dumps(coverage(args.graph, args.arch, args.input_size)), flush=True)
    else:
        if not args.out:
            ap.error("plain-only needs OUT")
        plain_only(args.graph, args.out, _several_inputs(args.arch, args.input_size))


if __name__ == "__main__":
    main()
