"""The ways in: the ``boengine`` CLI (``cli.py``), the Python API (``api.py``), the Dash dashboard
(``dashboard/``) and MLflow tracking (``tracking.py``)."""
