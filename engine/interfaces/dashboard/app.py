"""The Dash app: pages, their live refresh, and the local server (see :mod:`engine.interfaces.dashboard`).

Pages (``dcc.Location`` routing):

- ``/``: the studies under the directory, with status, trials, hypervolume
  and verdict, and a picker to compare some of them (a study directory given
  directly opens its own page here);
- ``/study/<name>``: one study, refreshed every few seconds while it runs;
- ``/compare?studies=a,b``: fronts overlaid, hypervolume curves side by side;
- ``/files/<name>/report.html`` (and ``pareto.html``): the study's own pages,
  when ``boengine report`` / ``pareto`` wrote them.

A study page is a column of sections (head, trials, Pareto front,
hypervolume, parallel coordinates, curves, proposal times, report figures,
robustness),
each drawn from a digest of the files it depends on: a refresh redraws only
the sections whose files changed since the page drew them, and answers "no
update" (HTTP 204) when none did. Figures keep the user's zoom across
refreshes (``uirevision``).
"""

from __future__ import annotations

import errno
import functools
import logging
import math
import signal
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote

import dash
from dash import Input, Output, State, dcc, html
from dash.exceptions import PreventUpdate

from engine.analysis.results import StudyResults
from engine.interfaces.dashboard.data import Catalog, StudyView
from engine.reporting.tables import PAGE_STYLE
from engine.store import PAGE_FILES
from strategies.exceptions import InputError

__all__ = ["create_app", "make_server", "serve"]

logger = logging.getLogger(__name__)

_GRAPH_CONFIG: Any = {"displaylogo": False, "responsive": True}
_STYLE = (
    PAGE_STYLE
    + ".muted{color:#666}.nav{margin:.3em 0 1em 0}.nav a{margin-right:1.2em}"
    + ".status{display:inline-block;padding:.05em .55em;border-radius:.8em;font-size:.9em;"
    "background:#eee;margin-right:.5em}"
    + ".status.running{background:#e3f0ff;color:#0b4f9c}.status.finished{background:#e7f6ec;color:#1d6b37}"
    + ".status.interrupted,.status.damaged{background:#fbeaea;color:#8a2a24}"
    + ".status.starting{background:#fff6dd;color:#7a5b00}"
    + "tr.front td{background:#fdf0ef;font-weight:600}"
    + "td.st-failed{color:#b3403a}td.st-running{color:#0b4f9c}td.st-early_stopped{color:#8a6d00}"
    + "td .status{margin:0}"
)
_INDEX_HTML = (
    "<!DOCTYPE html><html><head>{%metas%}<title>{%title%}</title>{%favicon%}{%css%}"
    f"<style>{_STYLE}</style></head>"
    "<body>{%app_entry%}<footer>{%config%}{%scripts%}{%renderer%}</footer></body></html>"
)


def _table(
    table_id: str,
    rows: list[dict[str, Any]],
    columns: list[str],
    *,
    headers: dict[str, str] | None = None,
    row_class: Callable[[dict[str, Any]], str] | None = None,
    cell_class: Callable[[str, Any], str] | None = None,
) -> Any:
    """An HTML table in the style of ``report.html`` (scrolls sideways; '-' for a missing figure).

    A cell is a value, or a Dash component (a link)."""
    head = html.Thead(html.Tr([html.Th((headers or {}).get(c, c)) for c in columns]))
    body = html.Tbody(
        [
            html.Tr(
                [
                    html.Td(_shown(row.get(c)), className=cell_class(c, row.get(c)) if cell_class else None)
                    for c in columns
                ],
                className=row_class(row) if row_class else None,
            )
            for row in rows
        ]
    )
    return html.Div(html.Table([head, body], id=table_id, className="num"), className="wrap")


def _shown(value: Any) -> Any:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return value if isinstance(value, (str, int)) or hasattr(value, "to_plotly_json") else str(value)


# ----------------------------------------------------------------- the app


def create_app(path: str | Path, *, refresh_s: float = 5.0) -> dash.Dash:
    """The dashboard of the studies under ``path`` (a studies directory, or one study)."""
    catalog = Catalog(path)
    app = dash.Dash(
        __name__,
        title="boengine dashboard",
        update_title=None,  # type: ignore[arg-type]
        index_string=_INDEX_HTML,
        serve_locally=True,
    )
    interval_ms = max(500, int(refresh_s * 1000))
    app.layout = html.Div([dcc.Location(id="url", refresh=False), html.Div(id="page")])
    app.validation_layout = html.Div(  # type: ignore[assignment]
        [
            dcc.Location(id="url"),
            html.Div(id="page"),
            _index_page(catalog, interval_ms),
            _study_page("", interval_ms),
            _compare_page([], interval_ms),
            html.Div([dcc.RadioItems(id="parallel-color"), dcc.Graph(id="parallel-graph")]),
            html.Div([html.Button(id="robustness-compute"), html.Div(id="robustness-body")]),
        ]
    )
    _register_callbacks(app, catalog, interval_ms)
    _register_files(app, catalog)
    _check_host_header(app)
    return app


# ----------------------------------------------------------------- the Host header


#: Host names always served (besides IP addresses and the --host name): this machine's.
_LOCAL_NAMES = frozenset({"localhost"})


def _check_host_header(app: dash.Dash) -> None:
    """Answer 400 to a request whose Host header names none of this server's addresses.

    A web page that rebinds its own DNS name to 127.0.0.1 (DNS rebinding) reaches a local server
    with the browser's same-origin blessing, but its requests carry that name in ``Host``. Served:
    IP addresses (no rebinding is possible through one), ``localhost``, the ``--host`` name
    (:func:`make_server` adds it) and this machine's host names.
    """
    import flask

    app.server.config.setdefault("BOENGINE_HOSTS", set(_LOCAL_NAMES))

    @app.server.before_request
    def host_header() -> Any:
        host = flask.request.headers.get("Host", "")
        if not _host_allowed(host, app.server.config["BOENGINE_HOSTS"]):
            logger.warning("dashboard: refused a request for Host %r (not an address of this server)", host)
            return flask.Response(
                "400 Bad Request: the Host header names no address of this dashboard\n",
                status=400,
                mimetype="text/plain",
            )
        return None


def _host_allowed(header: str, names: set[str]) -> bool:
    """Whether ``header`` (``name[:port]``, ``[v6][:port]``) is an IP address, one of ``names`` or
    this machine's host name."""
    import ipaddress

    host = header.strip().lower()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else ""
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    if not host:
        return False
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    return host.rstrip(".") in names or host.rstrip(".") in _machine_names()


@functools.cache
def _machine_names() -> frozenset[str]:
    """This machine's host names (looked up once, when a Host header needs them)."""
    return frozenset(n.lower() for n in {socket.gethostname(), socket.getfqdn()} if n)


def _register_callbacks(app: dash.Dash, catalog: Catalog, interval_ms: int) -> None:
    _register_index_callbacks(app, catalog, interval_ms)
    _register_study_callbacks(app, catalog)
    _register_compare_callbacks(app, catalog)


def _register_index_callbacks(app: dash.Dash, catalog: Catalog, interval_ms: int) -> None:
    """Routing, the list of studies and the compare picker."""

    @app.callback(Output("page", "children"), Input("url", "pathname"), Input("url", "search"))
    def route(pathname: str | None, search: str | None) -> Any:
        return _route(catalog, pathname or "/", search or "", interval_ms)

    @app.callback(
        Output("index-body", "children"),
        Output("compare-pick", "options"),
        Input("index-tick", "n_intervals"),
    )
    def refresh_index(_: int | None) -> tuple[Any, list[dict[str, str]]]:
        views = catalog.views()
        return _index_body(catalog, views), [{"label": v.key, "value": v.key} for v in views]

    @app.callback(
        Output("compare-link", "href"),
        Output("compare-link", "children"),
        Input("compare-pick", "value"),
    )
    def compare_link(picked: list[str] | None) -> tuple[str, str]:
        picked = list(picked or [])
        if len(picked) < 2:
            return "/compare", "pick two or more studies to compare"
        return f"/compare?studies={quote(','.join(picked))}", f"compare {', '.join(picked)}"


def _register_study_callbacks(app: dash.Dash, catalog: Catalog) -> None:
    """A study's page: its sections redrawn when their files change, robustness on a button press,
    the parallel coordinates recoloured."""

    @app.callback(
        *[Output(f"study-{name}", "children") for name in _SECTIONS],
        Output("study-signature", "data"),
        Input("study-tick", "n_intervals"),
        Input("study-key", "data"),
        State("study-signature", "data"),
    )
    def refresh_study(_: int | None, key: str | None, shown: dict[str, str] | None) -> tuple[Any, ...]:
        return _refresh_study(catalog, key, shown or {})

    @app.callback(
        Output("robustness-body", "children"),
        Input("robustness-compute", "n_clicks"),
        State("study-key", "data"),
        prevent_initial_call=True,
    )
    def robustness(clicks: int | None, key: str | None) -> Any:
        view = catalog.view(key or "")
        if not clicks or view is None or view.results is None:
            raise PreventUpdate
        return _guarded("robustness", _robustness_body, view)

    @app.callback(
        Output("parallel-graph", "figure"),
        Input("parallel-color", "value"),
        State("study-key", "data"),
        prevent_initial_call=True,
    )
    def recolor(color: str | None, key: str | None) -> Any:
        from engine.reporting.plots import parallel_coordinates_figure

        view = catalog.view(key or "")
        if view is None or view.results is None or color not in view.results.objectives.names:
            raise PreventUpdate
        return parallel_coordinates_figure(view.results, color)


def _register_compare_callbacks(app: dash.Dash, catalog: Catalog) -> None:
    """The compare page, redrawn when one of its studies changes."""

    @app.callback(
        Output("compare-body", "children"),
        Output("compare-signature", "data"),
        Input("compare-tick", "n_intervals"),
        Input("compare-keys", "data"),
        State("compare-signature", "data"),
    )
    def refresh_compare(_: int | None, keys: list[str] | None, shown: str | None) -> tuple[Any, str]:
        views = [v for k in keys or [] if (v := catalog.view(k)) is not None]
        signature = repr([v.signature for v in views])
        if signature == shown:
            raise PreventUpdate
        return _compare_body(catalog, list(keys or []), views), signature


def _refresh_study(catalog: Catalog, key: str | None, shown: dict[str, str]) -> tuple[Any, ...]:
    """Only the sections whose files changed since the page last drew them (the rest: no update)."""
    view = catalog.view(key or "")
    if view is None:
        signatures = dict.fromkeys(_SECTIONS, "missing")
    else:
        parts = view.part_signatures()
        signatures = {name: parts[part] for name, (_, part) in _SECTIONS.items()}
    if all(shown.get(name) == sig for name, sig in signatures.items()):
        raise PreventUpdate
    out: list[Any] = []
    for name in _SECTIONS:
        if shown.get(name) == signatures[name]:
            out.append(dash.no_update)
        elif view is None:
            message = f"No study {key!r} under {catalog.root} (any more)."
            out.append(_missing(catalog, message) if name == "head" else [])
        else:
            out.append(_build_section(name, view, catalog.single))
    return (*out, signatures)


def _register_files(app: dash.Dash, catalog: Catalog) -> None:
    """``/files/<study>/report.html`` and ``pareto.html``: the study's own pages, read-only."""
    import flask

    def study_file(key: str, name: str) -> Any:
        from engine.store import StudyStore

        path = catalog.studies().get(key)
        if path is None or name not in PAGE_FILES:
            flask.abort(404)
        try:
            target = StudyStore(path).inside(path / name)  # never through a link
        except InputError:
            flask.abort(404)
        if not target.is_file():
            flask.abort(404)
        return flask.send_file(target, mimetype="text/html", conditional=True, max_age=0)

    app.server.add_url_rule("/files/<path:key>/<name>", "study_file", study_file, methods=["GET"])


# ----------------------------------------------------------------- routing


def _route(catalog: Catalog, pathname: str, search: str, interval_ms: int) -> Any:
    if pathname in ("/", ""):
        if catalog.single:
            return _study_page(next(iter(catalog.studies())), interval_ms)
        return _index_page(catalog, interval_ms)
    if pathname.startswith("/study/"):
        key = unquote(pathname.removeprefix("/study/").strip("/"))
        if key not in catalog.studies():
            return _missing(catalog, f"No study {key!r} under {catalog.root}.")
        return _study_page(key, interval_ms)
    if pathname.rstrip("/") == "/compare":
        raw = parse_qs(search.lstrip("?")).get("studies", [""])[0]
        keys = [k for k in raw.split(",") if k]
        return _compare_page(keys, interval_ms)
    return _missing(catalog, f"No page {pathname!r}.")


def _missing(catalog: Catalog, message: str) -> Any:
    return html.Div([_nav(catalog), html.H1("Not found"), html.P(message, className="flag")])


def _nav(catalog: Catalog) -> Any:
    links = [dcc.Link("all studies", href="/")] if not catalog.single else []
    return html.Div(
        [*links, html.Span(f"boengine dashboard of {catalog.root} (read-only)", className="muted")],
        className="nav",
    )


# ----------------------------------------------------------------- the list of studies


def _index_page(catalog: Catalog, interval_ms: int) -> Any:
    return html.Div(
        [
            html.H1(f"Studies in {catalog.root}"),
            html.P(
                "Status, trials (counted against the budget), hypervolume of the feasible trials and the "
                "verdict of each study; the list refreshes by itself.",
                className="muted",
            ),
            html.Div(id="index-body"),
            html.H2("Compare studies"),
            dcc.Dropdown(id="compare-pick", multi=True, options=[], placeholder="studies to compare"),
            html.P(dcc.Link("pick two or more studies to compare", id="compare-link", href="/compare")),
            dcc.Interval(id="index-tick", interval=interval_ms),
        ]
    )


_INDEX_COLUMNS = (
    "study",
    "status",
    "trials",
    "completed",
    "failed",
    "front",
    "hypervolume",
    "verdict",
    "strategy",
    "updated",
    "directory",
)


def _index_body(catalog: Catalog, views: list[StudyView]) -> Any:
    if not views:
        return html.P(
            f"No study under {catalog.root} yet: 'boengine run SPEC --study-dir {catalog.root}/NAME' "
            "makes one, and it appears here.",
            className="muted",
        )
    rows = []
    for view in views:
        row = view.summary()
        row["study"] = dcc.Link(_label(view), href=f"/study/{quote(view.key)}")
        row["status"] = html.Span(row["status"], className=f"status {row['status']}")
        rows.append(row)
    return _table("study-table", rows, list(_INDEX_COLUMNS))


def _label(view: StudyView) -> str:
    """The study's directory below the root, with its name when that differs."""
    return view.key if view.name == Path(view.key).name else f"{view.key} ({view.name})"


# ----------------------------------------------------------------- one study


def _study_page(key: str, interval_ms: int) -> Any:
    return html.Div(
        [
            dcc.Store(id="study-key", data=key),
            dcc.Store(id="study-signature", data=None),
            dcc.Interval(id="study-tick", interval=interval_ms),
            *[
                html.Div(
                    id=f"study-{name}",
                    children=html.P("Reading the study ...", className="muted") if name == "head" else [],
                )
                for name in _SECTIONS
            ],
        ]
    )


def _build_section(name: str, view: StudyView, single: bool) -> Any:
    if name == "head":
        return _study_head(view, single=single)
    if view.results is None:
        return []
    title, _ = _SECTIONS[name]
    return _guarded(title, _BUILDERS[name], view)


def _study_head(view: StudyView, *, single: bool = False) -> Any:
    links = [] if single else [dcc.Link("all studies", href="/")]
    catalog_nav = html.Div([*links, *_file_links(view)], className="nav")
    status = view.status()
    head = [
        catalog_nav,
        html.H1(view.name),
        html.P([html.Span(status, className=f"status {status}"), _status_line(view)]),
    ]
    res = view.results
    if res is None:
        text = (
            "Starting: boengine run is preparing the data and the Ax experiment (no spec.json yet). "
            "This page refreshes by itself."
            if status == "starting"
            else f"Cannot read this study: {view.problem}"
        )
        return html.Div([*head, html.P(text, className="muted" if status == "starting" else "flag")])
    if res.spec.description:
        head.append(html.P(res.spec.description, className="muted"))
    head.append(_verdict_block(view))
    return html.Div(head)


def _file_links(view: StudyView) -> list[Any]:
    return [
        html.A(name, href=f"/files/{quote(view.key)}/{name}", target="_blank")
        for name in PAGE_FILES
        if (view.path / name).is_file()
    ]


def _status_line(view: StudyView) -> str:
    res = view.results
    if res is None:
        return str(view.path)
    counts = res.counts()
    parts = [f"{view.counted()} of {res.spec.budget.trials} trials"]
    parts.append(", ".join(f"{n} {k.replace('_', '-')}" for k, n in counts.items() if n))
    parts.append(f"{len(res.front)} on the Pareto front")
    parts.append(f"hypervolume {res.hypervolume:.4g}")
    parts.append(f"{res.spec.strategy}, {view.path}")
    return " · ".join(p for p in parts if p)


def _verdict_block(view: StudyView) -> Any:
    if view.verdict is not None:
        prefix = "so far: " if view.status() == "running" else ""
        return html.P(
            prefix + view.verdict.sentence, className="verdict" + (" edge" if view.verdict.edge else "")
        )
    if view.verdict_error:
        return html.P(f"No verdict yet ({view.verdict_error}).", className="muted")
    res = view.results
    if res is not None and not res.evaluator.scores_test:
        return html.P(
            f"No verdict: selection statistics need the per-bar returns of a trading objective, and "
            f"{res.spec.strategy} has none.",
            className="muted",
        )
    return html.P("No verdict yet: it needs a completed trial with its returns.", className="muted")


def _guarded(name: str, build: Callable[[StudyView], list[Any]], view: StudyView) -> list[Any]:
    """A section, or one line saying why it cannot be shown: a page never fails on one plot."""
    try:
        return build(view)
    except Exception as exc:
        logger.warning("dashboard: the %s section of %s failed: %s", name, view.path, exc, exc_info=True)
        return [html.P(f"The {name} section cannot be shown: {type(exc).__name__}: {exc}", className="flag")]


def _trials_section(view: StudyView) -> list[Any]:
    rows, columns = view.trial_rows()
    out: list[Any] = [html.H2("Trials")]
    if not rows:
        return [*out, html.P("No trial yet.", className="muted")]
    out.append(
        _table(
            "trial-table",
            rows,
            columns,
            headers={c: c.removeprefix("param_") for c in columns},
            row_class=lambda row: "front" if row.get("front") == "*" else "",
            cell_class=lambda column, value: f"st-{value}" if column == "status" else "",
        )
    )
    out.append(
        html.P(
            "* = Pareto front; val_* are validation (out-of-sample walk-forward or holdout) figures, "
            "test_* the held-out test split (front and baselines, at the end of a study).",
            className="muted",
        )
    )
    return out


def _graph(graph_id: str, fig: Any) -> Any:
    fig.update_layout(uirevision=graph_id)  # a refresh keeps the user's zoom, pan and legend choices
    return html.Div(dcc.Graph(id=graph_id, figure=fig, config=_GRAPH_CONFIG), className="plot")


def _results(view: StudyView) -> StudyResults:
    assert view.results is not None, "sections are built for readable studies only"
    return view.results


def _pareto_section(view: StudyView) -> list[Any]:
    from engine.reporting.plots import pareto_figures

    res = _results(view)
    head = [html.H2("Pareto front")]
    if not len(res.feasible_frame()):
        return [*head, html.P("No feasible trial yet.", className="muted")]
    figs = pareto_figures(res)
    return [*head, *[_graph(gid, fig) for gid, fig in zip(("pareto-pairs", "pareto-3d"), figs)]]


def _hypervolume_section(view: StudyView) -> list[Any]:
    from engine.reporting.plots import hypervolume_figure

    fig = hypervolume_figure(_results(view))
    shown = _graph("hypervolume-graph", fig) if fig else html.P("No trial yet.", className="muted")
    return [html.H2("Hypervolume over trials"), shown]


def _parallel_section(view: StudyView) -> list[Any]:
    from engine.reporting.plots import parallel_coordinates_figure

    res = _results(view)
    fig = parallel_coordinates_figure(res)
    head = [html.H2("Parameters and objectives (parallel coordinates)")]
    if fig is None:
        return [*head, html.P("No completed trial yet.", className="muted")]
    names = list(res.objectives.names)
    pick = dcc.RadioItems(
        id="parallel-color",
        options=[{"label": f" colour by {n}", "value": n} for n in names],
        value=names[0],
        inline=True,
        inputStyle={"marginLeft": "1em"},
    )
    return [*head, pick, _graph("parallel-graph", fig)]


def _curves_section(view: StudyView) -> list[Any]:
    from engine.reporting.plots import curves_figure

    fig = curves_figure(_results(view), view.curves())
    shown = _graph("curves-graph", fig) if fig else html.P("No epoch reported yet.", className="muted")
    return [html.H2("Per-epoch curves"), shown]


def _proposals_section(view: StudyView) -> list[Any]:
    from engine.reporting.plots import proposal_times_figure

    fig = proposal_times_figure(_results(view))
    shown = _graph("proposals-graph", fig) if fig else html.P("No batch yet.", className="muted")
    return [html.H2("Proposal times"), shown]


def _report_section(view: StudyView) -> list[Any]:
    from engine.reporting.report import MIN_TRIALS_FOR_IMPORTANCE, report_figures

    res = _results(view)
    head = [html.H2("Report figures: parameter importance")]
    figs = report_figures(res).get("importance", [])
    if not figs:
        n = sum(res.objectives.feasible(r) for r in res.records)
        text = (
            f"Not shown: {n} feasible trials; ranking parameters needs at least "
            f"{MIN_TRIALS_FOR_IMPORTANCE} (the report says the same)."
        )
        return [*head, html.P(text, className="muted")]
    return [*head, *[_graph(f"importance-graph-{i}", f) for i, f in enumerate(figs)]]


def _robustness_section(view: StudyView) -> list[Any]:
    """The section's heading and a button: the views fit one GP per objective and resample the
    pick's returns 1,000 times (seconds), so they are computed when asked for, not on every
    refresh of a running study."""
    head: list[Any] = [html.H2("Robustness of the knee and the front")]
    if not _results(view).front:
        return [*head, html.P("No Pareto front yet.", className="muted")]
    return [
        *head,
        html.P(
            "Cost stress, Monte Carlo and parameter stability of the configuration best writes (as in "
            "the report); computed on request: one GP fit per objective and 1,000 resamples, seconds.",
            className="muted",
        ),
        html.Button("Compute the robustness views", id="robustness-compute", n_clicks=0),
        html.Div(id="robustness-body"),
    ]


def _robustness_body(view: StudyView) -> list[Any]:
    from engine.reporting.report import robustness_tables, stability_figure

    res = _results(view)
    rob = view.robustness
    head: list[Any] = []
    if rob is None or rob.pick is None:
        return [html.P("No Pareto front yet.", className="muted")]
    head.append(
        html.P(
            f"Trial {rob.pick} ({rob.pick_name}, the configuration best writes); the report explains "
            "each table.",
            className="muted",
        )
    )
    tables = robustness_tables(res, rob)
    blocks = (
        (
            "costs",
            "Cost stress at 1x, 2x and 5x the study's costs (the same positions, no retraining)",
            rob.costs_note,
        ),
        (
            "monte_carlo",
            "Monte Carlo: percentiles over paired stationary-bootstrap resamples",
            rob.monte_carlo_note,
        ),
        ("plateau", "Parameter stability: plateau score of the pick per objective", rob.stability_note),
    )
    out = head
    for name, title, note in blocks:
        out.append(html.H3(title))
        if name not in tables:
            out.append(html.P(note or "Not shown.", className="muted"))
            continue
        frame = tables[name]
        columns = [str(c) for c in frame.columns]
        rows = [dict(zip(columns, row)) for row in frame.itertuples(index=False)]
        out.append(_table(f"robustness-{name.replace('_', '-')}", rows, columns))
        if name == "costs" and rob.costs is not None and rob.costs.missing:
            missing = ", ".join(map(str, rob.costs.missing))
            out.append(html.P(f"No positions stored for trial {missing}: not stressed.", className="muted"))
    if rob.stability is not None and len(rob.stability.curves):
        out.append(_graph("stability-graph", stability_figure(res, rob.stability)))
    return out


#: The study page's sections, in order: (title, which files it depends on).
_SECTIONS: dict[str, tuple[str, str]] = {
    "head": ("head", "head"),
    "trials": ("trials", "results"),
    "pareto": ("Pareto front", "results"),
    "hypervolume": ("hypervolume", "results"),
    "parallel": ("parallel coordinates", "results"),
    "curves": ("curves", "curves"),
    "proposals": ("proposal times", "batches"),
    "report": ("report figures", "results"),
    "robustness": ("robustness", "results"),
}
_BUILDERS: dict[str, Callable[[StudyView], list[Any]]] = {
    "trials": _trials_section,
    "pareto": _pareto_section,
    "hypervolume": _hypervolume_section,
    "parallel": _parallel_section,
    "curves": _curves_section,
    "proposals": _proposals_section,
    "report": _report_section,
    "robustness": _robustness_section,
}


# ----------------------------------------------------------------- comparison


def _compare_page(keys: list[str], interval_ms: int) -> Any:
    return html.Div(
        [
            dcc.Store(id="compare-keys", data=keys),
            dcc.Store(id="compare-signature", data=None),
            dcc.Interval(id="compare-tick", interval=interval_ms),
            html.Div(id="compare-body", children=html.P("Reading the studies ...", className="muted")),
        ]
    )


def _compare_body(catalog: Catalog, keys: list[str], views: list[StudyView]) -> Any:
    from engine.reporting import plots

    head: list[Any] = [_nav(catalog), html.H1("Compare studies")]
    unknown = [k for k in keys if k not in {v.key for v in views}]
    if unknown:
        head.append(html.P(f"Not studies under {catalog.root}: {', '.join(unknown)}.", className="flag"))
    readable = [v for v in views if v.results is not None]
    if len(readable) < 2:
        head.append(
            html.P(
                "Pick two or more studies with results on the list of studies "
                "(or give them as /compare?studies=a,b).",
                className="muted",
            )
        )
        return html.Div(head)
    rows = [{**v.summary(), "study": _label(v)} for v in readable]
    columns = [c for c in _INDEX_COLUMNS if c != "directory"]
    head.append(_table("compare-table", rows, columns))
    results = [v.results for v in readable if v.results is not None]
    body: list[Any] = [html.H2("Pareto fronts overlaid")]
    body += _compare_graph("compare-fronts", plots.compare_fronts_figure, results)
    body.append(html.H2("Hypervolume over trials"))
    body += _compare_graph("compare-hypervolume", plots.compare_hypervolume_figure, results)
    return html.Div([*head, *body])


def _compare_graph(graph_id: str, make: Callable[[list[Any]], Any], results: list[Any]) -> list[Any]:
    try:
        return [_graph(graph_id, make(results))]
    except Exception as exc:
        logger.warning("dashboard: %s failed: %s", graph_id, exc, exc_info=True)
        return [html.P(f"Cannot be drawn: {type(exc).__name__}: {exc}", className="flag")]


# ----------------------------------------------------------------- the server


def make_server(app: dash.Dash, host: str = "127.0.0.1", port: int = 8080) -> Any:
    """A threaded Werkzeug server of ``app`` listening on ``host:port`` (port 0: a free one);
    InputError naming the option when it cannot listen there."""
    from werkzeug.serving import make_server as werkzeug_server

    sock = _listen(host, port)
    app.server.config.setdefault("BOENGINE_HOSTS", set(_LOCAL_NAMES)).add(host.strip("[]").lower())
    try:
        return werkzeug_server(host, sock.getsockname()[1], app.server, threaded=True, fd=sock.fileno())
    finally:
        sock.close()  # the server holds its own duplicate


def _listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` and listening (Werkzeug would exit the process instead of
    raising when the port is taken)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise InputError(
            f"--host {host}: not an address of this machine ({exc}); use 127.0.0.1 (the default)"
        ) from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise InputError(
                f"--port {port}: {host}:{port} is already in use; pick another port with --port"
            ) from None
        if exc.errno == errno.EACCES:
            raise InputError(f"--port {port}: not allowed for this user; use a port above 1023") from None
        raise InputError(
            f"--host {host}: cannot listen there ({exc.strerror or exc}); use 127.0.0.1 (the default) "
            "or an address of this machine"
        ) from None
    return sock


def _loopback(host: str) -> bool:
    """Whether ``host`` names only this machine (127.0.0.0/8, ::1, localhost)."""
    import ipaddress

    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(
    path: str | Path,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    refresh_s: float = 5.0,
    echo: Callable[[str], Any] = print,
) -> None:
    """Serve the dashboard until Ctrl-C."""
    app = create_app(path, refresh_s=refresh_s)
    server = make_server(app, host, port)
    shown = f"[{host}]" if ":" in host else host
    echo(f"boengine dashboard of {Path(path)}: http://{shown}:{server.port}/ (read-only; Ctrl-C stops)")
    if not _loopback(host):
        logger.warning(
            "bound to %s, not a loopback address: the dashboard has no authentication, so anyone who "
            "can reach this address sees the studies; the default 127.0.0.1 keeps them on this machine",
            host,
        )
    # Ctrl-C and SIGTERM stop it even when started with SIGINT ignored (a background job of a
    # non-interactive shell, nohup), where Python installs no KeyboardInterrupt handler
    main = threading.current_thread() is threading.main_thread()  # signals: main thread only
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)} if main else {}
    for sig in previous:
        signal.signal(sig, signal.default_int_handler)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
