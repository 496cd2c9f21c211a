"""Exact hashes: the vector files' MD5/SHA-256, streaming across chunk edges, unreadable paths."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blindmatch.errors import FingerprintError, UnreadableMedia
from blindmatch.fingerprint.exact import (
    CHUNK_SIZE,
    file_digests,
    md5_bytes,
    md5_file,
    sha256_bytes,
    sha256_file,
)
from blindmatch.fingerprint.types import Md5Digest, Sha256Digest

VECTORS = Path(__file__).parent / "vectors" / "pdq"


def _vectors() -> list[dict[str, Any]]:
    data = json.loads((VECTORS / "reference.json").read_text(encoding="utf-8"))
    vectors: list[dict[str, Any]] = data["vectors"]
    return vectors


@pytest.mark.parametrize("vector", _vectors(), ids=lambda v: v["file"])
def test_vector_file_digests(vector: dict[str, Any]) -> None:
    path = VECTORS / "images" / vector["file"]
    assert md5_file(path) == Md5Digest.from_hex(vector["md5"])
    assert sha256_file(path) == Sha256Digest.from_hex(vector["sha256"])
    assert file_digests(str(path)) == (md5_file(path), sha256_file(path))
    data = path.read_bytes()
    assert md5_bytes(data).hex() == vector["md5"]
    assert sha256_bytes(data).hex() == vector["sha256"]


def test_known_empty_digests(tmp_path: Path) -> None:
    # RFC 1321 A.5 and FIPS 180-2: the digests of the empty string.
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert md5_file(empty).hex() == "d41d8cd98f00b204e9800998ecf8427e"
    assert sha256_file(empty).hex() == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


@pytest.mark.parametrize(
    "size", [CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 2 * CHUNK_SIZE + 7], ids=str
)
def test_streaming_across_chunk_edges(tmp_path: Path, size: int) -> None:
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert md5_file(path) == md5_bytes(data)
    assert sha256_file(path) == sha256_bytes(data)
    assert file_digests(path) == (md5_bytes(data), sha256_bytes(data))


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=4096))
def test_bytes_and_digest_round_trip(data: bytes) -> None:
    md5, sha = md5_bytes(data), sha256_bytes(data)
    assert Md5Digest.from_hex(md5.hex()) == md5
    assert Sha256Digest.from_bytes(bytes(sha)) == sha
    changed = data + b"\x00"
    assert md5_bytes(changed) != md5
    assert sha256_bytes(changed) != sha


@pytest.mark.parametrize("func", [md5_file, sha256_file, file_digests], ids=lambda f: f.__name__)
def test_missing_file_is_unreadable(tmp_path: Path, func: Any) -> None:
    with pytest.raises(UnreadableMedia, match="No such file"):
        func(tmp_path / "missing.jpg")


@pytest.mark.parametrize("func", [md5_file, sha256_file, file_digests], ids=lambda f: f.__name__)
def test_directory_is_unreadable(tmp_path: Path, func: Any) -> None:
    with pytest.raises(FingerprintError, match="cannot read the file"):
        func(tmp_path)


def test_wrong_path_type_is_rejected() -> None:
    with pytest.raises(TypeError):
        md5_file(b"/etc/hostname")  # type: ignore[arg-type]
