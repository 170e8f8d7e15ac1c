"""The experiment spec: valid files parse, bad ones fail with one clear line (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine.interfaces.cli import main
from engine.spec import load_spec, parse_spec, with_data_end
from strategies.exceptions import SpecError
from strategies.space import ChoiceParam, FixedParam, FloatParam

EXPERIMENTS = sorted(Path(__file__).resolve().parents[2].joinpath("experiments").glob("*.json"))


def base() -> dict[str, Any]:
    return {"name": "t", "strategy": "moe_transformer"}


def test_every_experiment_file_validates() -> None:
    assert len(EXPERIMENTS) >= 8
    for path in EXPERIMENTS:
        spec = load_spec(path)
        assert spec.space.tunable, path


def test_defaults_are_the_three_objectives() -> None:
    spec = parse_spec(base())
    assert {k: o.goal for k, o in spec.objectives.items()} == {
        "return_pct": "max",
        "sharpe": "max",
        "max_drawdown_pct": "min",
    }


def test_overrides_apply_with_the_family_type() -> None:
    raw = base() | {
        "search_space": {
            "learning_rate": {"low": 1e-4, "high": 1e-2, "log": True},
            "n_heads": {"values": [2, 4], "ordered": True},
            "predict_profit": True,
        }
    }
    space = parse_spec(raw).space
    assert space["learning_rate"] == FloatParam("learning_rate", 1e-4, 1e-2, True)
    assert space["n_heads"] == ChoiceParam("n_heads", (2, 4), True)
    assert space["predict_profit"] == FixedParam("predict_profit", True)


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ({"budgett": {"trials": 3}}, "budgett: unknown key; known keys: name,"),
        ({"budget": {"trails": 3}}, "budget.trails: unknown key; known keys: trials,"),
        ({"budget": {"trials": "many"}}, "budget.trials: Input should be a valid integer"),
        ({"search_space": {"learning_rate": {"low": 0.1, "high": 0.01}}}, "low must be below high"),
        ({"strategy": "gpt5"}, "unknown strategy 'gpt5'; known:"),
        ({"search_space": {"lr": 0.1}}, "unknown parameter 'lr'"),
        ({"constraints": ["num_trades > 10"]}, "must look like 'num_trades >= 10'"),
        ({"objectives": {"pnl": {"goal": "max", "threshold": 0}}}, "does not report 'pnl'"),
        ({"backtest": {"fee_bps": 0, "slippage_bps": 0}}, "costs are always on"),
        ({"budget": {"trials": 4, "sobol_trials": 8}}, "sobol_trials (8) exceeds trials (4)"),
        ({"early_stopping": {"min_epochs": 2, "patience": 3}}, "patience (3) must be <= min_epochs (2)"),
        (
            {"backtest": {"gate": "quantile"}},
            "backtest.gate: Input should be 'probability' or 'train_quantile'",
        ),
    ],
)
def test_bad_specs_fail_with_one_line(patch: dict[str, Any], expected: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(base() | patch, source="x.json")
    message = str(info.value)
    assert message.startswith("x.json: ")
    assert expected in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "patch",
    [
        {"budgett": {"trials": 3}},
        {"budget": {"trials": "many"}},
        {"search_space": {"learning_rate": {"low": 0.1, "high": 0.01}}},
        {"strategy": "gpt5"},
    ],
)
def test_cli_validate_exits_2_with_one_line(
    tmp_path: Path, patch: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(base() | patch))
    monkeypatch.setattr("sys.argv", ["boengine", "validate", str(path)])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {path}: ")
    assert len(err.splitlines()) == 1
    assert "Traceback" not in err


def test_cli_validate_ok(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    moe = next(p for p in EXPERIMENTS if p.name == "moe.json")
    monkeypatch.setattr("sys.argv", ["boengine", "validate", str(moe)])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 0
    assert "ok" in capsys.readouterr().out


def test_invalid_json_names_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"name": "x",\n "strategy": }')
    with pytest.raises(SpecError, match=r"broken.json: invalid JSON at line 2"):
        load_spec(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="no such spec file"):
        load_spec(tmp_path / "nope.json")


def test_synthetic_section_only_for_synthetic() -> None:
    with pytest.raises(SpecError, match="synthetic problems only"):
        parse_spec(base() | {"synthetic": {"epoch_seconds": 1}})


@pytest.mark.parametrize("preset", ["cpu", "gpu"])
def test_every_family_default_space_builds(preset: str) -> None:
    from strategies import FAMILIES

    for family in FAMILIES:
        spec = parse_spec({"name": "t", "strategy": family, "search_space_preset": preset})
        assert spec.space.tunable, family


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ({"budget": {"trials": True}}, "budget.trials: Input should be a valid integer (got true)"),
        (
            {"budget": {"trials": 2.5}},
            "budget.trials: Input should be a valid integer, got a number with a fractional",
        ),
        (
            {"objectives": {"sharpe": {"goal": "max", "threshold": float("nan")}}},
            "objectives.sharpe.threshold",
        ),
        ({"search_space": {"num_layers": "two"}}, "search_space.num_layers: 'moe_transformer' refuses"),
        ({"search_space": {"dropout": {"value": 0.1, "low": 0.0}}}, "search_space.dropout: low: not used"),
        ({"search_space": {"top_k": 3, "num_experts": 2}}, "fixed values violate constraint"),
        (
            {"budget": {"trials": 4, "sobol_trials": 2, "batch_size": 5}},
            "budget.batch_size: 5 trials at once",
        ),
        ({"constraints": ["num_trades >= 1", "num_trades >= 2"]}, "constraints.1: 'num_trades >= 2' repeats"),
    ],
)
def test_strict_values_fail_with_one_line(patch: dict[str, Any], expected: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(base() | patch, source="x.json")
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


def test_whole_floats_are_integers() -> None:
    assert parse_spec(base() | {"budget": {"trials": 24.0}}).budget.trials == 24


def test_byte_order_mark_and_repeated_keys(tmp_path: Path) -> None:
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(base()).encode())
    assert load_spec(path).name == "t"
    path.write_text('{"name": "t", "strategy": "lstm", "budget": {"trials": 4, "trials": 8}}')
    with pytest.raises(SpecError, match=r"budget\.trials: the key appears twice"):
        load_spec(path)


@pytest.mark.parametrize(
    ("objective", "threshold", "expected"),
    [
        (
            "return_pct",
            1e9,
            "objectives.return_pct.threshold: 1e+09 is beyond what any configuration reaches",
        ),
        ("sharpe", 25.0, "objectives.sharpe.threshold: 25 is beyond what any configuration reaches"),
        ("max_drawdown_pct", 0.0, "objectives.max_drawdown_pct.threshold: a drawdown is never below 0 %"),
    ],
)
def test_thresholds_no_configuration_reaches_are_refused(
    tmp_path: Path,
    objective: str,
    threshold: float,
    expected: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Nothing reaches the reference point: the hypervolume stays 0 and the acquisition has nothing to
    improve. ``validate`` exits 2 with one line naming the field; nothing else of the spec is wrong."""
    objectives = {
        "return_pct": {"goal": "max", "threshold": -5.0},
        "sharpe": {"goal": "max", "threshold": -1.0},
        "max_drawdown_pct": {"goal": "min", "threshold": 25.0},
    }
    parse_spec(base() | {"objectives": objectives})
    objectives[objective]["threshold"] = threshold
    path = tmp_path / "far.json"
    path.write_text(json.dumps(base() | {"objectives": objectives}))
    monkeypatch.setattr("sys.argv", ["boengine", "validate", str(path)])
    with pytest.raises(SystemExit) as info:
        main()
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2 and len(err.splitlines()) == 1
    assert err.startswith(f"error: {path}: {expected}")


def test_reachable_thresholds_and_closed_form_problems_pass() -> None:
    """The bounds themselves pass; a synthetic problem's objectives are not a backtest's."""
    objectives = {
        "return_pct": {"goal": "max", "threshold": 1000.0},
        "sharpe": {"goal": "max", "threshold": 10.0},
        "max_drawdown_pct": {"goal": "min", "threshold": 0.5},
    }
    parse_spec(base() | {"objectives": objectives})
    synthetic = {
        "return_pct": {"goal": "max", "threshold": 5e3},
        "sharpe": {"goal": "max", "threshold": 50.0},
        "max_drawdown_pct": {"goal": "min", "threshold": 0.0},
    }
    parse_spec({"name": "s", "strategy": "synthetic:dtlz2", "objectives": synthetic})


def test_with_data_end_cuts_the_data_and_keeps_the_spec_as_given() -> None:
    spec = parse_spec({**base(), "data": {"source": "builtin:eurusd_1h"}, "budget": {"trials": 12}})
    import pandas as pd

    cut = with_data_end(spec, pd.Timestamp("2017-06-30T23:00"))
    assert cut.data.end == "2017-06-30T23:00:00" and spec.data.end is None  # a new spec; this one unchanged
    assert cut.given() == {
        **spec.given(),
        "data": {"source": "builtin:eurusd_1h", "end": "2017-06-30T23:00:00"},
    }
    assert cut.space == spec.space and cut.budget == spec.budget
    assert with_data_end(spec, "2017-03-01").data.end == "2017-03-01T00:00:00"  # normalised as data.end is
    with pytest.raises(SpecError, match=r"^--window: data\.end: not a date or timestamp"):
        with_data_end(spec, "now", source="--window")


def test_parse_spec_checks_against_the_objective_and_a_bare_model_says_how_to_make_one() -> None:
    """The model alone validates its sections; parse_spec adds the objective's checks and the space."""
    from engine.spec_model import ExperimentSpec

    objectives = {"sharpe": {"goal": "max", "threshold": 0.0}, "alpha": {"goal": "max", "threshold": 0.0}}
    raw = {**base(), "objectives": objectives}
    bare = ExperimentSpec.model_validate(raw)  # the model knows no metric catalogue
    with pytest.raises(SpecError, match=r"^<spec>: objectives: 'moe_transformer' does not report 'alpha'"):
        parse_spec(raw)
    with pytest.raises(AttributeError, match=r"not made by engine\.spec\.parse_spec or load_spec"):
        _ = bare.space
    assert parse_spec(base()).space.names  # a parsed spec has its space
    # nor can it say whether fold stopping runs ("auto" depends on the objective): it says so
    with pytest.raises(AttributeError, match=r"not made by engine\.spec\.parse_spec or load_spec"):
        _ = bare.pareto_folds_on
    assert isinstance(parse_spec(base()).pareto_folds_on, bool)


def test_the_quasi_random_start_is_longer_for_noisy_trials() -> None:
    """``budget.sobol_trials`` unset: 8 for trials with standard errors (every model family), 4 for
    trials without (synthetic problems), never more than ``trials``; a value given is kept."""
    model = parse_spec({"name": "m", "strategy": "lstm"})
    synthetic = parse_spec({"name": "s", "strategy": "synthetic:dtlz2"})
    assert model.budget.sobol_trials is None and synthetic.budget.sobol_trials is None
    assert model.budget.sobol_count(noisy=True) == 8
    assert synthetic.budget.sobol_count(noisy=False) == 4
    few = {"name": "s", "strategy": "lstm", "budget": {"trials": 3}, "early_stopping": {"enabled": False}}
    short = parse_spec(few)  # 8 > 3 is no error
    assert short.budget.sobol_count(noisy=True) == 3
    given = parse_spec({"name": "s", "strategy": "synthetic:dtlz2", "budget": {"sobol_trials": 6}})
    assert given.budget.sobol_count(noisy=False) == given.budget.sobol_count(noisy=True) == 6
