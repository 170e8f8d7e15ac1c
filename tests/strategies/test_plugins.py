"""A user's family named as ``package.module:ClassName`` or by an entry point: found, checked, refused."""

from __future__ import annotations

import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
import torch

from strategies import build_model, get_family, model_config
from strategies.exceptions import ConfigError
from strategies.plugins import FAMILY_ENTRY_POINTS, load_reference
from strategies.registry import TRAINING_PARAMS, check_space
from strategies.space import ChoiceParam, IntParam
from tests.strategies.plugin_helpers import EXAMPLE_FAMILY, workdir, write_package  # noqa: F401  (fixture)


@pytest.mark.usefixtures("workdir")
def test_a_reference_imports_the_module_and_finds_its_family(tmp_path: Path) -> None:
    pkg = write_package(tmp_path, {"models": EXAMPLE_FAMILY})
    ref = f"{pkg}.models:TinyMLP"
    family = get_family(ref)
    assert family.name == ref and family.default_feature_set({}) == "ohlcv"
    assert set(family.train_defaults) == TRAINING_PARAMS  # the default recipe, complete
    assert str(tmp_path) == sys.path[-1]  # the working directory, appended last: it shadows nothing
    model = build_model(ref, {"hidden": 16, "window": 3, "seq_len": 8}, input_size=10, seed=0)
    out = model(torch.randn(5, 8, 10))
    assert out.logits.shape == (5, 3) and out.profit is None
    assert get_family(ref) is family  # loaded once


@pytest.mark.usefixtures("workdir")
def test_the_family_gets_the_built_in_checks(tmp_path: Path) -> None:
    pkg = write_package(tmp_path, {"models": EXAMPLE_FAMILY})
    ref = f"{pkg}.models:TinyMLP"
    space = get_family(ref).default_space()
    check_space(ref, space)  # the default space builds everywhere
    narrow = space.with_overrides([ChoiceParam("hidden", (1, 16))])
    with pytest.raises(
        ConfigError, match=r"^search_space\.hidden: .*refuses hidden = 1: hidden must be >= 2"
    ):
        check_space(ref, narrow)
    with pytest.raises(ConfigError, match=r"no combination .* satisfies 'window - seq_len <= 0'"):
        check_space(ref, space.with_overrides([IntParam("window", 20, 24)]))
    with pytest.raises(ConfigError, match=r"window must be in \[1, seq_len=8\], got 9"):
        model_config(ref, {"window": 9, "seq_len": 8}, 10)


@pytest.mark.parametrize(
    ("text", "attribute", "message"),
    [
        (None, "TinyMLP", r"cannot find module 'nosuch_pkg_q\.models' .* current directory"),
        (EXAMPLE_FAMILY, "Missing", r"module '.*\.models' \(.*models\.py\) has no 'Missing'"),
        (EXAMPLE_FAMILY, "tiny_space", r"is a function, not a model family; decorate an nn\.Module class"),
        (EXAMPLE_FAMILY, "TinyMLPConfig", r"is the class TinyMLPConfig, not a model family"),
        (
            "raise RuntimeError('no GPU here')\n",
            "X",
            r"importing '.*\.models' failed: RuntimeError: no GPU here",
        ),
        (
            "import nosuch_dependency_q\n",
            "X",
            r"failed: ModuleNotFoundError: No module named 'nosuch_dependency_q'",
        ),
        ("def broken(:\n", "X", r"failed: SyntaxError: invalid syntax \(.*models\.py, line 1\)"),
    ],
    ids=[
        "no module",
        "no attribute",
        "a function",
        "a plain class",
        "raises",
        "missing dependency",
        "syntax",
    ],
)
@pytest.mark.usefixtures("workdir")
def test_a_broken_reference_is_one_line(
    tmp_path: Path, text: str | None, attribute: str, message: str
) -> None:
    pkg = "nosuch_pkg_q" if text is None else write_package(tmp_path, {"models": text})
    with pytest.raises(ConfigError, match=message) as info:
        get_family(f"{pkg}.models:{attribute}")
    assert "\n" not in str(info.value)


@pytest.mark.usefixtures("workdir")
def test_an_installed_entry_point_names_a_family(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = write_package(tmp_path, {"models": EXAMPLE_FAMILY})
    installed = [EntryPoint("tiny_mlp", f"{pkg}.models:TinyMLP", FAMILY_ENTRY_POINTS)]
    monkeypatch.setattr(
        "strategies.plugins.entry_points", lambda group: installed if group == FAMILY_ENTRY_POINTS else []
    )
    assert get_family("tiny_mlp").name == "tiny_mlp"
    assert get_family("tiny_mlp").model_cls is get_family(f"{pkg}.models:TinyMLP").model_cls
    with pytest.raises(
        ConfigError, match=r"unknown strategy 'gru'; known: lstm, .*tiny_mlp; or give your own"
    ):
        get_family("gru")


def test_only_dotted_names_are_references() -> None:
    for bad in ("experiments/my_family.py:TinyMLP", "../x:Y", "x:Y; rm -rf", "x:"):
        with pytest.raises(ConfigError, match=r"not a reference of the form .package\.module:name."):
            load_reference(bad, what="strategy")


@pytest.mark.usefixtures("workdir")
def test_the_readme_example_is_a_family(tmp_path: Path) -> None:
    """The code of the README's "Your own model" section, copied into a module, is a working family."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    code = readme.split("```python\n# experiments/my_family.py\n", 1)[1].split("```", 1)[0]
    pkg = write_package(tmp_path, {"my_family": code})
    ref = f"{pkg}.my_family:TinyMLP"
    check_space(ref, get_family(ref).default_space())
    out = build_model(ref, {"hidden": 16, "window": 2, "seq_len": 8}, input_size=4, seed=0)(
        torch.randn(3, 8, 4)
    )
    assert out.logits.shape == (3, 3)
