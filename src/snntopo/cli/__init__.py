"""The ``snntopo`` command: single-network and analysis entry points over the same functions the
Snakemake rules call, so the CLI and the DAG can never disagree.

Each subcommand lives in its own module exposing ``configure(parser)`` and ``run(args) -> int``; they
are imported lazily so ``snntopo analyze`` never pays for importing torch. Shared argument types and
the per-network options are in :mod:`snntopo.cli.options`.

Every command takes ``--threads N`` (default: the cores this process may run on,
``os.sched_getaffinity``): the BLAS/OpenMP thread variables are set to it before the command's
module and its libraries are imported (:mod:`snntopo.threads`), and the pools already loaded are
resized with threadpoolctl, so a command runs one level of parallelism of ``N`` threads.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ..errors import SnntopoError
from ..threads import available_cores, cap_threads, thread_limits, thread_variables

COMMANDS: dict[str, tuple[str, str]] = {
    "mask": ("snntopo.cli.mask", "compute a PaI mask for one network"),
    "train": ("snntopo.cli.train", "train one masked network"),
    "encode": ("snntopo.cli.encode", "build a graph encoding of one network"),
    "metrics": ("snntopo.cli.metrics", "compute metric families of one stored graph"),
    "analyze": ("snntopo.cli.analyze", "regression, importance and ranking on metric tables"),
    "fit": ("snntopo.cli.fit", "fit an accuracy predictor on metric tables"),
    "predict": ("snntopo.cli.predict", "predict the accuracy of untrained masks"),
    "bench": ("snntopo.cli.bench", "benchmarks: encode and metric time and peak memory"),
    "plan": (
        "snntopo.cli.plan",
        "price a workflow config before launch: jobs, hours, memory, disk",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="snntopo",
        description="Topology of sparse networks pruned at initialisation: single-network "
        "commands and the analysis, over the same functions the Snakemake workflow runs.",
    )
    parser.add_argument("--version", action="version", version=f"snntopo {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    requested = sys.argv[1] if len(sys.argv) > 1 else None
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        )
        p.add_argument(
            "--threads",
            type=_threads,
            default=available_cores(),
            help="threads of the BLAS/OpenMP pools and of the command's own workers; the "
            "default is the number of cores this process may run on",
        )
        # Only import the module of the command actually asked for (keeps start-up light).
        if name == requested:
            importlib.import_module(module).configure(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    # the thread cap goes into the environment before any numerical library loads (the
    # subcommand's module and its argument types may load numpy); a caller that runs main() in
    # its own process (the tests) gets its environment back afterwards
    with thread_variables(_early_threads(sys.argv[1:]) or available_cores()):
        return _run()


def _run() -> int:
    from ..io import remove_temps_on_signal

    remove_temps_on_signal()
    try:
        # an argument type may raise snntopo's own errors (``--arch``'s "did you mean"), and
        # building a subcommand's parser imports its registries: one line, exit 2, as argparse
        parser = build_parser()
        args = parser.parse_args()
    except SnntopoError as exc:
        command = sys.argv[1] if len(sys.argv) > 1 else "snntopo"
        print(f"snntopo {command}: error: {exc}", file=sys.stderr)
        return 2
    cap_threads(args.threads)
    module = importlib.import_module(COMMANDS[args.command][0])
    try:
        with thread_limits(args.threads):
            return int(module.run(args) or 0)
    except SnntopoError as exc:
        print(f"snntopo {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        # the file system's answer (a full disk, a file size limit, a name too long, a path that
        # exists as a file): one line naming the path, as the workflow's jobs do
        from ..jobs import os_error_line

        print(f"snntopo {args.command}: error: {os_error_line(exc)}", file=sys.stderr)
        return 2
    except MemoryError as exc:
        # past the pre-flight memory check (--force-memory, or an estimate that fell short): one
        # line with numpy's own words (how much, of what), not a traceback
        print(
            f"snntopo {args.command}: error: out of memory ({exc or 'an allocation failed'}): "
            "this input needs more memory than this process may use (ulimit -v, the cgroup's "
            "limit, free memory); use a machine with more memory or a smaller input",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print("snntopo: interrupted", file=sys.stderr)
        return 130


def _threads(text: str) -> int:
    from .options import threads

    return threads(text)


def _early_threads(argv: list[str]) -> int | None:
    """``--threads N`` read from the raw arguments, before the parser (and what it imports)
    exists; ``None`` when absent or invalid (the parser then reports it)."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--threads", default=None)
    known, _ = pre.parse_known_args(argv)
    try:
        n = int(known.threads)
    except (TypeError, ValueError):
        return None
    return n if n > 0 else None
