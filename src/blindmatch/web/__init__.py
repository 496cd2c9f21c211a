"""The reporting page: static files a person opens in a browser to fingerprint their own
images and videos on their device (only the fingerprints are ever sent).

Theory of operation
-------------------
The page is static (HTML, CSS, ES modules, a worker and a WebAssembly module): no build
step for anyone who serves it, no third-party request, no cookie. Everything it computes it
computes in the browser: MD5 (``md5.js``), SHA-256 (WebCrypto), and PDQ with ``pdq.wasm``,
the project's own C core compiled by ``make wasm`` (:mod:`blindmatch.web.wasm_build`), so
on the same pixels it is bit-identical to :func:`blindmatch.fingerprint.pdq_from_rgb`. The
browser decodes files with its own decoders; docs/web.md has the measured distance to the
Python pipeline.

A server mounts :func:`static_dir` at its root and sends :data:`CONTENT_SECURITY_POLICY`
as a header with every response (the page also carries it in a meta tag, which cannot
express ``frame-ancestors``).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["CONTENT_SECURITY_POLICY", "INDEX", "static_dir"]

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; "
    "script-src 'self' 'wasm-unsafe-eval'; "
    "worker-src 'self'; "
    "connect-src 'self'; "
    "style-src 'self'; "
    "img-src 'self' blob:; "
    "media-src blob:; "
    "base-uri 'none'; "
    "form-action 'none'; "
    "frame-ancestors 'none'"
)
"""Only this origin's scripts, styles, worker, and requests; WebAssembly compilation;
thumbnails from ``blob:`` URLs made on the page. Nothing else, from anywhere."""

INDEX = "index.html"
"""The page's entry file, inside :func:`static_dir`."""


def static_dir() -> Path:
    """The directory of the page's static files, to serve as a web root.

    The files are package data, so this is a real directory of the installed package.
    """
    return Path(str(resources.files(__name__).joinpath("static")))
