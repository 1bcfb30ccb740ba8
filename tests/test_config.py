"""Config validation: bad input stops with a message that names the file, the key and the allowed
values; defaults are filled; registries and schema agree."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from snntopo.config import check_config, load_config, load_schema, training_settings
from snntopo.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def demo() -> dict:
    return yaml.safe_load((REPO / "config" / "demo.yaml").read_text())


def test_shipped_configs_are_valid():
    for name in ("config.yaml", "demo.yaml"):
        cfg = load_config(REPO / "config" / name)
        assert cfg["encode"]["mode"] == "exact"  # default filled from the schema


def test_paper_config_is_the_paper_grid():
    cfg = load_config(REPO / "config" / "config.yaml")
    assert cfg["architectures"] == ["conv6", "resnet20", "resnet32", "wrn28_2"]
    assert cfg["sparsities"] == [0.6, 0.8, 0.9, 0.95, 0.98]
    assert len(cfg["methods"]) == 7 and len(cfg["datasets"]) == 3 and cfg["seeds"] == [0, 1, 2]
    # the paper's recipe, with the per-architecture / per-data set exceptions of the paper
    assert training_settings(cfg, "cifar10", "resnet20")["weight_decay"] == 1e-4
    assert training_settings(cfg, "cifar10", "wrn28_2")["weight_decay"] == 5e-4
    tiny_conv6 = training_settings(cfg, "tinyimagenet", "conv6")
    assert tiny_conv6["epochs"] == 100 and tiny_conv6["milestones"] == [20, 60, 80]
    assert training_settings(cfg, "tinyimagenet", "resnet32")["milestones"] == [30, 60, 80]
    assert training_settings(cfg, "cifar100", "conv6")["milestones"] == [80, 120]


@pytest.mark.parametrize(
    ("mutate", "fragments"),
    [
        (lambda c: c.update(architectures=["resnet21"]), ["architectures[0]", "resnet20"]),
        (lambda c: c.update(methods=["snip", "grsap"]), ["methods[1]", "'grasp'", "synflow"]),
        (lambda c: c.update(datasets=["cifar11"]), ["datasets[0]", "cifar10"]),
        (lambda c: c.update(sparsities=[0.5, 1.0]), ["sparsities[1]", "out of range", "(0, 1)"]),
        (lambda c: c.update(sparsities=[0.0]), ["sparsities[0]", "out of range"]),
        (lambda c: c.update(sparsities=[-0.2]), ["sparsities[0]"]),
        (lambda c: c.pop("methods"), ["missing required key methods"]),
        (lambda c: c.update(sparsites=[0.5]), ["unknown key 'sparsites'", "'sparsities'"]),
        (lambda c: c["training"].update(epoch=3), ["unknown key 'training.epoch'", "'epochs'"]),
        (lambda c: c.update(encodings=["mge", "rolled_channel"]), ["rolled-channel"]),
        (lambda c: c["training"].update(lr=-1), ["training.lr"]),
        (lambda c: c.update(seeds=[0, "one"]), ["seeds[1]"]),
        (
            lambda c: c["training"].update(milestones=[3, 2]),
            ["training (dataset digits, arch resnet20).milestones", "strictly increasing"],
        ),
        (
            lambda c: c["training"].update(milestones=[4, 4]),
            ["training (dataset digits, arch resnet20).milestones", "strictly increasing"],
        ),
        (lambda c: c["training"].update(momentum=1), ["momentum", "[0, 1)"]),
        (lambda c: c.update(device="tpu"), ["device", "cuda"]),
    ],
)
def test_bad_config_names_key_and_allowed_values(demo, mutate, fragments):
    cfg = copy.deepcopy(demo)
    mutate(cfg)
    with pytest.raises(ConfigError) as err:
        check_config(cfg, source="config/demo.yaml")
    msg = str(err.value)
    assert msg.startswith("config/demo.yaml"), msg
    for frag in fragments:
        assert frag in msg, (frag, msg)


def test_missing_and_unparsable_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("datasets: [digits\n")
    with pytest.raises(ConfigError, match=str(bad)):
        load_config(bad)


def test_schema_names_come_from_registries():
    from snntopo.data import DATASETS
    from snntopo.encode import ENCODINGS
    from snntopo.metrics import FAMILIES
    from snntopo.models import MODELS
    from snntopo.pai import METHODS

    schema = load_schema()
    props = schema["properties"]
    assert props["architectures"]["items"]["enum"] == MODELS.names()
    assert props["methods"]["items"]["enum"] == METHODS.names()
    assert props["datasets"]["items"]["enum"] == DATASETS.names()
    assert props["encodings"]["items"]["enum"] == ENCODINGS.names()
    assert props["metrics"]["properties"]["families"]["items"]["enum"] == FAMILIES.names()
    # and the static file spells out no names, so it cannot drift from the registries
    static = load_schema(use_registries=False)["properties"]
    assert "enum" not in static["methods"]["items"]
    assert "enum" not in static["architectures"]["items"]
