"""Run the paper's own unrolled-topometrics path on a snntopo mask, for side-by-side timing.

    git clone https://github.com/eliacunegatti/mge-snn /tmp/mge-snn   # the authors' code
    pip install --target /tmp/mge-deps numba progressbar2              # its extra imports
    cd /tmp/mge-snn && PYTHONPATH=/tmp/mge-deps:/tmp/mge-snn \\
        python /path/to/snntopo/benchmarks/paper_reference.py MASK INIT [ARCH SPARSITY METHOD]

    # timed against ours, alternating rounds (docs/benchmarks.md):
    python benchmarks/bench_jobs.py --spec layers.json --weights init.safetensors --out DIR \\
        --rounds 2 --other-cmd 'cd /tmp/mge-snn && PYTHONPATH=/tmp/mge-deps:/tmp/mge-snn \\
        python /path/to/snntopo/benchmarks/paper_reference.py mask.safetensors init.safetensors' \\
        --other-name paper

MASK and INIT are the workflow's ``mask.safetensors`` and masked ``init.safetensors`` of one
network (``bench_jobs.py --prepare cifar10:resnet20:erk:0.6`` makes them). The authors' ``main``
module runs unmodified (``--encoding unrolled --graph_metrics topometrics --device cpu``: its
unrolled MGE and every topometric); two of its functions are replaced from here, nothing else:
``get_dataset`` returns CIFAR-10's shape without reading data (the path uses only the shape), and
``apply_pruning`` copies the masked init into the model's conv/linear weights in module order
(shapes checked one by one) and returns the masks, so both sides encode the same weights. The
path run has no ``.cuda()`` call. Must run from the authors' checkout (their code reads files
relative to it). Nothing of their code is copied here.
"""

from __future__ import annotations

import argparse
import sys


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("mask")
    ap.add_argument("init")
    ap.add_argument("arch", nargs="?", default="Resnet-20", help="the authors' model name")
    ap.add_argument("sparsity", nargs="?", default="0.6")
    ap.add_argument("method", nargs="?", default="erk", help="recorded only; the mask is given")
    a = ap.parse_args()

    import main as paper  # the authors' main.py (cwd and PYTHONPATH: their checkout)
    import torch
    from safetensors.numpy import load_file

    def get_dataset(name):
        return None, None, 32, 3, 10  # loaders unused; input side, channels, classes

    def apply_pruning(args, model, trainloader, device, classes):
        masks, init = load_file(a.mask), load_file(a.init)
        layers = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
        if len(layers) != len(masks):
            sys.exit(f"{len(layers)} conv/linear layers in the model, {len(masks)} masks")
        keep = []
        for layer, name in zip(layers, list(masks), strict=True):
            if tuple(layer.weight.shape) != masks[name].shape:
                sys.exit(f"{name}: mask {masks[name].shape} vs layer {tuple(layer.weight.shape)}")
            with torch.no_grad():
                layer.weight.copy_(torch.from_numpy(init[name]))
            keep.append(torch.from_numpy(masks[name].astype("float32")))
        return keep

    paper.get_dataset = get_dataset
    paper.apply_pruning = apply_pruning
    args = argparse.Namespace(
        model=a.arch,
        dataset="CIFAR-10",
        sparsity=float(a.sparsity),
        pruning=a.method,
        seed=0,
        encoding="unrolled",
        graph_metrics="topometrics",
        device="cpu",
        training=False,
    )
    paper.args = args
    paper.main(args)


if __name__ == "__main__":
    main()
