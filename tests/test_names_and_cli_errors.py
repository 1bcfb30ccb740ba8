"""Architecture names whose path forms collide or are too long are config errors naming them;
every bad ``--arch`` and an absurd ``--model-kwargs`` end in one line and exit 2."""

from __future__ import annotations

import pytest

from snntopo.config import check_config
from snntopo.errors import ConfigError
from snntopo.gridpoint import MAX_SLUG_BYTES, slug, slug_collisions, slug_problem, unslug


def _config(archs):
    return {
        "datasets": ["digits"],
        "architectures": archs,
        "methods": ["erk"],
        "sparsities": [0.5],
        "seeds": [0],
    }


def test_colliding_module_names_share_a_slug():
    # the two names are different; their path forms are the same string
    a, b = "module:a:b__c", "module:a__b:c"
    assert slug(a) == slug(b) == "module__a__b__c"
    assert unslug(slug(b)) == b and unslug(slug(a)) != a
    assert slug_collisions([a, b, "module:x:y"]) == [(a, b)]


def test_collision_is_a_config_error_naming_both():
    with pytest.raises(ConfigError) as err:
        check_config(_config(["module:a:b__c", "module:a__b:c"]), source="c.yaml", grid=False)
    msg = str(err.value)
    assert "'module:a:b__c'" in msg and "'module:a__b:c'" in msg and "module__a__b__c" in msg


def test_a_name_whose_slug_reads_back_as_another_is_refused_alone():
    with pytest.raises(ConfigError, match="reads back as 'module:a__b:c'"):
        check_config(_config(["module:a:b__c"]), source="c.yaml", grid=False)


def test_long_name_refused_at_config_time():
    name = "module:pkg." + "m" * 300 + ":make"
    assert slug_problem(name) == f"its path form is {len(slug(name))} bytes long (at most 200)"
    with pytest.raises(ConfigError, match="bytes long"):
        check_config(_config([name]), source="c.yaml", grid=False)
    ok = "module:pkg." + "m" * (MAX_SLUG_BYTES - len("module__pkg.__make")) + ":make"
    assert len(slug(ok)) == MAX_SLUG_BYTES and slug_problem(ok) is None


def test_ordinary_names_round_trip():
    for name in ("resnet20", "torchvision:resnet18", "module:pkg.sub_mod:make_net"):
        assert slug_problem(name) is None and unslug(slug(name)) == name
    # a callable starting with '_' puts '___' in the path form: it reads back as 'module:m_:f'
    assert "reads back as 'module:m_:f'" in slug_problem("module:m:_f")


@pytest.mark.parametrize(
    ("arch", "expect"),
    [
        ("torchvision:resnett18", "did you mean 'torchvision:resnet18'?"),
        ("module:a..b:c", "expected 'module:<dotted.module.path>:<callable>'"),
        ("module:a:b__c", "reads back as"),
        ("resnet2O", "unknown architecture 'resnet2O'"),
    ],
)
def test_bad_arch_is_one_line_exit_2(tmp_path, capsys, arch, expect):
    from snntopo.cli import main

    out = tmp_path / "g.npz"
    rc = main(
        ["encode", "--arch", arch, "--dataset", "digits", "--encoding", "mge", "--out", str(out)]
    )
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err and err.startswith("snntopo encode: error: ")
    assert expect in err and not out.exists()


def test_absurd_model_kwargs_refused_from_an_estimate(tmp_path, capsys):
    """mobilenet_v2 with width_mult=100000: ~2e16 parameters, counted on the meta device."""
    from snntopo.cli import main

    out = tmp_path / "g.npz"
    rc = main(
        [
            "encode", "--arch", "torchvision:mobilenet_v2", "--model-kwargs", "width_mult=100000",
            "--dataset", "digits", "--encoding", "mge", "--out", str(out),
        ]
    )  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and not out.exists()
    assert "parameters alone need" in err[-1] and "GiB of memory is available" in err[-1]


@pytest.mark.parametrize(
    ("words", "expect"),
    [
        (["--families", "local", "GRAPH"], "a graph file goes before --families"),
        (["GRAPH", "--families", "ramanujn"], "did you mean 'ramanujan'?"),
    ],
)
def test_metrics_family_errors_say_what_to_do(tmp_path, capsys, words, expect):
    """``--families`` takes every word after it: a graph written after it, or a misspelt family,
    is an exit-2 error saying what to write instead, and nothing is written."""
    from snntopo.cli import main

    graph = tmp_path / "g.npz"
    graph.write_bytes(b"not read")
    out = tmp_path / "m.json"
    argv = ["metrics", *(str(graph) if w == "GRAPH" else w for w in words), "--out", str(out)]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and expect in err and "Traceback" not in err
    assert not out.exists()
