"""``import blindmatch`` offers the recipes, lazily; the hazmat stays in psi.oprf."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import blindmatch
from blindmatch.fingerprint.types import PdqFingerprint


def test_the_recipes_are_the_same_objects_as_in_their_homes() -> None:
    from blindmatch.protocols import PlatformSession, SessionPair
    from blindmatch.psi.index import build_index
    from blindmatch.psi.keys import SecretKey

    assert blindmatch.build_index is build_index
    assert blindmatch.SecretKey is SecretKey
    assert blindmatch.PlatformSession is PlatformSession
    assert blindmatch.SessionPair is SessionPair
    assert "blind_evaluate" not in blindmatch.__all__  # hazmat: blindmatch.psi.oprf
    assert set(blindmatch.__all__) <= set(dir(blindmatch))


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="'blind'"):
        getattr(blindmatch, "blind")  # noqa: B009 - the name is what is tested


def test_hash_file_gives_the_typed_value(tmp_path: Path) -> None:
    from PIL import Image

    Image.new("RGB", (64, 48), (200, 30, 90)).save(tmp_path / "flat.png")
    value = blindmatch.hash_file(tmp_path / "flat.png")
    assert isinstance(value, PdqFingerprint)
    assert blindmatch.hash_file(tmp_path / "flat.png", "sha256") == blindmatch.hash_file(
        tmp_path / "flat.png", "sha256"
    )


def test_importing_the_package_loads_no_cryptography() -> None:
    code = "import sys, blindmatch; print(any(m.startswith('blindmatch.psi') for m in sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "False"
