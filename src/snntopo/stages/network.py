"""The typed job of one network: what the ``spec``, ``mask`` and ``train`` stages need, built
either from the workflow config (the Snakemake rules, :func:`snntopo.workflow.job_from_config`) or
from command-line arguments (the CLI, :func:`snntopo.cli.options.job_from_args`).

Why one object for both: the CLI and the DAG must not disagree. Both build a :class:`NetworkJob`
and hand it to the same stage functions, so a data-driven PaI
method gets the same data root, download switch, device, input size and method settings from
``snntopo mask``/``snntopo encode`` as from the workflow. The rules pass ``job.params(stage)``,
a plain JSON-able dict holding only the fields that stage depends on (Snakemake's ``params``
rerun trigger then reruns a stage only when something it uses changed); the stage functions
accept that dict or the object itself (:meth:`NetworkJob.coerce`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..names import DENSE

#: fields each stage depends on (besides the model fields)
_STAGE_FIELDS: dict[str, tuple[str, ...]] = {
    "spec": (),
    "mask": ("method", "sparsity", "seed", "device", "data_root", "download", "pai"),
    "train": ("method", "sparsity", "seed", "device", "data_root", "download", "training"),
}
_MODEL_FIELDS = (
    "arch",
    "dataset",
    "num_classes",
    "in_channels",
    "input_size",
    "width",
    "model_kwargs",
)


@dataclass(frozen=True)
class NetworkJob:
    """One network of the grid (``method == 'dense'``, sparsity 0: a dense baseline)."""

    arch: str
    dataset: str
    num_classes: int
    in_channels: int
    input_size: int
    width: float = 1.0
    method: str = DENSE
    sparsity: float = 0.0
    seed: int = 0
    device: str = "auto"
    data_root: str = "data"
    download: bool = False
    pai: Mapping[str, Any] = field(default_factory=dict)
    """Settings of ``method`` (the config's ``pai.<method>``)."""
    training: Mapping[str, Any] = field(default_factory=dict)
    """The training recipe of this (dataset, arch) after defaults and overrides."""
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)
    """Extra constructor arguments of an external architecture (config ``model.kwargs``)."""

    @classmethod
    def coerce(cls, params: NetworkJob | Mapping[str, Any]) -> NetworkJob:
        """A job from a rule's ``params`` dict (or the job itself)."""
        if isinstance(params, NetworkJob):
            return params
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(params) - names)
        if unknown:
            raise ConfigError(f"job parameters: unknown key(s) {unknown}")
        return cls(**{k: v for k, v in params.items() if k in names})

    # ------------------------------------------------------------------ use
    def params(self, stage: str) -> dict[str, Any]:
        """The JSON-able fields ``stage`` depends on (a rule's ``params``)."""
        keys = (*_MODEL_FIELDS, *_STAGE_FIELDS[stage])
        out = {k: getattr(self, k) for k in keys}
        for k in ("pai", "training", "model_kwargs"):
            if k in out:
                out[k] = dict(out[k])
        return out

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.in_channels, self.input_size, self.input_size)

    @property
    def is_dense(self) -> bool:
        return self.method == DENSE

    def build_model(self, seed: int | None = None) -> Any:
        """The model with the paper's initialisation, seeded by ``seed`` (default: the job's)."""
        from ..models import build_model

        return build_model(
            self.arch,
            num_classes=self.num_classes,
            in_channels=self.in_channels,
            input_size=self.input_size,
            width=self.width,
            seed=self.seed if seed is None else seed,
            kwargs=dict(self.model_kwargs) or None,
        )
