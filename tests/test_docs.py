"""Every ```python block of the documentation runs as written (one namespace per page, in order),
and the site builds with `mkdocs build --strict` (no broken links or references)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(p.name for p in DOCS.glob("*.md"))
# pages whose examples run in a few seconds; every other page (interior-point solves, the
# enumeration of 173k chambers, the exact three-layer program, ...) is marked slow
FAST = {"index.md", "conventions.md", "two_layer.md", "duality.md"}


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def _params():
    for name in (p for p in PAGES if python_blocks((DOCS / p).read_text())):
        marks = [] if name in FAST else [pytest.mark.slow]
        yield pytest.param(name, marks=marks, id=name)


def test_pages_without_code_are_known():
    """Guard against a regex that silently finds nothing."""
    with_code = {p for p in PAGES if python_blocks((DOCS / p).read_text())}
    assert {"index.md", "getting_started.md", "conventions.md", "arrangements.md", "two_layer.md",
            "duality.md", "solvers.md", "deep.md"} <= with_code
    assert set(PAGES) - with_code <= {"DESIGN.md", "api.md", "bibliography.md"}  # reference pages only


@pytest.mark.parametrize("page", list(_params()))
def test_page_code_runs(page, tmp_path, monkeypatch):
    blocks = python_blocks((DOCS / page).read_text())
    assert blocks
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    ns: dict = {"__name__": f"docs_{page[:-3]}"}
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        for i, block in enumerate(blocks):
            exec(compile(block, f"{page} block {i + 1}", "exec"), ns)


def test_no_references_outside_the_repository():
    """User-facing pages cite works by author / title / venue, never by local file numbers or paths
    (DESIGN.md, the contributors' design notes, is checked by its own review)."""
    for page in (p for p in PAGES if p != "DESIGN.md"):
        text = (DOCS / page).read_text()
        assert "shared/papers" not in text and "../shared" not in text, page
        assert not re.search(r"\((?:00[0-4])[,;) ]|`00[0-4]`|paper `?00[0-4]", text), page


@pytest.mark.slow
def test_site_builds_strict(tmp_path):
    pytest.importorskip("mkdocs_jupyter")
    pytest.importorskip("mkdocstrings")
    env = dict(os.environ, CONVEXNN_DOCS_EXECUTE="false", CONVEXNN_DOCS_CACHE=str(tmp_path / "cache"),
               NO_MKDOCS_2_WARNING="1")
    site = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)], cwd=ROOT,
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-5000:]
    assert (site / "index.html").is_file()
    api = (site / "api" / "index.html").read_text()
    for name in ("enumerate_patterns", "c_relu", "certify", "plot_arrangement"):
        assert f'id="convexnn.{name}"' in api or f'id="convexnn.plot.{name}"' in api, name
    nb = site / "notebooks" / "01_hidden_convexity" / "index.html"
    assert nb.is_file() and "Cover" in nb.read_text()
    for page in ("bibliography", "conventions", "getting_started"):
        assert (site / page / "index.html").is_file()
