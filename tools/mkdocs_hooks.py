"""mkdocs hooks for the convexnn site (referenced from mkdocs.yml).

The notebooks are executed at build time by mkdocs-jupyter (nbconvert). Recent ipykernel
versions log a transport warning at start-up that would otherwise end up as a stderr output
of a notebook cell on the rendered page; the kernel is started with its log level at ERROR.
"""

from __future__ import annotations

import re
from typing import Any

KERNEL_ARGS = ["--IPKernelApp.log_level=ERROR"]


def on_startup(**kwargs: Any) -> None:
    from mkdocs_jupyter import nbconvert2

    original = nbconvert2.get_nbconvert_app
    if getattr(original, "_convexnn_wrapped", False):
        return

    def get_nbconvert_app(*args: Any, **kw: Any) -> Any:
        app = original(*args, **kw)
        section = app.config["ExecutePreprocessor"]   # a dict or a traitlets Config
        section["extra_arguments"] = list(KERNEL_ARGS)
        return app

    get_nbconvert_app._convexnn_wrapped = True  # type: ignore[attr-defined]
    nbconvert2.get_nbconvert_app = get_nbconvert_app


# --------------------------------------------------------------------------- API pages
# The docstrings are written for Sphinx-style readers: ``:math:`...``` roles, ``.. math::``
# blocks, ``:func:`...``` cross references. mkdocstrings renders them as literal text; turn them
# into arithmatex spans (typeset by MathJax, like the math of the guides) and plain code.
_MATH_BLOCK = re.compile(
    r'<p>\.\. math::</p>\s*<div class="highlight"><pre><span></span><code>(.*?)</code></pre></div>', re.S)
_MATH_ROLE = re.compile(r":math:<code>(.*?)</code>", re.S)
_XREF_ROLE = re.compile(r":(?:func|class|meth|attr|data|mod|obj|exc):<code>~?(.*?)</code>", re.S)
_SPAN = re.compile(r"</?span[^>]*>")


def _block(m: "re.Match[str]") -> str:
    return '<div class="arithmatex">\\[' + _SPAN.sub("", m.group(1)).strip() + "\\]</div>"


def on_page_content(html: str, page: Any, **kwargs: Any) -> str:
    if "doc-heading" not in html and ":math:" not in html:
        return html
    html = _MATH_BLOCK.sub(_block, html)
    html = _MATH_ROLE.sub(lambda m: '<span class="arithmatex">\\(' + m.group(1) + "\\)</span>", html)
    return _XREF_ROLE.sub(lambda m: "<code>" + m.group(1) + "</code>", html)
