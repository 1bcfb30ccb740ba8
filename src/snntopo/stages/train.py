"""Stage ``train``: train one masked network and write its artifacts.

What protects a finished training (the most expensive artifact of the grid):

- **Inputs first.** The mask is validated (readable, of this grid point, not all-zero, bits agree
  with its record) before anything is trained or written.
- **A final state keyed by the mask.** Beside the checkpoint, ``trained-<key>.safetensors`` (a
  hard link to ``model.safetensors``, so no extra disk) survives Snakemake deleting the outputs
  of a job it reruns; ``<key>`` digests the mask's bits, the training parameters and the training
  code. Rerunning with the same mask and recipe restores both outputs instantly instead of
  retraining; a corrupt mask fails its check and leaves the keyed state alone.
- **One training per network at a time.** An exclusive lock on ``checkpoint.pt.lock`` (held by
  the process that trains, released by the kernel when it dies): a second job for the same
  network — e.g. after ``kill -9`` of Snakemake left the first one running — stops at once with a
  message naming the process that holds it.
- **Log lines survive.** Every attempt appends to ``checkpoint.log`` beside the checkpoint (not an
  output, so Snakemake never deletes it); a resumed attempt first copies the earlier attempts'
  lines into its own job log.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ..errors import ArtifactError, CheckpointError
from ..io import file_digest, provenance, write_json
from ..names import DENSE
from .network import NetworkJob

log = logging.getLogger("snntopo.stages")

#: parameters that do not change the trained weights (a restored state is valid across them)
_NOT_RESULT = ("device", "data_root", "download", "mask")


class TrainingBusy(CheckpointError):
    """Another process is training the same network."""


@contextlib.contextmanager
def training_lock(checkpoint: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold an exclusive, non-blocking lock on ``<checkpoint>.lock`` for the duration.

    ``flock`` locks belong to the open file: the kernel releases them when the holder exits,
    however it dies, so a stale lock file never blocks a rerun.
    """
    import fcntl

    lock = Path(f"{checkpoint}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            raise TrainingBusy(
                f"{checkpoint}: this network is already being trained ({holder}); wait for it to "
                f"finish or stop that process, then rerun"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}".encode(), 0)
        yield lock
    finally:
        os.close(fd)  # releases the lock


def attempts_log(checkpoint: str | os.PathLike[str]) -> Path:
    """The log that every training attempt of one network appends to (``checkpoint.log``)."""
    return Path(checkpoint).with_suffix(".log")


def _replay_earlier_attempts(checkpoint: str | os.PathLike[str]) -> None:
    """Copy the lines of earlier attempts into this job's log (Snakemake deleted the old one)."""
    path = attempts_log(checkpoint)
    if not path.is_file():
        return
    lines = path.read_text(errors="replace").splitlines()
    if lines:
        log.info("earlier attempts of this training (%s):", path)
        for line in lines:
            log.info("| %s", line)


def final_state_key(params: dict[str, Any], mask_bits: str | None) -> str:
    """What a finished training depends on: the mask's bits (:func:`snntopo.artifacts.
    mask_digest`, so a mask recomputed with the same bits matches), the result-relevant
    parameters and the training code (editing the trainer retrains, as the rule's ``code`` param
    asks)."""
    from ..codedigest import stage_code

    relevant = {k: v for k, v in params.items() if k not in _NOT_RESULT}
    blob = json.dumps(
        {
            "mask": mask_bits,
            "params": relevant,
            "code": stage_code("train", dataset=params["dataset"], arch=params["arch"]),
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def final_state_path(checkpoint: str | os.PathLike[str], key: str) -> Path:
    return Path(checkpoint).parent / f"trained-{key}.safetensors"


def _keep_final_state(out_model: str, keyed: Path) -> None:
    """Hard-link the finished model beside the checkpoint (copy where links are impossible) and
    drop the keyed states of other keys (superseded trainings of this network)."""
    import shutil

    tmp = keyed.with_name(f".{keyed.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(out_model, tmp)
    except OSError:
        shutil.copyfile(out_model, tmp)
    os.replace(tmp, keyed)
    for old in keyed.parent.glob("trained-*.safetensors"):
        if old != keyed:
            old.unlink(missing_ok=True)


def _restore_final_state(
    keyed: Path,
    out_model: str,
    out_summary: str,
    expected: dict[str, Any],
    out_history: str | None = None,
    tensorboard: bool = False,
) -> bool:
    """Write both outputs from a keyed final state; ``False`` if it is unusable."""
    from ..artifacts import check_recorded, load_trained_meta, weights_network
    from ..io import atomic_path

    try:
        meta = load_trained_meta(keyed)
        check_recorded(weights_network(meta), expected, str(keyed))
    except ArtifactError as exc:
        log.warning("ignoring the stored final state: %s", exc)
        return False
    Path(out_model).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_model) as tmp:
        tmp.unlink()
        try:
            os.link(keyed, tmp)
        except OSError:
            import shutil

            shutil.copyfile(keyed, tmp)
    summary = {k: v for k, v in meta.items() if k != "params"}
    _write_history(summary.get("history", []), out_summary, out_history, tensorboard, replay=True)
    write_json(out_summary, summary)
    log.info("restored the finished training from %s (same mask, recipe and code)", keyed)
    return True


def tensorboard_dir(out_summary: str | os.PathLike[str]) -> Path:
    """Where a network's TensorBoard event files go: ``tensorboard/`` beside ``train.json``."""
    return Path(out_summary).parent / "tensorboard"


def _write_history(
    history: list[dict[str, Any]],
    out_summary: str,
    out_history: str | None,
    tensorboard: bool,
    replay: bool,
) -> None:
    """``history.csv`` (when asked) and, for a restored training with ``tensorboard`` on, its
    event files from the stored history."""
    from ..train.history import TensorBoardLog, write_history_csv

    if out_history:
        write_history_csv(out_history, history)
    if tensorboard and replay:
        tb = TensorBoardLog(tensorboard_dir(out_summary))
        try:
            tb.replay(history)
        finally:
            tb.close()


def _check_trained_finite(model: Any, checkpoint: str) -> None:
    import torch

    from ..errors import NonFiniteError

    for name, t in model.state_dict().items():
        if t.is_floating_point():
            bad = int((~torch.isfinite(t)).sum())
            if bad:
                raise NonFiniteError(
                    f"training diverged: {name!r} holds {bad} NaN/Inf value(s) after training "
                    f"(nothing written; lower the learning rate, or delete {checkpoint} to restart)"
                )


def train_network(
    params: NetworkJob | Mapping[str, Any],
    mask_path: str | None,
    out_model: str,
    out_summary: str,
    checkpoint: str,
    log: Any = None,
    strict: bool = True,
    gpus: int = 0,
    out_history: str | None = None,
    tensorboard: bool = False,
) -> Any:
    """Train one network under the mask at ``mask_path`` (dense without one) and write
    ``model.safetensors`` and ``train.json``; returns the ``TrainResult`` (``None`` when a kept
    final state was restored instead of training).

    The ``train`` rule and ``snntopo train`` both call this, so both write the same artifacts: the
    network keys (method and sparsity from the mask, ``dense``/0 without one), accuracy, history,
    device, parameter counts and the realised sparsity of the mask. Resumes from ``checkpoint`` if
    a previous attempt left one, and removes it once the artifacts are written. See the module
    docstring for what protects a finished training. ``strict=False`` (``snntopo train``, whose
    mask may be made by hand) compares only the parameters the mask records. ``gpus`` is what the
    job was granted (the rule's ``gpu`` resource): see :func:`snntopo.train.job_device`.
    ``out_history``: also write the per-epoch history as CSV (:mod:`snntopo.train.history`);
    ``tensorboard``: write TensorBoard event files under ``tensorboard/`` beside ``out_summary``
    as each epoch ends (when ``torch.utils.tensorboard`` is importable).
    """
    import torch

    from ..artifacts import NETWORK_KEYS, SHAPE_KEYS, mask_digest, save_trained
    from ..data import load_dataset
    from ..pai.io import load_mask
    from ..train import TrainConfig, job_device, train_masked
    from ..train.history import TensorBoardLog

    job = NetworkJob.coerce(params)
    device = job_device(job.device, gpus)  # before any data is read: fail fast
    model = job.build_model()
    stage_params = job.params("train")
    # inputs first: a bad mask stops here, before anything is trained, written or removed
    masks, mask_meta = None, {}
    if mask_path:
        # the rule knows its grid point; ``snntopo train --mask`` takes method/sparsity from it
        keys = NETWORK_KEYS + SHAPE_KEYS
        if job.is_dense:
            keys = ("dataset", "arch", "seed", *SHAPE_KEYS)
        expected = {k: stage_params[k] for k in keys if k in stage_params}
        masks, mask_meta = load_mask(mask_path, model, expected=expected, require=strict)
        mask_meta = {**mask_meta, "mask_sha256": file_digest(mask_path)}
    cfg = TrainConfig.from_dict({**job.training, "device": str(device)})
    bits = mask_digest(masks) if masks else None
    keyed = final_state_path(checkpoint, final_state_key(stage_params, bits))
    expected_out = {
        "dataset": job.dataset,
        "arch": job.arch,
        "method": mask_meta.get("method", DENSE),
        "sparsity": float(mask_meta.get("sparsity", 0.0)),
        "seed": job.seed,
    }
    with training_lock(checkpoint):
        if keyed.is_file() and _restore_final_state(
            keyed, out_model, out_summary, expected_out, out_history, tensorboard
        ):
            return None
        _replay_earlier_attempts(checkpoint)
        attempts = attempts_log(checkpoint)
        attempts.parent.mkdir(parents=True, exist_ok=True)
        with open(attempts, "a") as fh:
            fh.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} attempt started (pid {os.getpid()})\n")
        common = dict(root=job.data_root, download=job.download, input_size=job.input_size)
        train_set = load_dataset(job.dataset, train=True, **common)
        test_set = load_dataset(job.dataset, train=False, **common)
        tb = TensorBoardLog(tensorboard_dir(out_summary)) if tensorboard else None
        try:
            result = train_masked(
                model,
                masks,
                train_set,
                test_set,
                cfg,
                seed=job.seed,
                checkpoint_path=checkpoint,
                log=_Tee(attempts, log),
                on_epoch=tb,
            )
        finally:
            if tb is not None:
                tb.close()
        _check_trained_finite(model, checkpoint)
        summary = {
            **expected_out,
            "accuracy": result.accuracy,
            "history": result.history,
            "realised_sparsity": mask_meta.get("realised_sparsity", 0.0),
            # auxiliary heads kept dense, out of the budget (the encode stage reads this list)
            **(
                {"outside_inference": mask_meta["outside_inference"]}
                if mask_meta.get("outside_inference")
                else {}
            ),
            "mask_sha256": mask_meta.get("mask_sha256"),
            "mask_digest": bits,
            "device": result.device,
            "amp": result.amp,
            "parameters": result.params,
            "training": cfg.to_dict(),
            "torch_version": torch.__version__,
            "provenance": provenance(**stage_params),
        }
        save_trained(out_model, model, masks, {**summary, "params": stage_params})
        _write_history(result.history, out_summary, out_history, tensorboard, replay=False)
        write_json(out_summary, summary)
        Path(checkpoint).unlink(missing_ok=True)
        _keep_final_state(out_model, keyed)
    return result


class _Tee:
    """Epoch lines to the attempts log and to the caller's ``log`` (a path or a callable)."""

    def __init__(self, attempts: Path, other: Any) -> None:
        self.attempts = attempts
        self.other = other

    def __call__(self, msg: str) -> None:
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {msg}\n"
        with open(self.attempts, "a") as fh:
            fh.write(line)
        if self.other is None:
            return
        if callable(self.other):
            self.other(msg)
        else:
            with open(self.other, "a") as fh:
                fh.write(line)
