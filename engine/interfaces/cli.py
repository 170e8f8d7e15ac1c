"""The ``boengine`` command line.

Exit codes: 0 done; 2 bad input (one line naming the file or field, what is
wrong, how to fix it; nothing written); 1 a runtime failure; 130 interrupted
(state saved; rerun the same command to continue).
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import warnings
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import click
import typer

from engine.metric_rules import MARKET_METRICS, MetricCatalogue
from strategies.exceptions import BoengineError, InputError

if TYPE_CHECKING:
    from engine.analysis.results import StudyResults
    from engine.records import TrialRecord
    from engine.spec import ExperimentSpec
    from engine.weekly.windows import Window

__all__ = ["app", "main"]

logger = logging.getLogger("engine.interfaces.cli")

app = typer.Typer(
    name="boengine",
    help="Multi-objective Bayesian hyperparameter search for neural trading models (Ax + BoTorch).\n\n"
    "Exit codes: 0 ok, 2 bad input, 1 runtime failure, 130 interrupted.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # plain help: rich markup would swallow "[default: ...]" and print <bool> after every flag
    rich_markup_mode=None,
)

OUR_PACKAGES = ("engine", "objectives", "strategies", "__main__")


class ProgressMode(StrEnum):
    auto = "auto"
    rich = "rich"
    plain = "plain"
    jsonl = "jsonl"
    quiet = "quiet"


class Format(StrEnum):
    csv = "csv"
    json = "json"
    html = "html"
    png = "png"


#: ``best --pick``: the knee, or any metric of the catalogue with a better direction (an objective of the study)
Pick = StrEnum("Pick", [(n, n) for n in ("knee", *MetricCatalogue(MARKET_METRICS).with_goal())])  # type: ignore[misc]
KNEE = Pick("knee")


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time, so that rich's live panel,
    which redirects it, prints log lines above the panel instead of through it."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def _setup_logging(verbose: bool, quiet: bool) -> None:
    # Our loggers pass INFO on in every mode, so that a study's log file gets the same
    # events whatever the terminal shows; the terminal handler filters by -q / -v.
    ours = logging.DEBUG if verbose else logging.INFO
    handler = _StderrHandler()
    handler.setLevel(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.WARNING)
    for name in OUR_PACKAGES:
        logging.getLogger(name).setLevel(ours)
    if not verbose:
        warnings.filterwarnings("ignore", module=r"(botorch|gpytorch|linear_operator|ax|torch|sklearn)(\.|$)")
        warnings.filterwarnings("ignore", category=FutureWarning)


def _quiet_ax(verbose: bool) -> None:
    """Ax logs every proposal at INFO through its own handler (and an INFO line while it is
    imported); keep its warnings only. Called by the commands that use Ax (``run``), so that
    the others never import it (importing Ax takes seconds)."""
    if not verbose:
        logging.disable(logging.INFO)
    try:
        from ax.utils.common.logger import set_stderr_log_level
    finally:
        logging.disable(logging.NOTSET)
    logging.getLogger("ax").propagate = False
    set_stderr_log_level(logging.INFO if verbose else logging.WARNING)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"boengine {version('boengine')}")
        raise typer.Exit(0)


@app.callback()
def _main(
    ctx: typer.Context,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Debug logging, library warnings shown.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Warnings and errors only.")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    _setup_logging(verbose, quiet)
    ctx.obj = {"verbose": verbose}


def _spec(path: Path) -> Any:
    from engine.spec import load_spec

    return load_spec(path)


@app.command()
def validate(spec: Annotated[Path, typer.Argument(help="Experiment spec (JSON).")]) -> None:
    """Check an experiment spec without running it (exit 2 with one line if it is invalid).

    Checks everything the spec alone decides, the data file's existence,
    type and header, and that the executor fits this machine's cores, loads
    the bars and the feature columns and runs the cheap part of ``check-data``
    (gaps, duplicated timestamps, constant columns; no perturbation).
    """
    from engine.executors import check_executor, plan_executor
    from engine.spec import check_data_source

    s = _spec(spec)
    check_data_source(s)
    check_executor(plan_executor(s.executor))
    if s.tracking.mlflow is not None:
        from engine.interfaces.tracking import mlflow_settings, require_mlflow

        require_mlflow(f"{spec}: tracking.mlflow")
        mlflow_settings(s, None, None)  # a URI MLflow refuses (file://) is refused here too
    data = _data_check(spec, s, cuts=0)  # the cheap part of check-data: no perturbation
    searched = ", ".join(p.name for p in s.space.tunable)
    stopping = [
        n for on, n in ((s.early_stopping.enabled, "per epoch"), (s.pareto_folds_on, "across folds")) if on
    ]
    typer.echo(
        f"{spec}: ok — study '{s.name}', strategy {s.strategy}, {len(s.space.tunable)} searched parameters "
        f"({searched}), {s.budget.trials} trials, objectives {', '.join(s.objectives)}, "
        f"early stopping {' and '.join(stopping) or 'off'}"
    )
    for line in data[:2]:
        typer.echo(f"  {line}")


def _data_check(path: Path, s: Any, *, cuts: int) -> list[str]:
    """The lines of :func:`engine.check_data.check_data` (none for an objective without data);
    InputError naming the offending columns when it fails."""
    from engine.objective import make_objective
    from engine.objective.model import ModelObjective

    if not isinstance(make_objective(s), ModelObjective):
        return []
    from engine.check_data import check_data

    found = check_data(s, cuts=cuts)
    if not found.ok:
        raise InputError(f"{path}: {found.error()}")
    return found.lines()


@app.command("check-data")
def check_data(
    spec: Annotated[Path, typer.Argument(help="Experiment spec (JSON).")],
    cuts: Annotated[
        int, typer.Option(min=1, max=100, help="Cut points after which the bars are perturbed.")
    ] = 5,
) -> None:
    """Check a spec's data and feature columns for look-ahead, gaps, duplicated timestamps and
    constant columns (exit 2 naming the offending columns).

    Computed feature sets are built again with the bars after each cut point perturbed: a column
    whose earlier values change looks ahead. A "columns" feature set (the file's own columns) is
    checked by its rank correlation with later returns.
    """
    s = _spec(spec)
    lines = _data_check(spec, s, cuts=cuts)
    if not lines:
        raise InputError(f"{spec}: strategy {s.strategy} reads no data; there is nothing to check")
    for line in lines:
        typer.echo(line)
    typer.echo(f"{spec}: ok — no look-ahead and no constant column")


# -- the options of ``run`` (typer reads each from its annotation) ------------------------------
SpecArg = Annotated[Path, typer.Argument(help="Experiment spec (JSON), e.g. experiments/moe.json.")]
StudyDirOpt = Annotated[
    Path | None, typer.Option("--study-dir", help="Study directory [default: studies/<name>].")
]
WarmStartOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--warm-start",
        metavar="STUDY_DIR",
        help="Earlier study directory to attach completed trials from (repeatable).",
    ),
]
FreshOpt = Annotated[
    bool, typer.Option("--fresh", help="Start over; the old study is moved aside, not deleted.")
]
StorageOpt = Annotated[
    str | None,
    typer.Option(
        "--storage", help="SQLAlchemy URL for the Ax experiment of a new study [default: <study>/ax.db]."
    ),
]
ProgressOpt = Annotated[
    ProgressMode, typer.Option(help="Live display; 'jsonl' prints one JSON event per line.")
]
MlflowUriOpt = Annotated[
    str | None,
    typer.Option(
        "--mlflow-uri",
        help="Log the study to MLflow when the run ends (extra 'mlflow'): http(s)://host:port, "
        "sqlite:///mlflow.db, ... [default: the spec's tracking.mlflow.uri].",
    ),
]
MlflowExperimentOpt = Annotated[
    str | None,
    typer.Option(
        "--mlflow-experiment", help="MLflow experiment [default: the spec's, else the study's name]."
    ),
]
WindowOpt = Annotated[
    str | None,
    typer.Option(
        "--window",
        help="Run one window of a study line: 'latest' (the data as it is now) or a date "
        "(the data up to that day); the study goes into <study-dir>/<date of the last bar>/.",
    ),
]
LiveConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--live-config",
        help="The strategy config the trading system reads: a new study runs its configuration "
        "for this strategy first, for 'best --replace-if-better'.",
    ),
]


@app.command()
def run(
    ctx: typer.Context,
    spec: SpecArg,
    study_dir: StudyDirOpt = None,
    warm_start: WarmStartOpt = None,
    fresh: FreshOpt = False,
    storage: StorageOpt = None,
    progress: ProgressOpt = ProgressMode.auto,
    mlflow_uri: MlflowUriOpt = None,
    mlflow_experiment: MlflowExperimentOpt = None,
    window: WindowOpt = None,
    live_config: LiveConfigOpt = None,
) -> None:
    """Run a study, or resume it when the study exists and its spec is unchanged.

    Ctrl-C stops proposing, abandons the running trials, saves and exits 130;
    the same command continues. At the end the Pareto set is evaluated on the
    held-out test split and pareto.csv and report.md/html are written.
    """
    _quiet_ax(bool((ctx.obj or {}).get("verbose")))
    from engine.interfaces.tracking import mlflow_settings
    from engine.study.progress import make_progress
    from engine.study.run import run_study
    from engine.weekly.carry_over import WindowStart

    s = _spec(spec)
    directory = study_dir or Path("studies") / s.name
    cut = _open_window(s, directory, window) if window is not None else None
    if cut is not None:
        s, directory = cut.spec, cut.directory
    stop = threading.Event()
    handler = _interrupt_handler(stop)
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    outcome = run_study(
        s,
        directory,
        fresh=fresh,
        warm_start=warm_start or (),
        progress=make_progress(progress.value),
        storage_url=storage,
        stop=stop,
        start=WindowStart(cut, live_config) if cut is not None or live_config is not None else None,
        mlflow=mlflow_settings(s, mlflow_uri, mlflow_experiment),
    )
    if outcome.interrupted:
        raise typer.Exit(130)
    typer.echo(
        f"study '{s.name}' done in {outcome.seconds / 60:.1f} min: {len(outcome.records)} trials, "
        f"{len(outcome.front)} on the Pareto front, hypervolume {outcome.hypervolume:.4g}\n"
        f"  results: {directory}/pareto.csv, {directory}/report.md, report.html\n"
        f"  next: boengine best {directory} --pick knee --write-config "
        f"{live_config or 'config/strategy_config.json'}" + (" --replace-if-better" if live_config else "")
    )


def _open_window(s: ExperimentSpec, directory: Path, window: str) -> Window:
    """``--window``: the spec cut at the window's last bar and the window's directory in the line."""
    from engine.weekly.windows import open_window

    cut = open_window(s, directory, window)
    logger.info(
        "window %s: bars up to %s%s",
        cut.directory.name,
        cut.last_bar,
        f", after window {cut.previous.name}" if cut.previous else ", the line's first window",
    )
    return cut


def _interrupt_handler(stop: threading.Event) -> Any:
    """Ctrl-C / SIGTERM: set ``stop`` (the study loop checks it between polls, so the request is
    kept even if library code swallows the exception) and raise KeyboardInterrupt."""

    def handler(signum: int, frame: Any) -> None:
        stop.set()
        raise KeyboardInterrupt

    return handler


@app.command()
def status(
    study_dir: Annotated[Path, typer.Argument(help="Study directory.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Machine-readable records instead of a table.")
    ] = False,
) -> None:
    """Trial table (status, reason, objectives, key parameters, seconds) and progress.

    On a study line (the directory of ``run --window``), one row per window.
    """
    from engine.analysis.results import StudyResults
    from engine.weekly.windows import list_windows

    if list_windows(study_dir):
        _status_line(study_dir, as_json)
        return
    res = StudyResults.load(study_dir)
    verdict = res.verdict
    if as_json:
        payload = {
            "study": res.spec.name,
            "directory": str(res.store.dir),
            "budget": res.spec.budget.trials,
            "counts": res.counts(),
            "hypervolume": res.hypervolume,
            "verdict": verdict.summary() if verdict else None,
            "pareto_trials": [r.index for r in res.front],
            "trials": res.trial_rows(),
            "batches": res.batches,
        }
        typer.echo(json.dumps(payload, indent=2, default=str))
        return
    _status_table(res)
    if verdict is not None:
        typer.echo(("" if res.counts()["running"] == 0 else "so far: ") + verdict.sentence)


def _status_table(res: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    names = res.objectives.names
    params = list(res.searched)[:6]
    front = {r.index for r in res.front}
    counted = sum(r.status != "abandoned" and not r.attached for r in res.records)
    live = res.store.is_running()
    table = Table(
        title=f"{res.spec.name} — {counted}/{res.spec.budget.trials} trials"
        + (f" (+{len(res.records) - counted} abandoned or attached)" if len(res.records) > counted else "")
        + f", hypervolume {res.hypervolume:.4g}"
        + ("" if live else ", no run in progress")
    )
    labels = [res.evaluator.catalogue.label(n) for n in names]
    for col in ("#", "status", "source", *labels, *params, "epochs", "s"):
        table.add_column(col, no_wrap=True)
    table.add_column("reason", overflow="fold")
    colors = {"completed": "green", "early_stopped": "yellow", "failed": "red", "abandoned": "dim"}
    for r in res.records:
        mark = "*" if r.index in front else ""
        table.add_row(
            f"{r.index}{mark}",
            f"[{colors.get(r.status, 'white')}]"
            f"{r.status if r.status != 'running' or live else 'interrupted (no run in progress)'}[/]",
            r.source,
            *[f"{r.metrics[n]:.4g}" if n in r.metrics else "" for n in names],
            *[_short(r.params.get(p)) for p in params],
            str(r.epochs or ""),
            f"{r.seconds['total']:.0f}" if "total" in r.seconds else "",
            (r.reason or "")[:80],
        )
    console = Console(width=None if sys.stdout.isatty() else 200)
    console.print(table)
    console.print(
        f"counts: {res.counts()}; * = Pareto front; epochs saved by early stopping: {res.epochs_saved()}"
    )
    failed = [r.index for r in res.records if res.store.error_path(r.index).is_file()]
    if failed:
        shown = ", ".join(map(str, failed[:10])) + (" ..." if len(failed) > 10 else "")
        console.print(f"tracebacks of failed trials ({shown}): {res.store.dir}/trials/<i>/error.txt")


def _status_line(line: Path, as_json: bool) -> None:
    from engine.weekly.windows import window_rows

    rows = window_rows(line)
    if as_json:
        typer.echo(json.dumps({"line": str(line), "windows": rows}, indent=2, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{line} — {len(rows)} windows")
    cols = ("window", "last bar", "state", "trials", "front", "hypervolume", "carried", "verdict")
    for col in cols:
        table.add_column(col, no_wrap=col != "verdict")
    for r in rows:
        table.add_row(
            r["window"],
            str(r["last_bar"] or ""),
            r["state"],
            f"{r['trials']}/{r['budget']}",
            str(r["front"]),
            f"{r['hypervolume']:.4g}",
            str(r["carried"]),
            r["verdict"] or "(not computed yet: boengine status <window>)",
        )
    Console(width=None if sys.stdout.isatty() else 200).print(table)


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


@app.command()
def pareto(
    study_dir: Annotated[Path, typer.Argument(help="Study directory.")],
    fmt: Annotated[Format, typer.Option("--format", "-f", help="Output format.")] = Format.csv,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Output file [default: <study>/pareto.<format>].")
    ] = None,
) -> None:
    """Export the Pareto set: parameters, validation and held-out test objectives."""
    from engine.reporting.export import write_pareto
    from engine.weekly.windows import resolve_study

    path = write_pareto(resolve_study(study_dir), fmt.value, out)
    typer.echo(str(path))


@app.command()
def best(
    study_dir: Annotated[Path, typer.Argument(help="Study directory.")],
    pick: Annotated[
        Pick, typer.Option(help="The knee of the front, or the best on one objective of the study.")
    ] = KNEE,
    write_config: Annotated[
        Path | None, typer.Option("--write-config", help="Merge the choice into this JSON strategy config.")
    ] = None,
    replace_if_better: Annotated[
        bool,
        typer.Option(
            "--replace-if-better",
            help="Write only when the choice beats the live configuration of --write-config, re-evaluated "
            "in this study, by more than its standard error and the verdict is 'evidence'; every "
            "decision goes to <config>.history.jsonl.",
        ),
    ] = False,
) -> None:
    """Choose one configuration from the Pareto front (and write it into a strategy config).

    On a study line (``run --window``), the newest window's study.
    """
    from engine.analysis.results import StudyResults
    from engine.reporting.best import pick_trial, strategy_entry
    from engine.weekly.live_config import write_config as write
    from engine.weekly.windows import resolve_study

    if replace_if_better and write_config is None:
        raise InputError("--replace-if-better: give the live config with --write-config FILE")
    if write_config is not None:
        from engine.weekly.live_config import check_config

        check_config(write_config, history=replace_if_better)  # before anything is computed
    res = StudyResults.load(resolve_study(study_dir))
    rec = pick_trial(res, pick.value)
    if replace_if_better:
        assert write_config is not None
        _replace_if_better(res, rec, pick.value, write_config)
        return
    verdict = res.verdict_for(pick.value)  # the verdict on this pick, not only the knee's
    entry = strategy_entry(res, rec, pick.value, verdict)
    if verdict is not None:
        typer.echo(verdict.sentence)
    if write_config is not None:
        write(write_config, res.spec.strategy, entry)
        typer.echo(f"trial {rec.index} written to {write_config} under '{res.spec.strategy}'")
        if verdict is not None and not verdict.edge:
            typer.echo(
                f"warning: no evidence of an edge (see {res.store.dir}/report.md); the configuration was "
                "written as asked: whether to trade it is your decision",
                err=True,
            )
    typer.echo(json.dumps(entry, indent=2, default=str))


def _replace_if_better(res: StudyResults, rec: TrialRecord, pick: str, config: Path) -> None:
    """``best --replace-if-better``: champion against challenger, the decision printed."""
    from engine.weekly.champion import replace_if_better as decide
    from engine.weekly.live_config import history_path

    decision, earlier = decide(res, rec, pick, config)
    verb = "replaced by" if decision.replaces else "kept; not replaced by"
    typer.echo(
        f"{config} [{res.spec.strategy}]: live configuration {verb} trial {rec.index} of "
        f"{res.store.dir}: {decision.reason}\n  decision "
        + (f"of {decision.time}, found in " if earlier else "recorded in ")
        + str(history_path(config))
    )


@app.command()
def report(
    study_dir: Annotated[Path, typer.Argument(help="Study directory.")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Directory for report.md/html [default: the study].")
    ] = None,
) -> None:
    """Write report.md and a self-contained report.html (front, hypervolume, importance, failures, priors)."""
    from engine.reporting.report import write_report
    from engine.store import REPORT_FILES, check_target
    from engine.weekly.windows import resolve_study

    directory = resolve_study(study_dir)
    for name in REPORT_FILES:  # both or neither: refused before either is written
        check_target((out or directory) / name, root=None if out else directory)
    typer.echo(str(write_report(directory, out)))


@app.command("export-mlflow")
def export_mlflow(
    study_dir: Annotated[Path, typer.Argument(help="Study directory.")],
    uri: Annotated[
        str | None,
        typer.Option("--uri", help="MLflow tracking URI [default: the spec's tracking.mlflow.uri]."),
    ] = None,
    experiment: Annotated[
        str | None,
        typer.Option("--experiment", help="MLflow experiment [default: the spec's, else the study's name]."),
    ] = None,
) -> None:
    """Log a study to MLflow (extra 'mlflow'): a parent run, one child run per trial.

    Idempotent: runs are found again by their tags, so a second export (or
    the end of a resumed run) adds only what is new.
    """
    from engine.analysis.results import StudyResults
    from engine.interfaces.tracking import log_study, mlflow_settings, require_mlflow

    require_mlflow("export-mlflow")
    res = StudyResults.load(study_dir)
    settings = mlflow_settings(res.spec, uri, experiment, flags=("--uri", "--experiment"))
    if settings is None:
        raise InputError(
            "--uri: the study's spec has no tracking.mlflow; give the tracking URI, e.g. "
            "--uri http://localhost:5000 or --uri sqlite:///mlflow.db"
        )
    typer.echo(f"{study_dir}: {log_study(study_dir, settings).summary()}")


@app.command()
def priors(
    data: Annotated[
        str, typer.Option("--data", help="builtin:eurusd_1h, builtin:msft_1d or a CSV/Parquet path.")
    ],
    strategy: Annotated[
        str | None, typer.Option(help="Suggest for this family only [default: every family].")
    ] = None,
    n: Annotated[int, typer.Option(min=1, max=32, help="Suggestions per family.")] = 3,
    seed: Annotated[int, typer.Option(help="Seed of the perturbations.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Market-regime statistics of the training split and the DataDrivenOptimizer's suggestions.

    The same code path as a study with ``"warm_start": {"priors": "data_driven"}``:
    each family's default spec on this data, its training split, its suggestions.
    """
    from engine.objective import make_objective
    from engine.objective.pipeline import data_driven_optimizer
    from engine.spec import parse_spec
    from engine.study.warmstart import prior_configurations
    from strategies import FAMILIES, get_family

    families = [get_family(strategy).name] if strategy else list(FAMILIES)
    suggestions: dict[str, list[dict[str, Any]]] = {}
    described: dict[str, str] = {}
    info: dict[str, Any] = {}
    for fam in families:
        spec = parse_spec(
            {
                "name": "priors",
                "strategy": fam,
                "data": {"source": data},
                "warm_start": {"priors": "data_driven", "num_priors": n},
                "budget": {"trials": max(n, 24)},
                "seed": seed,
            },
            source=f"--data {data} --strategy {fam}",
        )
        bars = make_objective(spec).training_bars()
        suggestions[fam], info = prior_configurations(spec, bars)
        span = f"{len(bars)} bars, {bars.index[0]} .. {bars.index[-1]}"
        described[fam] = f"training split: {span}\n" + data_driven_optimizer(bars).describe()
    if as_json:
        typer.echo(json.dumps({"data": data, **info, "suggestions": suggestions}, indent=2, default=str))
        return
    typer.echo(f"data: {data}")
    for fam, configs in suggestions.items():
        typer.echo(f"\n{fam} ({described[fam]}):")
        for c in configs:
            typer.echo("  " + ", ".join(f"{k}={_short(v)}" for k, v in c.items()))


@app.command()
def dashboard(
    path: Annotated[Path, typer.Argument(help="A studies directory, or one study.")] = Path("studies"),
    host: Annotated[
        str, typer.Option(help="Address to listen on; 127.0.0.1 keeps the dashboard on this machine.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8080,
) -> None:
    """A local web dashboard (extra 'dashboard'): the studies with status, trials, hypervolume and
    verdict; one study live while it runs (trials, Pareto front, hypervolume, parallel coordinates,
    curves, proposal times, report figures); two or more compared.

    Read-only: it never writes to a study, and is safe while 'boengine run' writes one. Ctrl-C stops.
    """
    from engine.interfaces.dashboard import serve

    serve(path, host=host, port=port, echo=typer.echo)


def _usage_errors() -> tuple[type[BaseException], ...]:
    """Usage-error classes of click and of the copy of click that typer >= 0.29 carries.

    typer 0.29 parses with its own vendored click (``typer._click``, not
    exported), so click's ``UsageError`` alone no longer catches a missing
    argument or an unknown option.
    """
    out: list[type[BaseException]] = [click.UsageError]
    try:
        from typer._click import exceptions as vendored

        out.append(vendored.UsageError)
    except ImportError:  # an older typer uses click itself
        pass
    return tuple(out)


def _usage_line(exc: BaseException) -> str:
    """One line: what is wrong with the command line, and where to look."""
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    message = " ".join(message.replace("Value error, ", "").split())
    ctx = getattr(exc, "ctx", None)
    command = ctx.command_path if ctx is not None else "boengine"
    return f"error: {message.rstrip('.')}; see '{command} --help'"


def _disk_full(exc: BaseException) -> bool:
    import errno

    return (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or "database or disk is full" in str(exc)


def _unexpected(exc: Exception) -> int:
    """One line for an error boengine did not raise itself (disk full is said plainly); exit 1."""
    if _disk_full(exc):
        filename = getattr(exc, "filename", None)
        where = f" writing {filename}" if filename else ""
        typer.echo(
            f"error: the disk is full{where}; free some space and rerun the same command: completed "
            "trials are on disk and the study resumes safely",
            err=True,
        )
        return 1
    logger.debug("unexpected error", exc_info=True)
    typer.echo(f"error: {type(exc).__name__}: {_redacted(exc)} (rerun with -v for the traceback)", err=True)
    return 1


def _redacted(exc: BaseException) -> str:
    """An error's message without the passwords of any URL in it (``--storage``, ``--uri``)."""
    from engine.store import redact_text

    return redact_text(str(exc))


def main() -> None:
    """Console entry point with boengine's exit codes."""
    try:
        code = app(standalone_mode=False, prog_name="boengine")  # not "python -m ..."
    except _usage_errors() as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `boengine`: the help, then exit 2
            exc.show()  # type: ignore[attr-defined]
        else:
            typer.echo(_usage_line(exc), err=True)
        sys.exit(2)
    except (KeyboardInterrupt, click.Abort):
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except InputError as exc:
        typer.echo(f"error: {_redacted(exc)}", err=True)
        sys.exit(2)
    except BoengineError as exc:
        typer.echo(f"error: {_redacted(exc)}", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except Exception as exc:
        sys.exit(_unexpected(exc))
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
