"""The dependency lock (requirements/): it matches the declarations, pins every declared
package at a version its bounds admit, with hashes, and is what this environment holds."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).parent.parent
LOCK = ROOT / "requirements" / "lock.txt"
PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^ ;\\]+)(?: ; ([^\\]+))?")


def _pins(path: Path, *, here_only: bool = False) -> dict[str, Version]:
    """``name -> version`` of every pin; with ``here_only``, of those whose environment
    marker holds on this machine (e.g. not ``sys_platform == 'win32'``)."""
    pins: dict[str, Version] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = PIN.match(line)
        if match:
            name = canonicalize_name(match.group(1))
            assert name not in pins, f"{name} pinned twice: the lock must be one set"
            marker = match.group(3)
            if here_only and marker and not Marker(marker.strip()).evaluate():
                continue
            pins[name] = Version(match.group(2))
    return pins


def _declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    lines = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        lines += extra
    return [Requirement(line) for line in lines]


def _check_lock(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(root / "scripts" / "check-lock")],
        capture_output=True,
        text=True,
        check=False,
    )


def test_lock_matches_the_declarations() -> None:
    result = _check_lock(ROOT)
    assert result.returncode == 0, result.stderr


def test_changed_declaration_makes_the_lock_stale(tmp_path: Path) -> None:
    for part in ("scripts", "requirements"):
        shutil.copytree(ROOT / part, tmp_path / part)
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    (tmp_path / "pyproject.toml").write_text(pyproject, encoding="utf-8")
    assert _check_lock(tmp_path).returncode == 0
    changed = pyproject.replace('"numpy>=', '"numpy>=0.1", "numpy-stl>=', 1)
    assert changed != pyproject
    (tmp_path / "pyproject.toml").write_text(changed, encoding="utf-8")
    result = _check_lock(tmp_path)
    assert result.returncode == 1
    assert "make lock" in result.stderr
    assert result.stderr.count("\n") == 1  # one line, no traceback


def test_every_declared_package_is_pinned_within_its_bounds() -> None:
    pins = _pins(LOCK)
    for requirement in _declared():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is declared but not locked: run make lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), name


def test_every_pin_carries_hashes() -> None:
    text = LOCK.read_text(encoding="utf-8")
    blocks = re.split(r"\n(?=[A-Za-z0-9._-]+==)", text)
    pinned = [block for block in blocks if PIN.match(block)]
    assert len(pinned) == len(_pins(LOCK)) > 10
    for block in pinned:
        assert re.search(r"--hash=sha256:[0-9a-f]{64}", block), block.splitlines()[0]


@pytest.mark.parametrize("lock", ["lock.txt", "build.txt"])
def test_this_environment_holds_exactly_the_pins(lock: str) -> None:
    # The set-up installs the lock and nothing else; an environment that drifted from it
    # (a package upgraded by hand) would not be the one CI vouches for.
    installed: dict[str, Version] = {
        canonicalize_name(dist.metadata["Name"]): Version(dist.version)
        for dist in metadata.distributions()
    }
    for name, version in _pins(ROOT / "requirements" / lock, here_only=True).items():
        assert installed.get(name) == version, name
