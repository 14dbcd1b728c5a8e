"""The built site in a real headless browser (Chromium): pages load, show their figures, and run
without JavaScript errors.

Skips cleanly when no ``chromium`` executable is installed (Debian/Ubuntu:
``apt-get install chromium``). Run it alone with
``.venv/bin/python -m pytest tests/test_site_browser.py``.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")]

# one notebook is executed for this check (the others are rendered without running them)
EXECUTED = "01_hidden_convexity"


def _build_site(tmp: Path) -> Path:
    """Build the site with only one notebook executed, through a config inheriting mkdocs.yml."""
    pytest.importorskip("mkdocs_jupyter")
    pytest.importorskip("mkdocstrings")
    site = tmp / "site"
    cfg = tmp / "mkdocs.yml"
    cfg.write_text(f"""INHERIT: {ROOT / 'mkdocs.yml'}
docs_dir: {ROOT / 'docs'}
site_dir: {site}
hooks:
  - {ROOT / 'tools' / 'mkdocs_hooks.py'}
plugins:
  - search
  - mkdocs-jupyter:
      include: ["notebooks/[0-9]*.py"]
      execute: true
      execute_ignore: ["notebooks/0[2-9]*.py", "notebooks/[1-9]*.py"]
      allow_errors: false
      kernel_name: python3
      cache_dir: {tmp / 'cache'}
  - mkdocstrings:
      handlers:
        python:
          options: {{docstring_style: numpy, show_source: false, show_root_heading: true, heading_level: 3}}
""")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(cfg)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-5000:]
    return site


def _serve(site: Path) -> http.server.ThreadingHTTPServer:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # silence the access log
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _chromium(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--hide-scrollbars", "--no-first-run", "--enable-logging=stderr", "--v=0",
           "--virtual-time-budget=8000", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def _console_errors(stderr: str, base: str) -> list[str]:
    """JavaScript errors of the page itself. Requests to other hosts (the MathJax CDN) fail on a
    machine without network; they are not errors of the site."""
    errs = []
    for line in stderr.splitlines():
        if "CONSOLE" not in line and "Uncaught" not in line:
            continue
        if "Uncaught" in line or ("ERROR" in line and base in line and "Failed to load resource" not in line):
            errs.append(line)
        elif "Failed to load resource" in line and base in line:
            errs.append(line)
    return errs


def _png_is_nontrivial(path: Path) -> None:
    import matplotlib.image as mpimg
    import numpy as np

    assert path.is_file() and path.stat().st_size > 10_000, path
    img = mpimg.imread(path)
    flat = (img[..., :3] * 255).astype(int).reshape(-1, 3)
    colors = np.unique(flat[:: max(1, len(flat) // 200_000)], axis=0)
    assert len(colors) > 50, f"{path.name}: only {len(colors)} colors"
    assert flat.std() > 10


PAGES = {
    "home": ("", r"<svg"),
    "api": ("api/", r'id="convexnn\.c_relu"'),
    "notebook": (f"notebooks/{EXECUTED}/", r'<img[^>]+src="data:image/png;base64,'),
}


def test_pages_load_with_figures_and_no_errors(tmp_path):
    """One build, one server (random free port), three pages: home, API, an executed notebook."""
    site = _build_site(tmp_path)
    server = _serve(site)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        for name, (path, figure) in PAGES.items():
            url = f"{base}/{path}"
            dom = _chromium("--dump-dom", url)
            assert dom.returncode == 0, (name, dom.stderr[-2000:])
            assert re.search(figure, dom.stdout), f"{name}: no figure in the rendered DOM"
            assert "404 - Not found" not in dom.stdout, name
            errors = _console_errors(dom.stderr, base)
            assert not errors, (name, errors)
            png = tmp_path / f"{name}.png"
            shot = _chromium(f"--screenshot={png}", "--window-size=1280,1600", url)
            assert shot.returncode == 0, (name, shot.stderr[-2000:])
            _png_is_nontrivial(png)
            if name == "notebook":
                assert len(re.findall(figure, dom.stdout)) >= 4      # the arrangement and count figures
    finally:
        server.shutdown()
        server.server_close()
