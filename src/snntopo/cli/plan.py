"""``snntopo plan``: the price of a workflow config before launch (jobs, cluster submissions,
GPU-hours, CPU-hours, peak memory per job kind, disk), without building Snakemake's DAG and without
importing torch. The logic is :mod:`snntopo.plan`."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: need at least 1")
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--configfile", action="extend", nargs="+", default=[], metavar="FILE",
        help="workflow config, layered over the workflow's defaults like snakemake's "
        "--configfile (several: a later file overlays an earlier one)",
    )  # fmt: skip
    parser.add_argument(
        "--config", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
        help="override top-level keys, like snakemake's --config (values read as YAML)",
    )  # fmt: skip
    parser.add_argument(
        "--profile", default=None, metavar="DIR",
        help="Snakemake profile (e.g. profiles/slurm): its executor, cores, set-resources, "
        "set-threads and group-components change the price",
    )  # fmt: skip
    parser.add_argument(
        "--cores", type=positive_int, default=None,
        help="most threads one job may use (snakemake --cores); default: the profile's, else "
        "this machine's cores",
    )  # fmt: skip
    parser.add_argument(
        "--mem-limit-mb", type=positive_int, default=None, metavar="MB",
        help="memory one job may use (the largest node's, on a cluster); jobs asking for more "
        "are listed. Default: the profile's resources: mem_mb, else this machine's memory when "
        "the jobs run here",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from ..plan import format_plan, load_profile, load_workflow_config, make_plan

    config = load_workflow_config(args.configfile, args.config)
    plan = make_plan(
        config, load_profile(args.profile), cores=args.cores, mem_limit_mb=args.mem_limit_mb
    )
    print(format_plan(plan))
    return 0
