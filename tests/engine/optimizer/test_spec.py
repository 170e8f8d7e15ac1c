"""OptimizerSpec: validated, frozen, and light to import."""

from __future__ import annotations

import subprocess
import sys

import pydantic
import pytest

from engine.optimizer import OptimizerSpec


def test_spec_rejects_unknown_keys_and_is_frozen() -> None:
    with pytest.raises(pydantic.ValidationError, match="extra"):
        OptimizerSpec.model_validate({"mc_sample": 32})
    with pytest.raises(pydantic.ValidationError):
        OptimizerSpec(num_restarts=0)
    spec = OptimizerSpec()
    with pytest.raises(pydantic.ValidationError):
        spec.mc_samples = 8  # type: ignore[misc]
    assert OptimizerSpec.model_validate({"strategy": "ax_default"}).strategy == "ax_default"


def test_importing_the_spec_loads_neither_torch_nor_ax() -> None:
    code = (
        "import sys; from engine.optimizer import OptimizerSpec; OptimizerSpec(); "
        "print(sorted(m for m in ('torch', 'ax', 'botorch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
