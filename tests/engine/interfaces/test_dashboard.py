"""The dashboard: every page and callback answers with the study's content, also while a study is
being written, never writes to a study, and renders in a real (headless) browser.

The app runs on a Werkzeug server in a thread, bound to 127.0.0.1 on a free port; callbacks are
called as the browser calls them (POST ``/_dash-update-component``, built from
``/_dash-dependencies``). Two studies: a synthetic one, run for real, and a trading one made from
prepared data with the store's own writers (its verdict is computed, not cached, so the
read-only check covers the verdict path too).
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

IN_CI = bool(os.environ.get("CI"))
if not IN_CI and importlib.util.find_spec("dash") is None:  # in CI the extra is installed: fail, not skip
    pytest.skip(
        'the dashboard extra is not installed (pip install -e ".[dashboard]")', allow_module_level=True
    )

import requests  # noqa: E402

from engine.analysis.results import StudyResults  # noqa: E402
from engine.interfaces.dashboard import create_app  # noqa: E402
from engine.interfaces.dashboard.app import make_server  # noqa: E402
from engine.interfaces.dashboard.screenshot import find_chromium, take_screenshot  # noqa: E402
from engine.store import StudyStore  # noqa: E402
from engine.study.run import run_study  # noqa: E402
from tests.engine.conftest import synthetic_spec  # noqa: E402
from tests.engine.made_studies import trading_study  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]


# ----------------------------------------------------------------- studies


@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A studies directory: ``syn`` (a synthetic study, run) and ``trading`` (made from data)."""
    root = tmp_path_factory.mktemp("dash") / "studies"
    spec = synthetic_spec("syn", budget={"trials": 5, "sobol_trials": 5, "max_epochs": 3})
    run_study(spec, root / "syn")
    trading_study(root / "trading", tmp_path_factory.mktemp("bars"))
    return root


# ----------------------------------------------------------------- the server and its callbacks


class Dashboard:
    """A served app: its URL and its callbacks, called like the browser calls them."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.deps = requests.get(f"{url}/_dash-dependencies", timeout=30).json()

    def dependency(self, output: str) -> dict[str, Any]:
        found = [d for d in self.deps if output in d["output"]]
        assert len(found) == 1, (output, [d["output"] for d in self.deps])
        return found[0]

    def call(self, output: str, values: dict[str, Any], changed: str | None = None) -> requests.Response:
        """POST one callback; ``values``: 'id.property' -> value for its inputs and state."""
        dep = self.dependency(output)

        def filled(items: list[dict[str, str]]) -> list[dict[str, Any]]:
            return [{**i, "value": values.get(f"{i['id']}.{i['property']}")} for i in items]

        outputs = [
            {"id": part.split(".")[0], "property": part.split(".")[1]}
            for part in dep["output"].strip(".").split("...")
        ]
        first = dep["inputs"][0]
        payload = {
            "output": dep["output"],
            "outputs": outputs if len(outputs) > 1 else outputs[0],
            "inputs": filled(dep["inputs"]),
            "state": filled(dep["state"]),
            "changedPropIds": [changed or f"{first['id']}.{first['property']}"],
        }
        return requests.post(f"{self.url}/_dash-update-component", json=payload, timeout=120)

    def page(self, pathname: str, search: str = "") -> str:
        r = self.call("page.children", {"url.pathname": pathname, "url.search": search})
        assert r.status_code == 200, r.text[:500]
        return json.dumps(r.json(), ensure_ascii=False)  # the text as decoded (the wire escapes quotes)

    def study(self, key: str, shown: str | None = None) -> requests.Response:
        return self.call(
            "study-head.children",
            {"study-tick.n_intervals": 1, "study-key.data": key, "study-signature.data": shown},
        )


def _serve(path: Path, refresh_s: float = 5.0) -> Iterator[Dashboard]:
    server = make_server(create_app(path, refresh_s=refresh_s), "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Dashboard(f"http://127.0.0.1:{server.port}")
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def dash(studies: Path) -> Iterator[Dashboard]:
    yield from _serve(studies)


def _snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every path under ``root`` (directories too): mode, size, modification time in ns."""
    out = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        out[str(path.relative_to(root))] = (st.st_mode, st.st_size if path.is_file() else 0, st.st_mtime_ns)
    st = root.lstat()
    out["."] = (st.st_mode, 0, st.st_mtime_ns)
    return out


# ----------------------------------------------------------------- pages and callbacks


def test_every_page_and_callback_answers_with_the_studys_content(
    dash: Dashboard, studies: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_write(*_: Any, **__: Any) -> None:
        raise AssertionError("the dashboard wrote a verdict")

    monkeypatch.setattr(StudyStore, "write_verdict", no_write)
    before = _snapshot(studies)
    answered: set[str] = set()

    for path in ("/", "/study/syn", "/study/trading", "/compare?studies=syn,trading", "/nosuch"):
        r = requests.get(dash.url + path, timeout=30)
        assert r.status_code == 200 and "_dash-config" in r.text and "boengine dashboard" in r.text, path
    layout = requests.get(f"{dash.url}/_dash-layout", timeout=30)
    assert layout.status_code == 200 and {"url", "page"} <= _ids(layout.json())

    # routing: each page's skeleton
    assert {"index-tick", "index-body", "compare-pick", "compare-link"} <= _ids(json.loads(dash.page("/")))
    study_page = json.loads(dash.page("/study/trading"))
    assert _find(study_page, "study-key")["data"] == "trading"
    assert _find(json.loads(dash.page("/compare", "?studies=syn,trading")), "compare-keys")["data"] == [
        "syn",
        "trading",
    ]
    assert "No study 'nosuch'" in dash.page("/study/nosuch") and "No page '/x'" in dash.page("/x")
    answered.add("page.children")

    # the list of studies
    r = dash.call("index-body.children", {"index-tick.n_intervals": 1})
    assert r.status_code == 200
    body = r.json()["response"]
    rows = {row["study"]: row for row in _rows(body, "study-table")}
    assert set(rows) == {"syn", "trading"}
    syn, trading = StudyResults.load(studies / "syn"), StudyResults.load(studies / "trading")
    assert rows["syn"]["status"] == "finished" and rows["syn"]["trials"] == "5/5"
    assert rows["trading"]["status"] == "finished" and rows["trading"]["trials"] == "6/6"
    assert float(rows["syn"]["hypervolume"]) == pytest.approx(syn.hypervolume, rel=1e-3)
    assert rows["trading"]["front"] == str(len(trading.front))
    verdict = trading.verdict
    assert verdict is not None
    assert rows["trading"]["verdict"] == ("edge" if verdict.edge else "no evidence")
    assert rows["syn"]["verdict"].startswith("n/a")
    assert [o["value"] for o in body["compare-pick"]["options"]] == ["syn", "trading"]
    answered.add("index-body.children")

    r = dash.call("compare-link.href", {"compare-pick.value": ["syn", "trading"]})
    assert (
        r.status_code == 200
        and r.json()["response"]["compare-link"]["href"] == "/compare?studies=syn%2Ctrading"
    )
    r = dash.call("compare-link.href", {"compare-pick.value": ["syn"]})
    assert r.json()["response"]["compare-link"]["href"] == "/compare"
    answered.add("compare-link.href")

    # one study: every section, with the verdict computed in memory
    r = dash.study("trading")
    assert r.status_code == 200
    text = r.text
    shown_ids = _ids(r.json())
    for graph in ("pareto-pairs", "pareto-3d", "hypervolume-graph", "parallel-graph", "curves-graph"):
        assert graph in shown_ids, graph
    assert {"proposals-graph", "trial-table", "parallel-color"} <= shown_ids
    assert verdict.sentence in json.dumps(r.json(), ensure_ascii=False)
    for name in ("Pareto front (held-out test)", "Pareto front (validation)", "buy and hold (test)"):
        assert name in text, name
    table = _rows(r.json(), "trial-table")
    assert [row["index"] for row in table] == [str(r.index) for r in trading.records]
    assert {"test_sharpe", "val_sharpe", "hidden_size", "status", "source", "seconds"} <= set(table[0])
    assert {row["index"] for row in table if row["front"] == "*"} == {str(r.index) for r in trading.front}
    for row, rec in zip(table, trading.records):
        assert float(row["val_sharpe"]) == pytest.approx(rec.metrics["sharpe"], rel=1e-3)
        test = trading.test.get(rec.index)
        assert (
            row["test_sharpe"] == "-"
            if test is None
            else float(row["test_sharpe"]) == pytest.approx(test["sharpe"], rel=1e-3)
        )
    signature = r.json()["response"]["study-signature"]["data"]
    unchanged = dash.study("trading", shown=signature)
    assert unchanged.status_code == 204  # nothing new: "no update", nothing rendered
    r = dash.study("trading", shown={**signature, "curves": "older"})  # only the curves changed since
    assert r.status_code == 200 and set(r.json()["response"]) == {"study-curves", "study-signature"}
    r = dash.study("syn")
    assert r.status_code == 200 and "No verdict: selection statistics need" in r.text
    assert "report.html" in r.text  # a link to the study's own report
    answered.add("study-head.children")

    r = dash.call(
        "parallel-graph.figure",
        {"parallel-color.value": "max_drawdown_pct", "study-key.data": "trading"},
    )
    assert r.status_code == 200
    line = r.json()["response"]["parallel-graph"]["figure"]["data"][0]["line"]
    assert line["reversescale"] is True  # lower drawdown is better: the better end stays yellow
    assert line["color"] == pytest.approx([r.metrics["max_drawdown_pct"] for r in trading.records])
    answered.add("parallel-graph.figure")

    # robustness: a button on the study page, the views computed when it is pressed
    assert "robustness-compute" in shown_ids and "robustness-costs" not in shown_ids
    r = dash.call("robustness-body.children", {"robustness-compute.n_clicks": 1, "study-key.data": "trading"})
    assert r.status_code == 200
    assert {"robustness-costs", "robustness-monte-carlo", "robustness-plateau"} <= _ids(r.json())
    costs = _rows(r.json(), "robustness-costs")
    # this study's trials stored no positions: the baselines are stressed, the front is named as missing
    assert costs[0][""] == "buy and hold"
    assert "No positions stored for trial" in r.text
    mc = {row["figure"]: row for row in _rows(r.json(), "robustness-monte-carlo") if row["series"] == "pick"}
    assert float(mc["Sharpe"]["observed"]) == pytest.approx(trading.pick("knee").metrics["sharpe"], abs=0.01)
    answered.add("robustness-body.children")

    r = dash.call(
        "compare-body.children",
        {
            "compare-tick.n_intervals": 1,
            "compare-keys.data": ["syn", "trading"],
            "compare-signature.data": None,
        },
    )
    assert r.status_code == 200
    assert {"compare-fronts", "compare-hypervolume", "compare-table"} <= _ids(r.json())
    assert "syn: front (validation)" in r.text and "trading: front (held-out test)" in r.text
    answered.add("compare-body.children")

    assert answered == {d["output"].strip(".").split("...")[0] for d in dash.deps}  # every callback

    # the study's own pages, and nothing else of the directory
    assert requests.get(f"{dash.url}/files/syn/report.html", timeout=30).status_code == 200
    for bad in (
        "/files/syn/spec.json",
        "/files/trading/report.html",
        "/files/nosuch/report.html",
        "/files/syn/../syn/meta.json",
    ):
        assert requests.get(dash.url + bad, timeout=30).status_code == 404, bad

    assert _snapshot(studies) == before  # read-only: no file or directory changed, none appeared


def _components(node: Any) -> Iterator[dict[str, Any]]:
    """The props of every component in a rendered tree (a callback's or the layout's JSON)."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "props" in item and "type" in item:
                yield item["props"]
                stack += list(item["props"].values())
            else:
                stack += list(item.values())
        elif isinstance(item, list):
            stack += item


def _text(node: Any) -> str:
    """The text of a rendered component tree."""
    if isinstance(node, (str, int, float)):
        return str(node)
    if isinstance(node, list):
        return "".join(_text(n) for n in node)
    if isinstance(node, dict):
        return _text(node.get("props", {}).get("children", ""))
    return ""


def _rows(node: Any, table_id: str) -> list[dict[str, str]]:
    """The rows of the HTML table ``table_id`` (header -> cell text)."""
    head, body = _find(node, table_id)["children"]
    headers = [_text(th) for th in head["props"]["children"]["props"]["children"]]
    rows = body["props"]["children"]
    return [dict(zip(headers, (_text(td) for td in tr["props"]["children"]))) for tr in rows]


def _ids(node: Any) -> set[str]:
    return {str(p["id"]) for p in _components(node) if "id" in p}


def _find(node: Any, component_id: str) -> dict[str, Any]:
    found = [p for p in _components(node) if p.get("id") == component_id]
    assert found, f"no component {component_id!r}"
    return found[0]


def test_half_started_and_damaged_studies_render(studies: Path, tmp_path: Path) -> None:
    root = tmp_path / "studies"
    starting = root / "starting"
    starting.mkdir(parents=True)
    (starting / ".lock").write_text("")
    (starting / "meta.json").write_text((studies / "syn" / "meta.json").read_text())
    empty = root / "empty"
    empty.mkdir()
    for name in ("meta.json", "spec.json", "spec.given.json"):
        shutil.copy(studies / "syn" / name, empty / name)
    damaged = root / "damaged"
    shutil.copytree(studies / "syn", damaged)
    (damaged / "trials" / "1" / "result.json").write_text("{ not json")
    (root / "notes").mkdir()  # not a study: not listed
    before = _snapshot(root)
    for dash in _serve(root):
        r = dash.call("index-body.children", {"index-tick.n_intervals": 1})
        assert r.status_code == 200
        rows = {row["study"]: row["status"] for row in _rows(r.json(), "study-table")}
        assert rows == {"damaged": "damaged", "empty (syn)": "interrupted", "starting": "starting"}
        r = dash.study("starting")
        assert r.status_code == 200 and "Starting: boengine run is preparing" in r.text
        r = dash.study("empty")
        assert r.status_code == 200 and "No trial yet." in r.text and "No feasible trial yet." in r.text
        r = dash.study("damaged")
        assert r.status_code == 200 and "Cannot read this study" in r.text and "corrupt JSON" in r.text
    for dash in _serve(root / "empty"):  # a study given directly: its own page at /
        page = json.loads(dash.page("/"))
        assert _find(page, "study-key")["data"] == "empty" and "index-body" not in _ids(page)
        assert "all studies" not in dash.study("empty").text  # no list to go back to
    assert _snapshot(root) == before


def test_a_study_being_written_renders_at_every_step(studies: Path, tmp_path: Path) -> None:
    """A writer plays ``boengine run``: it holds the study's lock, marks the run, and writes the
    synthetic study's files one by one, atomically (by rename), while the list and the study page
    are polled: every answer is complete, the trial count only grows, and the study goes from
    starting through running to finished."""
    from filelock import FileLock

    source = studies / "syn"
    root = tmp_path / "studies"
    target = root / "live"
    target.mkdir(parents=True)
    lock = FileLock(str(target / ".lock"), timeout=0)
    lock.acquire()
    done = threading.Event()
    errors: list[BaseException] = []

    def put(name: str, text: str | None = None) -> None:
        dest = target / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.tmp")
        if text is None:
            shutil.copyfile(source / name, tmp)
        else:
            tmp.write_text(text)
        os.replace(tmp, dest)  # atomic, as engine.store.write_bytes

    def writer() -> None:
        try:
            put(".run", json.dumps({"start": time.time()}))
            put("meta.json")
            time.sleep(0.4)
            put("spec.given.json")
            put("spec.json")
            time.sleep(0.4)
            batches = (source / "batches.jsonl").read_text().splitlines()
            for i in range(5):
                put(f"trials/{i}/curve.jsonl")
                put(f"trials/{i}/result.json")
                if i < len(batches):
                    with (target / "batches.jsonl").open("a") as fh:
                        fh.write(batches[i] + "\n")
                time.sleep(0.4)
            for name in ("pareto.csv", "report.md", "report.html"):
                put(name)
            (target / ".run").unlink()
            lock.release()
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    for dash in _serve(root, refresh_s=0.5):
        thread = threading.Thread(target=writer)
        thread.start()
        seen: list[int] = []
        statuses: list[str] = []
        shown = None
        while True:
            finished = done.is_set()
            r = dash.call("index-body.children", {"index-tick.n_intervals": 1})
            assert r.status_code == 200, r.text[:300]
            rows = _rows(r.json(), "study-table")
            statuses.append(rows[0]["status"])
            page = dash.study("live", shown)
            assert page.status_code in (200, 204), page.text[:300]
            if page.status_code == 200:
                response = page.json()["response"]
                shown = response["study-signature"]["data"]
                if "study-trials" in response:  # redrawn: its files changed
                    has_table = "trial-table" in _ids(response["study-trials"])
                    seen.append(len(_rows(response, "trial-table")) if has_table else 0)
            if finished:
                break
        thread.join()
        assert not errors, errors
        assert seen == sorted(seen) and seen[-1] == 5 and len(set(seen)) >= 3, seen
        order = list(dict.fromkeys(statuses))
        assert order[0] == "starting" and "running" in order and order[-1] == "finished", order
        assert rows[0]["trials"] == "5/5"


# ----------------------------------------------------------------- the command line


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    from engine.interfaces.cli import main

    monkeypatch.setattr(sys, "argv", ["boengine", *args])
    with pytest.raises(SystemExit) as info:
        main()
    return int(info.value.code or 0), capsys.readouterr().err


def test_bad_input_exits_2_with_one_line(
    studies: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _cli(monkeypatch, capsys, "dashboard", str(tmp_path / "missing"))
    assert code == 2 and err.count("\n") == 1 and "no such directory" in err
    (tmp_path / "afile").write_text("x")
    code, err = _cli(monkeypatch, capsys, "dashboard", str(tmp_path / "afile"))
    assert code == 2 and err.count("\n") == 1 and "not a directory" in err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, err = _cli(monkeypatch, capsys, "dashboard", str(studies), "--port", str(port))
    assert code == 2 and err.count("\n") == 1 and f"--port {port}" in err and "in use" in err
    code, err = _cli(monkeypatch, capsys, "dashboard", str(studies), "--host", "192.0.2.1")  # not ours
    assert code == 2 and err.count("\n") == 1 and "--host 192.0.2.1" in err
    monkeypatch.setitem(sys.modules, "dash", None)  # as if the extra were not installed
    code, err = _cli(monkeypatch, capsys, "dashboard", str(studies))
    assert code == 2 and err.count("\n") == 1
    assert "needs dash" in err and 'pip install -e ".[dashboard]"' in err


def test_the_command_serves_on_localhost_until_interrupted(studies: Path) -> None:
    port = _free_port()
    before = _snapshot(studies)
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine.interfaces.cli", "dashboard", str(studies), "--port", str(port)],
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith(f"boengine dashboard of {studies}: http://127.0.0.1:{port}/"), first
        r = requests.get(f"http://127.0.0.1:{port}/", timeout=30)
        assert r.status_code == 200 and "boengine dashboard" in r.text
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-2000:]
    assert "Traceback" not in err
    assert _snapshot(studies) == before


# ----------------------------------------------------------------- its directory and its Host header


def test_a_relative_directory_serves_report_links_and_a_foreign_host_is_refused(
    studies: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``boengine dashboard studies`` as the README writes it; a page of another name (DNS
    rebinding to 127.0.0.1) gets 400 on every route."""
    monkeypatch.chdir(studies.parent)
    for dash in _serve(Path(studies.name)):
        r = requests.get(f"{dash.url}/files/syn/report.html", timeout=30)
        assert r.status_code == 200 and "syn" in r.text
        port = dash.url.rsplit(":", 1)[1]
        for route in ("/", "/_dash-dependencies", "/files/syn/report.html"):
            r = requests.get(dash.url + route, headers={"Host": f"rebound.example:{port}"}, timeout=30)
            assert r.status_code == 400, route
        for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"):
            assert requests.get(f"{dash.url}/", headers={"Host": host}, timeout=30).status_code == 200, host


def test_a_link_to_a_study_shows_that_study(studies: Path, tmp_path: Path) -> None:
    from engine.interfaces.dashboard.data import Catalog

    (tmp_path / "link").symlink_to(studies / "trading")
    catalog = Catalog(tmp_path / "link")
    assert catalog.single and list(catalog.studies().values()) == [(studies / "trading").resolve()]


def test_a_non_loopback_address_is_warned_about(
    studies: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from engine.interfaces.dashboard import app as dashboard_app

    class Stopped:
        port = 8080

        def serve_forever(self) -> None:
            raise KeyboardInterrupt

        def server_close(self) -> None:
            pass

    monkeypatch.setattr(dashboard_app, "make_server", lambda app, host, port: Stopped())
    for host, warned in (("0.0.0.0", True), ("192.0.2.7", True), ("127.0.0.2", False), ("localhost", False)):
        caplog.clear()
        dashboard_app.serve(studies, host=host, echo=lambda line: None)
        assert any("no authentication" in r.getMessage() for r in caplog.records) == warned, host


# ----------------------------------------------------------------- a real browser


CHROMIUM = find_chromium()


@pytest.mark.skipif(
    CHROMIUM is None and not IN_CI, reason="no Chromium (CI installs it: apt-get install chromium)"
)
def test_the_browser_shows_the_pareto_plot_and_the_trial_table(
    dash: Dashboard, studies: Path, tmp_path: Path
) -> None:
    from PIL import Image

    before = _snapshot(studies)
    page = take_screenshot(f"{dash.url}/study/trading", tmp_path / "page.png", width=1300, height=2200)
    dom = page.dom
    assert 'id="pareto-pairs"' in dom and "js-plotly-plot" in dom and 'id="pareto-3d"' in dom
    assert 'id="trial-table"' in dom and dom.count('<tr class="front"') == len(
        StudyResults.load(studies / "trading").front
    )
    assert "Pareto front (held-out test)" in dom  # the legend as drawn
    assert "trading" in dom and ">completed<" in dom
    assert not page.errors, "\n".join(page.console)
    image = Image.open(io.BytesIO((tmp_path / "page.png").read_bytes())).convert("L")
    assert image.size == (1300, 2200)
    pixels = np.asarray(image, dtype=float)
    assert pixels.std() > 20 and (pixels < 128).mean() > 0.01  # drawn, not a blank page
    index = take_screenshot(dash.url + "/", tmp_path / "index.png", width=1200, height=900)
    assert 'id="study-table"' in index.dom and "/study/syn" in index.dom and not index.errors, index.console
    assert _snapshot(studies) == before
