"""Red team, round three (docs/guarantees.md): the config checks the issue named (milestones past
the epochs, a batch larger than the data set, ``model.kwargs`` of a bundled model), temporary files
of an interrupted writer (SIGTERM: removed by the handler; SIGKILL: swept by the next write), and
41 new bad inputs and faults, each run through the command a user reaches."""

from __future__ import annotations

import os
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
        "(1 of the grid's 1 (dataset, arch) pairs); the learning rate is not decayed there"
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


def test_train_cli_checks_the_recipe_against_the_data(tmp_path, capsys, caplog):
    """``snntopo train`` runs the config check's rule (one function) on its final recipe."""
    from snntopo.cli import main

    base = ["train", "--arch", "resnet20", "--dataset", "digits", "--width", "0.25",
            "--input-size", "8", "--device", "cpu", "--out", str(tmp_path / "t")]  # fmt: skip
    assert main([*base, "--batch-size", "1500"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "snntopo train: error: training.batch_size: 1500 is larger than the 1,437 training "
        "images of digits; every epoch would be one batch of 1,437 (lower training.batch_size)"
    )
    assert not (tmp_path / "t").exists()
    with caplog.at_level("WARNING", logger="snntopo.config"):
        assert main([*base, "--epochs", "1", "--limit-batches", "1"]) == 0
    assert [r.getMessage() for r in caplog.records if r.name == "snntopo.config"] == [
        "warning: training.milestones: [80, 120] never take effect in 1 epoch(s); the learning "
        "rate is not decayed there"
    ]


def test_the_tables_seed_bound_is_the_configs():
    from snntopo.analysis import table_checks
    from snntopo.config import MAX_SEED

    assert table_checks.MAX_SEED == MAX_SEED == 4_294_967_295


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
    # the signals' default actions in the writer even when this run was started under nohup
    # (SIGHUP ignored and inherited: a writer that ignores it is right not to die of it)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(out)],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: [
            signal.signal(s, signal.SIG_DFL) for s in (signal.SIGHUP, signal.SIGTERM)
        ],
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


def test_sigkill_during_the_report_figure_then_the_next_figure_run(fx, tmp_path):
    """The fault the issue named: kill -9 while a figure is written left a 4.5 MB temporary in
    figures/ for good. The next run of the report's figure writer (``plot_graph``) sweeps it."""
    from snntopo.stages.report import plot_graph

    figures = tmp_path / "figures"
    proc = _start_writer(tmp_path, figures / "mge.png")
    proc.kill()
    assert proc.wait(30) == -signal.SIGKILL
    (left,) = _temps(figures)
    assert (figures / left).stat().st_size == 4_500_000
    plot_graph(str(fx / "mge.npz"), str(figures / "mge.png"))
    assert sorted(p.name for p in figures.iterdir()) == ["mge.png"]


def test_a_long_final_name_still_gets_a_temporary_file(tmp_path):
    from snntopo.io import atomic_path

    out = tmp_path / ("n" * 250 + ".png")
    with atomic_path(out) as tmp:
        assert len(tmp.name.encode()) <= 255
        tmp.write_bytes(b"png")
    assert out.read_bytes() == b"png"


# -- red team, round three: 41 new bad inputs and faults ------------------------------------------
#
# Each case: what a user (or a hostile file) does, the outcome before the fix (as in
# docs/guarantees.md, "Red team, round 3"), and what must happen now: exit 2 with one error line
# naming the thing (``error``), or a legitimate success with a checked result (``ok``).

GOOD_CONFIG = (
    "datasets: [digits]\narchitectures: [resnet20]\nmethods: [erk, snip, synflow]\n"
    "sparsities: [0.5, 0.9]\nseeds: [0]\nmodel: {width: 0.25, input_size: {digits: 8}}\n"
)
TINY = ["--arch", "resnet20", "--dataset", "digits", "--width", "0.25", "--input-size", "8"]


@pytest.fixture(scope="module")
def fx(tmp_path_factory) -> Path:
    """The tiny ResNet-20's spec, mask, init and MGE graph; synthetic canonical tables, a
    predictor fit on them and a metric file of a new method to predict."""
    from test_predictor import fitted_with_new_metrics
    from tiny_job import TINY_DIGITS_JOB

    from snntopo.stages import encode_network, make_mask
    from snntopo.stages.spec import make_spec

    d = tmp_path_factory.mktemp("red-team")
    net = {"dataset": "digits", "arch": "resnet20", "method": "erk", "sparsity": 0.5, "seed": 0}
    job = {**TINY_DIGITS_JOB, "method": "erk", "sparsity": 0.5, "seed": 0}
    make_spec(job, str(d / "layers.json"))
    make_mask(job, str(d / "mask.safetensors"), str(d / "init.safetensors"))
    encode_network(
        "mge", str(d / "layers.json"), str(d / "init.safetensors"), {"network": net},
        str(d / "mge.npz"),
    )  # fmt: skip
    fitted_with_new_metrics(d)
    return d


def _metrics_variant(fx: Path, w: Path, edit) -> Path:
    import json

    m = json.loads((fx / "m.json").read_text())
    edit(m)
    (w / "r.json").write_text(json.dumps(m))
    return w / "r.json"


def _tables(fx: Path, w: Path) -> Path:
    import shutil

    shutil.copytree(fx / "tables", w / "t")
    return w / "t"


def _csv_edit(path: Path, edit) -> None:
    import pandas as pd

    df = pd.read_csv(path)
    edit(df)
    df.to_csv(path, index=False)


def _gz_truncated(t: Path) -> None:
    import gzip

    data = gzip.compress((t / "networks.csv").read_bytes())
    (t / "networks.csv").unlink()
    (t / "networks.csv.gz").write_bytes(data[: len(data) // 2])


def _constant_features(df) -> None:
    df["signal"] = 1.0
    df["noise"] = 2.0


def _config(w: Path, text: str | bytes) -> str:
    p = w / "c.yaml"
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(p)


def _mask(w: Path, *extra: str) -> list[str]:
    return ["mask", *TINY, "--method", "erk", "--sparsity", "0.5", *extra, "--out", str(w / "m.st")]


def _mask_cfg(w: Path, text: str | bytes) -> list[str]:
    return ["mask", "--arch", "resnet20", "--dataset", "digits", "--config", _config(w, text),
            "--method", "erk", "--sparsity", "0.5", "--out", str(w / "m.st")]  # fmt: skip


def _encode(w: Path, *extra: str) -> list[str]:
    return ["encode", "--encoding", "mge", *TINY, "--method", "erk", "--sparsity", "0.5", *extra,
            "--out", str(w / "g.npz")]  # fmt: skip


def _metrics(fx: Path, w: Path, graph: Path | None = None, *extra: str, out=None) -> list[str]:
    graph = graph or fx / "mge.npz"
    return ["metrics", str(graph), "--families", "local", *extra, "--out", str(out or w / "o.json")]


def _predict(fx: Path, w: Path, *metrics: Path, pred: Path | None = None) -> list[str]:
    files = [str(m) for m in metrics] or [str(fx / "m.json")]
    return ["predict", "--predictor", str(pred or fx / "pred"), *files, "--out", str(w / "o")]


def _fit(t: Path, w: Path, *extra: str) -> list[str]:
    return ["fit", "--mode", "exact", "--tables", str(t), *extra, "--out", str(w / "p")]


def _symlink_loop(w: Path) -> Path:
    os.symlink(w / "g.npz", w / "g.npz")
    return w / "g.npz"


def _unicode_copy(fx: Path, w: Path) -> Path:
    import shutil

    u = w / "résumé ü"
    u.mkdir()
    shutil.copy(fx / "mge.npz", u / "größe.npz")
    return u / "größe.npz"


# (id, what, outcome before, setup(fx, w) -> argv, expected: "error: <fragment>" or "ok")
CASES = [
    ("RT01", "metrics: the graph path is a directory", "clear error",
     lambda fx, w: _metrics(fx, w, w), "error: unreadable or truncated graph file"),
    ("RT02", "metrics: the graph is an empty file", "clear error",
     lambda fx, w: (w / "g.npz").write_bytes(b"") and None or _metrics(fx, w, w / "g.npz"),
     "error: unreadable or truncated graph file"),
    ("RT03", "metrics: the graph is a symlink to itself", "traceback (RuntimeError)",
     lambda fx, w: _metrics(fx, w, _symlink_loop(w)), "error: cannot resolve the path"),
    ("RT04", "metrics: --param eigsh_tol=NaN", "ran for hours (NaN passes the range check)",
     lambda fx, w: _metrics(fx, w, None, "--param", "eigsh_tol=NaN"),
     "error: --param eigsh_tol=nan is not a finite number"),
    ("RT05", "metrics: --param eigsh_maxiter=1e400", "clear error",
     lambda fx, w: _metrics(fx, w, None, "--param", "eigsh_maxiter=1e400"),
     "error: --param eigsh_maxiter=inf is not a finite number"),
    ("RT06", "metrics: --out with a 300-byte file name", "traceback (OSError ENAMETOOLONG)",
     lambda fx, w: _metrics(fx, w, out=w / ("o" * 300 + ".json")),
     "error: file name too long"),
    ("RT07", "metrics: --out is an existing directory", "clear error",
     lambda fx, w: (w / "o.json").mkdir() or _metrics(fx, w),
     "error: --out"),
    ("RT08", "metrics: --out below a regular file", "clear error",
     lambda fx, w: (w / "f").write_text("x") and _metrics(fx, w, out=w / "f" / "o.json"),
     "error: --out"),
    ("RT09", "metrics: unicode directory and file names", "accepted (correct)",
     lambda fx, w: _metrics(fx, w, _unicode_copy(fx, w), out=w / "résumé ü" / "ö.json"), "ok"),
    ("RT10", "metrics: --families local local",
     "silently different (computed twice, written as a two-family file without its digest)",
     lambda fx, w: ["metrics", str(fx / "mge.npz"), "--families", "local", "local",
                    "--out", str(w / "o.json")], "ok"),
    ("RT11", "mask: --sparsity 1e-400", "silently wrong (underflows to 0: the dense network)",
     lambda fx, w: ["mask", *TINY, "--method", "erk", "--sparsity", "1e-400",
                    "--out", str(w / "m.st")],
     "error: argument --sparsity: 1e-400 underflows to 0"),
    ("RT12", "mask: --width 1e-9", "silently wrong (every layer 1 channel, width 1e-9 recorded)",
     lambda fx, w: ["mask", "--arch", "resnet20", "--dataset", "digits", "--width", "1e-9",
                    "--input-size", "8", "--method", "erk", "--sparsity", "0.5",
                    "--out", str(w / "m.st")],
     "error: width 1e-09 leaves a 16-channel layer with no channel"),
    ("RT13", "mask: --input-size 100000", "traceback (torch asks for 72 TB)",
     lambda fx, w: ["mask", "--arch", "resnet20", "--dataset", "digits", "--width", "0.25",
                    "--input-size", "100000", "--method", "erk", "--sparsity", "0.5",
                    "--out", str(w / "m.st")],
     "error: argument --input-size: 100000 is too large; at most 256"),
    ("RT14", "mask: --arch ''", "clear error",
     lambda fx, w: ["mask", "--arch", "", "--dataset", "digits", "--method", "erk",
                    "--sparsity", "0.5", "--out", str(w / "m.st")],
     "error: unknown architecture ''"),
    ("RT15", "mask: --config is a directory", "clear error",
     lambda fx, w: ["mask", "--arch", "resnet20", "--dataset", "digits", "--config", str(w),
                    "--method", "erk", "--sparsity", "0.5", "--out", str(w / "m.st")],
     "error: "),
    ("RT16", "mask: --config is an empty file", "clear error",
     lambda fx, w: _mask_cfg(w, ""), "error: "),
    ("RT17", "mask: --config is a YAML list", "clear error",
     lambda fx, w: _mask_cfg(w, "- a\n- b\n"), "not a mapping"),
    ("RT18", "mask: --config starts with a UTF-8 byte-order mark", "accepted (valid YAML)",
     lambda fx, w: _mask_cfg(w, b"\xef\xbb\xbf" + GOOD_CONFIG.encode()), "ok"),
    ("RT19", "config: seeds [0, 0]", "clear error",
     lambda fx, w: _mask_cfg(w, GOOD_CONFIG.replace("seeds: [0]", "seeds: [0, 0]")),
     "seeds: [0, 0] has non-unique elements"),
    ("RT20", "config: a training override that matches no (dataset, arch) of the grid",
     "accepted without a word (never applied)",
     lambda fx, w: _mask_cfg(w, GOOD_CONFIG + "training:\n  overrides:\n"
                             "    - match: {arch: resnet32}\n      set: {lr: 0.5}\n"),
     "ok"),
    ("RT21", "config: model.width 1e-9", "silently wrong (every layer 1 channel)",
     lambda fx, w: _mask_cfg(w, GOOD_CONFIG.replace("width: 0.25", "width: 1.0e-9")),
     "error: width 1e-09 leaves a 16-channel layer with no channel"),
    ("RT22", "encode: --spec holds JSON null", "clear error",
     lambda fx, w: (w / "s.json").write_text("null") and _encode(
         w, "--mask", str(fx / "mask.safetensors"), "--spec", str(w / "s.json")),
     "expected a JSON object"),
    ("RT23", "encode: --spec is a graph .npz", "clear error",
     lambda fx, w: _encode(w, "--mask", str(fx / "mask.safetensors"), "--spec",
                           str(fx / "mge.npz")), "not UTF-8 text"),
    ("RT24", "encode: --mask is the layer spec", "clear error",
     lambda fx, w: _encode(w, "--mask", str(fx / "layers.json")), "unreadable mask file"),
    ("RT25", "encode: --checkpoint is an empty file", "clear error",
     lambda fx, w: (w / "c.pt").write_bytes(b"") or _encode(w, "--checkpoint", str(w / "c.pt")),
     "unreadable weights file"),
    ("RT26", "predict: --predictor is a directory without predictor.json", "clear error",
     lambda fx, w: _predict(fx, w, pred=w), "cannot read predictor"),
    ("RT27", "predict: the metric file given is the predictor", "clear error",
     lambda fx, w: _predict(fx, w, fx / "pred" / "predictor.json"), "not a metric file"),
    ("RT28", "predict: metrics of another encoding (rolled)", "clear error",
     lambda fx, w: _predict(fx, w, _metrics_variant(
         fx, w, lambda m: m.update(encodings={"rolled": m["encodings"]["mge"]}))),
     "hold no mge metrics"),
    ("RT29", "predict: reference-mode metrics for an exact-mode predictor", "clear error",
     lambda fx, w: _predict(fx, w, _metrics_variant(
         fx, w, lambda m: m["encodings"]["mge"].update(mode="reference"))),
     "made in mode 'reference', but the predictor was fit on mode 'exact'"),
    ("RT30", "predict: the same network in two metric files", "clear error",
     lambda fx, w: _predict(fx, w, fx / "m.json", _metrics_variant(fx, w, lambda m: None)),
     "also come from"),
    ("RT31", "predict: a metric file with a UTF-8 byte-order mark", "clear error",
     lambda fx, w: (w / "b.json").write_bytes(b"\xef\xbb\xbf" + (fx / "m.json").read_bytes())
     and _predict(fx, w, w / "b.json"), "not valid JSON"),
    ("RT32", "predict: --out is an existing file", "traceback (FileExistsError)",
     lambda fx, w: (w / "o").write_text("x") and _predict(fx, w), "o: File exists"),
    ("RT33", "predict: a feature is null", "accepted, recorded (imputed, in predictions.csv)",
     lambda fx, w: _predict(fx, w, _metrics_variant(
         fx, w, lambda m: m["encodings"]["mge"]["network"].update(signal=None))), "ok"),
    ("RT34", "fit: networks.csv.gz cut in half", "traceback (EOFError)",
     lambda fx, w: (_gz_truncated(t := _tables(fx, w)), _fit(t, w))[1],
     "networks.csv.gz: cannot read table (Compressed file ended"),
    ("RT35", "fit: mge.csv in UTF-16", "clear error",
     lambda fx, w: ((t := _tables(fx, w)) / "mge.csv").write_bytes(
         (t / "mge.csv").read_text().encode("utf-16")) and _fit(t, w), "cannot read table"),
    ("RT36", "fit: --exclude-features with a typo (sigal)",
     "silently wrong (nothing excluded, signal kept in the model)",
     lambda fx, w: _fit(fx / "tables", w, "--exclude-features", "sigal"),
     "error: --exclude-features: 'sigal' is not an MGE column of the tables; did you mean "
     "'signal'?"),
    ("RT37", "fit: --exclude-features every feature", "accepted without a word (no feature)",
     lambda fx, w: _fit(fx / "tables", w, "--exclude-features", "signal", "noise"),
     "no MGE feature is left that varies"),
    ("RT38", "fit: every feature column constant", "accepted without a word (no feature)",
     lambda fx, w: (_csv_edit((t := _tables(fx, w)) / "mge.csv", _constant_features),
                    _fit(t, w))[1],
     "no MGE feature is left that varies"),
    ("RT39", "analyze: --splits 1000 on 24 configurations",
     "silently wrong (24 folds run, the summary says 1000-fold CV)",
     lambda fx, w: ["analyze", "--tables", str(fx / "tables"), "--out", str(w / "a"),
                    "--splits", "1000", "--no-figures"],
     "n_splits: 1000 folds, but the tables hold 24 configurations"),
    ("RT40", "analyze: --seed -1", "traceback (numpy: Seed must be between 0 and 2**32 - 1)",
     lambda fx, w: ["analyze", "--tables", str(fx / "tables"), "--out", str(w / "a"),
                    "--seed", "-1", "--no-figures"],
     "argument --seed: -1 is out of range"),
]  # fmt: skip


def _written(w: Path, before: set[Path]) -> list[Path]:
    return sorted(p for p in w.rglob("*") if p not in before and p.is_file())


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_red_team(fx, tmp_path, capsys, caplog, case):
    from snntopo.cli import main

    cid, what, before, setup, expected = case
    w = tmp_path / cid
    w.mkdir()
    argv = setup(fx, w)
    inputs = {p for p in w.rglob("*")}
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse's own errors (exit 2 and its usage line)
        rc = exc.code
    out, err = capsys.readouterr()
    err += "".join(f"{r.getMessage()}\n" for r in caplog.records)  # logging, as on stderr
    assert "Traceback" not in err, err
    if expected == "ok":
        assert rc == 0, err
        check_ok(cid, fx, w, out, err)
        return
    errors = [line for line in err.splitlines() if "error:" in line]
    assert rc == 2 and len(errors) == 1, err
    assert errors[0].startswith(f"snntopo {argv[0]}: error: "), errors[0]
    assert expected.removeprefix("error: ") in errors[0], errors[0]
    assert _written(w, inputs) == []  # nothing written, not even a temporary file


def check_ok(cid: str, fx: Path, w: Path, out: str, err: str) -> None:
    """The independent truth of each accepted case."""
    import json

    import pandas as pd

    if cid in ("RT09", "RT10"):
        from snntopo.cli import main

        ref = w / "ref.json"
        assert main(["metrics", str(fx / "mge.npz"), "--families", "local", "--out", str(ref)]) == 0
        got = w / ("résumé ü/ö.json" if cid == "RT09" else "o.json")
        a, b = json.loads(got.read_text()), json.loads(ref.read_text())
        # the one-family file, with its digest, equal to a plain run's but for timing
        assert a["family"] == b["family"] == "local" and "content_sha256" in a
        same = ("family", "encoding", "mode", "network", "layers", "nan_reasons")
        assert {k: a[k] for k in same} == {k: b[k] for k in same}
    elif cid == "RT18":
        from safetensors.numpy import load_file

        from snntopo.cli import main

        ref = w / "ref.st"
        argv = ["mask", "--arch", "resnet20", "--dataset", "digits", "--config",
                _config(w, GOOD_CONFIG), "--method", "erk", "--sparsity", "0.5", "--out", str(ref)]  # fmt: skip
        assert main(argv) == 0
        a, b = load_file(str(w / "m.st")), load_file(str(ref))
        assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    elif cid == "RT20":
        assert "training.overrides[0]: match {'arch': 'resnet32'} fits no (dataset, arch)" in err
    elif cid == "RT33":
        pred = pd.read_csv(w / "o" / "predictions.csv")
        assert list(pred["imputed"]) == ["signal"]
    else:  # pragma: no cover
        raise AssertionError(cid)


def test_red_team_file_size_limit(fx, tmp_path):
    """RT41 (a 41st, in its own process): a full disk stands in as ``ulimit -f`` (RLIMIT_FSIZE):
    before, an ``OSError: File too large`` traceback; now one line, and no temporary file."""
    code = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (512, 512))\n"
        "from snntopo.cli import main\n"
        f"sys.exit(main(['metrics', {str(fx / 'mge.npz')!r}, '--families', 'local', "
        f"'--out', {str(tmp_path / 'o.json')!r}]))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    errors = [line for line in r.stderr.splitlines() if "error:" in line]
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert errors == [
        "snntopo metrics: error: file too large for the file system or the process's file size "
        "limit (ulimit -f); nothing half-written was left behind"
    ]
    assert list(tmp_path.iterdir()) == []
