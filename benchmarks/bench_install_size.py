"""Benchmark: what installing blindmatch costs on disk, per extra.

What is measured
----------------
The package is built once as a wheel from this checkout, then installed into a fresh
virtual environment per line below (pip's cache serves the dependencies). The size is
what ``du`` counts (allocated blocks) under the environment's ``site-packages``, minus the
packages every new environment starts with (pip, setuptools, ``_distutils_hack``), so each
line is what blindmatch and its dependencies add. The largest distributions are listed.

Lines: the base install, each user-facing extra alone, and the user-facing extras together.
``test`` and ``bench`` are for developers and are not measured.

Run: ``python -m benchmarks install_size`` (a few minutes: one environment per line).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["main"]

RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).parent.parent
NAME = "install_size"
LINES: dict[str, str] = {
    "base": "",
    "secondary": "secondary",
    "video": "video",
    "secondary + video": "secondary,video",
}
SEED_PACKAGES = ("pip", "setuptools", "_distutils_hack", "pkg_resources", "distutils-precedence")
MB = 1024 * 1024
ALIASES = {"pil": "pillow"}
"""Import names that differ from their distribution's name."""


def _du(path: Path) -> int:
    """Bytes allocated under ``path`` (``du``'s count; hard links once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            st = os.lstat(os.path.join(folder, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


def _site_packages(venv: Path) -> Path:
    (found,) = venv.glob("lib/python*/site-packages")
    return found


def _top_level_sizes(site: Path) -> dict[str, int]:
    """Bytes per top-level entry of ``site-packages`` (packages, their .libs, dist-info)."""
    sizes: dict[str, int] = {}
    for entry in site.iterdir():
        if entry.name.startswith(SEED_PACKAGES) or entry.name == "__pycache__":
            continue
        key = entry.name.split("-")[0].split(".")[0].lower()
        key = ALIASES.get(key, key)
        size = _du(entry) if entry.is_dir() else os.lstat(entry).st_blocks * 512
        sizes[key] = sizes.get(key, 0) + size
    return sizes


def _run(argv: list[str]) -> None:
    """Run a command quietly; on failure show what it said and raise."""
    done = subprocess.run(argv, capture_output=True, check=False)  # noqa: S603
    if done.returncode != 0:
        sys.stderr.write(done.stderr.decode(errors="replace"))
        raise RuntimeError(f"{argv[:4]} exited with {done.returncode}")


def measure(wheel: Path, extras: str, tmp: Path) -> dict[str, Any]:
    """Install ``wheel[extras]`` into a fresh environment; the sizes it adds."""
    venv = tmp / f"venv-{extras or 'base'}".replace(",", "-")
    _run([sys.executable, "-m", "venv", str(venv)])
    target = f"{wheel}[{extras}]" if extras else str(wheel)
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", target])
    sizes = _top_level_sizes(_site_packages(venv))
    largest = sorted(sizes.items(), key=lambda item: -item[1])[:6]
    return {
        "extras": extras,
        "mb": round(sum(sizes.values()) / MB, 1),
        "largest_mb": {name: round(size / MB, 1) for name, size in largest},
    }


def run() -> dict[str, Any]:
    """Build the wheel, install each line into its own environment, measure."""
    with tempfile.TemporaryDirectory(prefix="bench-install-") as name:
        tmp = Path(name)
        _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp), str(ROOT)])
        (wheel,) = tmp.glob("blindmatch-*.whl")
        lines = {label: measure(wheel, extras, tmp) for label, extras in LINES.items()}
    return {
        "benchmark": NAME,
        "lines": lines,
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "measure": "du of site-packages minus pip/setuptools, fresh venv per line",
    }


def markdown(result: dict[str, Any]) -> str:
    """The results as a markdown table."""
    lines = [
        "# Install size per extra",
        "",
        "Fresh virtual environment per line; `du` of `site-packages` without pip and setuptools.",
        "",
        "| install | MB | largest parts (MB) |",
        "|---|---:|---|",
    ]
    for label, line in result["lines"].items():
        spec = f"blindmatch[{line['extras']}]" if line["extras"] else "blindmatch"
        parts = ", ".join(f"{name} {mb}" for name, mb in line["largest_mb"].items())
        lines.append(f"| `{spec}` ({label}) | {line['mb']} | {parts} |")
    lines += ["", f"Python {result['machine']['python']}, {result['machine']['platform']}.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the measurement, print the table, write ``results/install_size.{json,md}``."""
    parser = argparse.ArgumentParser(prog="bench_install_size", description=__doc__.split("\n")[0])
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    result = run()
    table = markdown(result)
    print(table)
    if not args.no_write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"{NAME}.json").write_text(json.dumps(result, indent=1) + "\n", "utf-8")
        (RESULTS / f"{NAME}.md").write_text(table, "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
