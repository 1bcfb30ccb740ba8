"""Config files are read as strict YAML: a key twice in one mapping, an alias bomb, bytes that are
not UTF-8 and a NaN each end in one ConfigError line naming the file (and the key)."""

from __future__ import annotations

import pytest

from snntopo.config import load_config
from snntopo.errors import ConfigError
from snntopo.overrides import MAX_YAML_NODES, strict_yaml

GOOD = (
    "datasets: [digits]\narchitectures: [resnet20]\nmethods: [erk, snip]\nsparsities: [0.5]\n"
    "seeds: [0]\nanalysis: {n_splits: 2}\n"
)


def _load(tmp_path, data: bytes | str):
    p = tmp_path / "c.yaml"
    p.write_bytes(data.encode() if isinstance(data, str) else data)
    with pytest.raises(ConfigError) as err:
        load_config(p)
    msg = str(err.value)
    assert msg.startswith(f"{p}: ") and "\n" not in msg
    return msg


def test_good_config_loads(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(GOOD)
    assert load_config(p)["sparsities"] == [0.5]


def test_duplicate_key_top_level(tmp_path):
    msg = _load(tmp_path, GOOD + "seeds: [1]\n")
    assert "key 'seeds' is given twice in one mapping (lines 5 and 7)" in msg


def test_duplicate_key_nested(tmp_path):
    msg = _load(tmp_path, GOOD + "training:\n  epochs: 3\n  epochs: 4\n")
    assert "key 'epochs' is given twice" in msg and "(lines 8 and 9)" in msg


def test_billion_laughs_refused_before_expansion(tmp_path):
    lines = ["a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    for prev, name in zip("abcdefgh", "bcdefghi", strict=False):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]")
    # 10**9 values once expanded, under model.kwargs as in the red team's file
    text = GOOD + "model:\n  kwargs:\n" + "".join(f"    {line}\n" for line in lines)
    msg = _load(tmp_path, text)
    assert f"expand to more than {MAX_YAML_NODES:,} values" in msg


def test_small_aliases_still_allowed():
    values = strict_yaml("base: &b {x: 1}\nother: *b\n", "c.yaml")
    assert values == {"base": {"x": 1}, "other": {"x": 1}}


def test_non_utf8_byte(tmp_path):
    msg = _load(tmp_path, b"datasets: [dig\xffits]\n")
    assert "not UTF-8 text (byte 0xff at offset 14)" in msg


def test_nan_sparsity_names_the_key(tmp_path):
    msg = _load(tmp_path, GOOD.replace("[0.5]", "[.nan]"))
    assert "sparsities[0]: nan is not a finite number" in msg


def test_inf_in_training_names_the_key(tmp_path):
    msg = _load(tmp_path, GOOD + "training:\n  lr: .inf\n")
    assert "training.lr: inf is not a finite number" in msg
