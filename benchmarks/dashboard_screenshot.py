"""A screenshot of ``boengine dashboard`` on a finished study (the README's image).

Serves the study on 127.0.0.1 (a free port), opens its page in headless Chromium
(:func:`engine.interfaces.dashboard.screenshot.take_screenshot`), checks that the page shows the
trial table and the Pareto plot with no console error, and writes the PNG:

    .venv/bin/boengine run experiments/smoke.json --study-dir /tmp/dash_smoke     # about a minute
    .venv/bin/python benchmarks/dashboard_screenshot.py /tmp/dash_smoke [--out benchmarks/results/dashboard.png]

Nothing is written to the study.
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engine.interfaces.dashboard import create_app  # noqa: E402
from engine.interfaces.dashboard.app import make_server  # noqa: E402
from engine.interfaces.dashboard.screenshot import take_screenshot  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", type=Path, help="a finished study directory")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "dashboard.png")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=1480)
    args = parser.parse_args()

    server = make_server(create_app(args.study), "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.port}/"  # a study given directly opens its own page here
        page = take_screenshot(url, args.out, width=args.width, height=args.height, budget_ms=20_000)
    finally:
        server.shutdown()
        server.server_close()
    missing = [what for what in ('id="trial-table"', 'id="pareto-pairs"') if what not in page.dom]
    for line in page.console:
        print(f"console: {line}")
    if missing or page.errors:
        print(f"the page lacks {missing} or has console errors {page.errors}", file=sys.stderr)
        return 1
    print(f"wrote {args.out} ({args.width} x {args.height}) of {url} for {args.study}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
