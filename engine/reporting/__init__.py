"""What a reader sees: report.md/html (``report.py``, ``report_verdict.py``), plots, tables,
exports (pareto.csv, JSON) and the strategy-config entry of a chosen trial (``best.py``)."""
