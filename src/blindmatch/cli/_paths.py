"""File names in JSON output: always valid JSON, even for names that are not UTF-8.

On POSIX a file name is bytes; Python hands undecodable bytes over as lone surrogates
(``"bad\\udcff.jpg"``), which ``json.dumps`` writes as a ``\\udcff`` escape that strict
parsers (Go, Rust's serde, ``jq``) reject. A name that is valid UTF-8 is written as it is.
Any other name gets two fields: ``KEY`` holds it with each undecodable byte replaced by
U+FFFD (readable, not exact), and ``KEY_hex`` holds its exact bytes in hex, so
``os.fsdecode(bytes.fromhex(record["path_hex"]))`` opens the same file again.
"""

from __future__ import annotations

import os

__all__ = ["json_path", "path_from_json"]


def json_path(key: str, name: str) -> dict[str, str]:
    """The JSON field(s) for one file name (module docstring).

    Args:
        key: The field's name (``"path"``, ``"upload"``, ...).
        name: The name as Python has it (``os.fsdecode`` of the bytes).

    Returns:
        ``{key: name}``, or ``{key: readable, key + "_hex": exact bytes in hex}``.
    """
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raw = os.fsencode(name)
        return {key: raw.decode("utf-8", "replace"), f"{key}_hex": raw.hex()}
    return {key: name}


def path_from_json(record: dict[str, object], key: str = "path") -> str:
    """The exact file name of a record written with :func:`json_path` (its inverse).

    Args:
        record: A parsed JSON object.
        key: The field's name.

    Returns:
        The name as Python has it, ``KEY_hex`` decoded when present.
    """
    raw = record.get(f"{key}_hex")
    if isinstance(raw, str):
        return os.fsdecode(bytes.fromhex(raw))
    name = record[key]
    if not isinstance(name, str):
        raise TypeError(f"{key} must be a string")
    return name
