"""torchvision:<name> and module:<path>:<fn> architectures: names, slugs, config, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torchvision

from snntopo.config import check_config, load_config
from snntopo.errors import ConfigError
from snntopo.models import build_model
from snntopo.models.external import TORCHVISION_CLASSIFIERS, slug, unslug, validate_name

TESTS = Path(__file__).parent
ROOT = TESTS.parent


def test_static_list_is_torchvisions_classification_list():
    assert sorted(TORCHVISION_CLASSIFIERS) == sorted(
        torchvision.models.list_models(module=torchvision.models)
    )


@pytest.mark.parametrize(
    ("name", "s"),
    [
        ("torchvision:resnet18", "torchvision__resnet18"),
        ("module:pkg.sub.mod:make_net", "module__pkg.sub.mod__make_net"),
        ("resnet20", "resnet20"),
    ],
)
def test_slug_is_path_safe_and_reversible(name, s):
    assert slug(name) == s and unslug(s) == name
    assert ":" not in slug(name) and "/" not in slug(name)


def test_unknown_torchvision_name_did_you_mean():
    with pytest.raises(ConfigError, match="did you mean 'torchvision:resnet18'"):
        validate_name("torchvision:resnet81")
    with pytest.raises(ConfigError, match="module:<dotted.module.path>:<callable>"):
        validate_name("module:no-callable")


def test_build_torchvision_and_module():
    m = build_model("torchvision:resnet18", num_classes=7, in_channels=1, input_size=16, seed=0)
    assert m.fc.out_features == 7 and m.conv1.in_channels == 1
    sys.path.insert(0, str(TESTS))
    try:
        u = build_model("module:user_models:make", num_classes=5, kwargs={"hidden": 6}, seed=0)
    finally:
        sys.path.remove(str(TESTS))
    assert u[-1].out_features == 5 and u[0].out_channels == 6


def test_config_accepts_external_and_rejects_typos():
    cfg = load_config(ROOT / "config" / "demo.yaml")
    raw = {k: v for k, v in cfg.items()}
    raw["architectures"] = ["resnet20", "torchvision:resnet18", "module:user_models:make"]
    raw["model"] = {
        **cfg["model"],
        "kwargs": {"torchvision:resnet18": {"zero_init_residual": True}},
    }
    out = check_config(raw, source="x.yaml")
    assert out["architectures"][1] == "torchvision:resnet18"
    raw["architectures"] = ["torchvision:vgg16bn"]
    with pytest.raises(
        ConfigError, match=r"x.yaml: architectures.*did you mean 'torchvision:vgg16_bn'"
    ):
        check_config(raw, source="x.yaml")


def test_cli_encode_and_metrics_with_users_module(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(TESTS)])}
    run = [sys.executable, "-m", "snntopo.cli"]
    g = tmp_path / "g.npz"
    out = subprocess.run(
        [*run, "encode", "--arch", "module:user_models:make", "--dataset", "digits",
         "--method", "erk", "--sparsity", "0.5", "--encoding", "mge", "--out", str(g)],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    line = json.loads(out.stdout.strip().splitlines()[-1])
    assert line["nodes"] == 3 * 16 * 16 + 4 * 16 * 16 + 10
    subprocess.run(
        [*run, "metrics", str(g), "--families", "local", "strength", "--out", str(tmp_path / "m.json")],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    m = json.loads((tmp_path / "m.json").read_text())
    assert m  # a metrics artifact was written
    bad = subprocess.run(
        [*run, "encode", "--arch", "module:user_models:make_unsupported", "--dataset", "digits",
         "--encoding", "mge", "--out", str(tmp_path / "c.npz")],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert "permute" in bad.stderr and "module:user_models:make_unsupported" in bad.stderr
    assert not (tmp_path / "c.npz").exists()


def test_cli_same_padding_and_shape_flatten_encode_and_metrics(tmp_path):
    """A user module with a 4x4 padding='same' stem and x.view(x.shape[0], -1) goes through
    ``snntopo encode`` and ``snntopo metrics`` (the graph file is readable by the metrics)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(TESTS)])}
    run = [sys.executable, "-m", "snntopo.cli"]
    g = tmp_path / "g.npz"
    out = subprocess.run(
        [*run, "encode", "--arch", "module:user_models:make_same", "--dataset", "digits",
         "--method", "erk", "--sparsity", "0.5", "--encoding", "mge", "--out", str(g)],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    line = json.loads(out.stdout.strip().splitlines()[-1])
    # digits: 3x16x16 input; stem 4x16x16 ('same'), conv 4x8x8, fc 10
    assert line["nodes"] == 3 * 16 * 16 + 4 * 16 * 16 + 4 * 8 * 8 + 10
    m = tmp_path / "m.json"
    res = subprocess.run(
        [*run, "metrics", str(g), "--families", "local", "strength", "expansion", "--out", str(m)],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    fams = json.loads(m.read_text())
    assert fams and "Traceback" not in res.stderr


def _job(argv):
    import argparse

    from snntopo.cli.options import add_network_arguments, job_from_args

    parser = argparse.ArgumentParser()
    add_network_arguments(parser, method_default="erk")
    return job_from_args(parser.parse_args(argv))


def test_cli_model_kwargs_reach_the_constructor(tmp_path):
    sys.path.insert(0, str(TESTS))
    try:
        job = _job(["--arch", "module:user_models:make", "--dataset", "digits",
                    "--model-kwargs", "hidden=6"])  # fmt: skip
        assert job.model_kwargs == {"hidden": 6}
        assert job.params("spec")["model_kwargs"] == {"hidden": 6}
        assert job.build_model()[0].out_channels == 6
    finally:
        sys.path.remove(str(TESTS))
    tv = _job(["--arch", "torchvision:mobilenet_v2", "--dataset", "digits",
               "--model-kwargs", "dropout=0.3", "--model-kwargs", "width_mult=0.5"])  # fmt: skip
    assert tv.model_kwargs == {"dropout": 0.3, "width_mult": 0.5}
    m = tv.build_model()
    assert m.classifier[0].p == 0.3 and m.features[0][0].out_channels == 16  # 32 * 0.5
    # flags override the config's model.kwargs key by key
    cfg = tmp_path / "c.yaml"
    raw = load_config(ROOT / "config" / "examples" / "torchvision.yaml")
    raw["model"]["kwargs"] = {"torchvision:resnet18": {"zero_init_residual": True, "groups": 1}}
    import yaml

    cfg.write_text(yaml.safe_dump(raw))
    job = _job(["--config", str(cfg), "--arch", "torchvision:resnet18", "--dataset", "digits",
                "--model-kwargs", "groups=1", "--model-kwargs", "zero_init_residual=false"])  # fmt: skip
    assert job.model_kwargs == {"zero_init_residual": False, "groups": 1}


def test_cli_model_kwargs_errors():
    with pytest.raises(
        ConfigError, match="--model-kwargs: architecture 'resnet20' is not external"
    ):
        _job(["--arch", "resnet20", "--dataset", "digits", "--model-kwargs", "x=1"])
    with pytest.raises(ConfigError, match="--model-kwargs 'dropout': expected KEY=VALUE"):
        _job(["--arch", "torchvision:resnet18", "--dataset", "digits", "--model-kwargs", "dropout"])
    job = _job(["--arch", "torchvision:resnet18", "--dataset", "digits",
                "--model-kwargs", "no_such_arg=1"])  # fmt: skip
    with pytest.raises(ConfigError, match="torchvision:resnet18.*no_such_arg"):
        job.build_model()
