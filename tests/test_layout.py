"""The package's shape: imports run one way, every public module re-exports a sorted __all__."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import blindmatch

SRC = Path(blindmatch.__file__).parent

# Which top-level parts of blindmatch each part may import. Imports run downward only:
# cli -> simulate -> protocols -> {psi, fingerprint} -> errors; samples (synthetic media)
# stands beside them and imports nothing of blindmatch but errors. The HTTP service sits on
# top of protocols (cli -> service -> protocols): nothing below it imports it. The client
# side over HTTP (cli -> client -> protocols) and the service never import each other.
# top of protocols (cli -> service -> protocols): nothing below it imports it.
# The reporting page (web) is static files: the cli hands their directory to the service,
# which never imports it (cli -> web).
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "_fixed": {"errors", "_fixed"},
    "fingerprint": {"errors", "_fixed", "fingerprint"},
    "psi": {"errors", "_fixed", "psi"},
    "protocols": {"errors", "_fixed", "psi", "fingerprint", "protocols"},
    "samples": {"errors", "samples"},
    "simulate": {"errors", "psi", "fingerprint", "protocols", "simulate"},
    "service": {"errors", "_fixed", "psi", "fingerprint", "protocols", "service"},
    # The client talks to the service over HTTP only: neither imports the other.
    "client": {"errors", "_fixed", "psi", "fingerprint", "protocols", "client"},
    "cli": {
        "errors",
        "psi",
        "fingerprint",
        "protocols",
        "simulate",
        "samples",
        "service",
        "client",
        "web",
        "cli",
    },
    "web": {"errors", "fingerprint", "web"},
}


def _part(module_path: Path) -> str:
    rel = module_path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py")


def _blindmatch_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "blindmatch" and len(parts) > 1:
                found.add(parts[1])
    return found


SOURCES = sorted(p for p in SRC.rglob("*.py") if _part(p) in ALLOWED)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(SRC)))
def test_imports_run_downward(path: Path) -> None:
    part = _part(path)
    illegal = _blindmatch_imports(path) - ALLOWED[part]
    assert not illegal, f"{part} must not import {sorted(illegal)}"


def _public_modules() -> list[str]:
    names = ["blindmatch"]
    for info in pkgutil.walk_packages([str(SRC)], prefix="blindmatch."):
        leaf = info.name.rsplit(".", 1)[-1]
        # Alembic's migration scripts run only inside Alembic (env.py reads its context).
        if ".migrations" in info.name:
            continue
        if not leaf.startswith("_") and leaf != "__main__":
            names.append(info.name)
    return sorted(names)


@pytest.mark.parametrize("name", _public_modules())
def test_all_is_sorted_and_exists(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    assert list(exported) == sorted(exported), f"{name}.__all__ is not sorted"
    for symbol in exported:
        assert hasattr(module, symbol), f"{name}.__all__ names missing {symbol}"


def test_the_wire_codec_knows_no_index() -> None:
    """``protocols.messages`` encodes bytes; what an index digest is, the index side says."""
    path = SRC / "protocols" / "messages.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imports = [node for node in ast.walk(tree) if isinstance(node, ast.Import)]
    modules = {alias.name for node in imports for alias in node.names} | {
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module is not None
    }
    assert not {name for name in modules if name.startswith("blindmatch.psi.index")}
    assert not {name for name in modules if name.startswith("blindmatch.psi._index")}


def test_service_is_imported_by_nothing_below_it() -> None:
    below = [p for p in SOURCES if _part(p) not in ("service", "cli")]
    assert below, "the layout test found no sources"
    for path in below:
        assert "service" not in _blindmatch_imports(path), f"{path.name} imports the service"


def test_client_and_service_never_import_each_other() -> None:
    for path in SOURCES:
        part, imported = _part(path), _blindmatch_imports(path)
        if part == "client":
            assert "service" not in imported, f"{path.name} imports the service"
        if part == "service":
            assert "client" not in imported, f"{path.name} imports the client"


def test_help_works_without_importing_the_service() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from blindmatch.cli import build_parser; build_parser(); "
        "print(sorted(m for m in sys.modules if m.startswith(('blindmatch.service', "
        "'fastapi', 'sqlalchemy', 'uvicorn'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
