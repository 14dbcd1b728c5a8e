"""The README's tour runs as written (so the front page cannot rot)."""

import re
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.slow
def test_readme_tour_runs_and_its_claims_hold():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python block"
    ns: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), ns)
    cx, X, y, net, sol = ns["cx"], ns["X"], ns["y"], ns["net"], ns["sol"]
    # claims made in the comments of the tour
    assert len(ns["P"]) == 744 == cx.count_patterns(X, bias=True)
    assert ns["cert"].exact and ns["cert"].lower_bound <= ns["cert"].primal + 1e-9
    assert ns["f3"].last_solution.value == pytest.approx(ns["net3"].objective(ns["X5"], ns["y5"], 0.002), rel=1e-6)
    assert np.isfinite(sol.value)


@pytest.mark.slow
def test_every_readme_block_runs():
    """Every python block of the README runs, in order, in one namespace (as a reader would)."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 4
    ns: dict = {}
    for i, b in enumerate(blocks):
        exec(compile(b, f"README.md block {i}", "exec"), ns)
    cx = ns["cx"]
    assert ns["c"].improving_neuron is not None and not ns["c"].is_optimal
    assert ns["res"].lams[0] >= ns["res"].lams[-1]
    assert isinstance(ns["sol_back"], cx.ConvexSolution)
