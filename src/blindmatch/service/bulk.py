"""Bulk import of a list a clearinghouse already holds (``blindmatch admin import FILE``).

Formats (``--format``, or guessed from the file: ``.jsonl``/``.json``; ``.csv`` with a
header naming ``signal`` and ``hash``; other ``.csv``: ``hma``; anything else: ``te``):

- ``csv``: a header naming ``signal`` and ``hash`` and optionally ``quality`` and
  ``report``; one fingerprint per row.
- ``jsonl``: one object per line with the same keys.
- ``te``: python-threatexchange's local file signal exchange
  (``threatexchange/exchanges/impl/file_api.py``, ``LocalFileSignalExchangeAPI``): one
  ``<signal type> <hash>`` per line, the type being the exchange's ``SignalType.get_name()``
  (``pdq``, ``video_md5``, ``video_sha256``; also ``md5``, ``sha256``), or the hash alone
  when the type is given (``--signal``, the exchange's ``signal_type`` setting); blank
  lines are skipped. These lines carry no reference: each is a report of its own.
- ``hma``: the headerless CSV of HMA's sample data and of python-threatexchange's simple
  signal state (``SimpleDescriptorRollup.as_row``): ``<hash>,<descriptor id>,<added on>,
  <space-separated labels>``, one file per signal type, the type named by the file
  (``pdq.csv``, ``video_md5.csv``, ``photo_md5.csv``) or by ``--signal``. The descriptor id
  is the row's report reference; the date and labels are not kept.

Rows that name the same ``report`` reference form one report, which keeps the reference
(``admin reports show REF`` finds it); a row without one is a report of its own. PDQ rows
with a quality below 50 are refused (counted); rows without a quality are trusted (the
operator's list). A report equal to a live one is counted as a duplicate. The whole file
is one transaction with one audit entry: a malformed row (reported by its line number,
never its content) imports nothing. Sample lines of the ``te`` and ``hma`` formats, with
their provenance, are in ``tests/vectors/import/``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Connection

from blindmatch.fingerprint.signals import PdqSignal
from blindmatch.service import audit, intake
from blindmatch.service.errors import Conflict, Unprocessable

__all__ = ["FORMATS", "ImportResult", "guess_format", "import_file", "parse"]

FORMATS = ("csv", "hma", "jsonl", "te")
_NAMES = {
    "pdq": "pdq",
    "md5": "md5",
    "video_md5": "md5",
    "photo_md5": "md5",
    "sha256": "sha256",
    "video_sha256": "sha256",
}
_BYTES = {"pdq": 32, "md5": 16, "sha256": 32}
_MAX_REF = 256


@dataclass(frozen=True, slots=True)
class _Row:
    line: int
    signal: str
    value: bytes
    quality: int | None
    report: str | None


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What an import did (counts only)."""

    reports: int
    fingerprints: int
    duplicates: int
    refused_low_quality: int

    def to_json(self) -> dict[str, int]:
        """The JSON ``admin import`` prints."""
        return {
            "reports": self.reports,
            "fingerprints": self.fingerprints,
            "duplicates": self.duplicates,
            "refused_low_quality": self.refused_low_quality,
        }


def _row(line: int, signal: object, value: object, quality: object, report: object) -> _Row:
    name = _NAMES.get(str(signal).strip().lower())
    if name is None:
        raise Unprocessable(f"line {line}: unknown signal type", code="invalid_import")
    try:
        raw = bytes.fromhex(str(value).strip())
    except ValueError:
        raise Unprocessable(f"line {line}: the hash is not hex", code="invalid_import") from None
    if len(raw) != _BYTES[name]:
        raise Unprocessable(f"line {line}: wrong hash length for {name}", code="invalid_import")
    level: int | None = None
    if quality not in (None, ""):
        try:
            level = int(str(quality))
        except ValueError:
            raise Unprocessable(
                f"line {line}: quality is not an integer", code="invalid_import"
            ) from None
        if not 0 <= level <= 100:
            raise Unprocessable(f"line {line}: quality is 0..100", code="invalid_import")
    ref = None if report in (None, "") else str(report)
    if ref is not None and len(ref) > _MAX_REF:
        raise Unprocessable(f"line {line}: report reference too long", code="invalid_import")
    return _Row(line, name, raw, level, ref)


def _signal_from(path: Path | None, signal: str | None, what: str) -> str:
    chosen = signal if signal is not None else (path.stem if path is not None else "")
    if chosen.strip().lower() not in _NAMES:
        raise Unprocessable(
            f"line 1: {what} needs the signal type (--signal, or a file named for it)",
            code="invalid_import",
        )
    return chosen


def parse(
    text: str, fmt: str, *, signal: str | None = None, path: Path | None = None
) -> Iterator[_Row]:
    """The rows of a file's text in format ``fmt``.

    Args:
        text: the file's text.
        fmt: one of :data:`FORMATS`.
        signal: the signal type of every row (``te`` lines without one, ``hma`` files).
        path: the file, whose name gives an ``hma`` file's signal type.

    Raises:
        Unprocessable: a malformed row (``invalid_import``, with its line number).
    """
    if fmt == "csv":
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames or not {"signal", "hash"} <= set(reader.fieldnames):
            raise Unprocessable(
                "line 1: the CSV header names signal and hash", code="invalid_import"
            )
        for number, record in enumerate(reader, start=2):
            yield _row(
                number,
                record.get("signal"),
                record.get("hash"),
                record.get("quality"),
                record.get("report"),
            )
    elif fmt == "jsonl":
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                raise Unprocessable(f"line {number}: not JSON", code="invalid_import") from None
            if not isinstance(record, dict):
                raise Unprocessable(f"line {number}: not an object", code="invalid_import")
            yield _row(
                number,
                record.get("signal"),
                record.get("hash"),
                record.get("quality"),
                record.get("report"),
            )
    elif fmt == "te":
        for number, line in enumerate(text.splitlines(), start=1):
            if signal is not None:
                value = line.strip()
                if value:
                    yield _row(number, signal, value, None, None)
                continue
            kind, _, value = line.strip().partition(" ")
            if kind and value:
                yield _row(number, kind, value, None, None)
            elif kind:
                raise Unprocessable(
                    f"line {number}: expected '<type> <hash>'", code="invalid_import"
                )
    elif fmt == "hma":
        kind = _signal_from(path, signal, "an HMA file")
        for number, fields in enumerate(csv.reader(io.StringIO(text)), start=1):
            if not any(field.strip() for field in fields):
                continue
            if len(fields) < 2 or not fields[1].strip():
                raise Unprocessable(
                    f"line {number}: expected '<hash>,<descriptor id>,...'", code="invalid_import"
                )
            yield _row(number, kind, fields[0], None, fields[1].strip())
    else:
        raise Unprocessable(f"the format is one of {', '.join(FORMATS)}", code="invalid_import")


def guess_format(path: Path, text: str = "") -> str:
    """The format a file suggests (module docstring): its suffix, and for ``.csv`` whether
    its first line is a header naming ``signal`` and ``hash``."""
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        return "jsonl"
    if suffix == ".csv":
        first = next(csv.reader(io.StringIO(text.partition("\n")[0])), [])
        return "csv" if {"signal", "hash"} <= {f.strip() for f in first} else "hma"
    return "te"


def import_file(
    connection: Connection, path: Path, fmt: str | None = None, *, signal: str | None = None
) -> ImportResult:
    """Import a file in one transaction (the caller's) with one audit entry.

    ``signal`` names the signal type of every row where the format leaves it out
    (:func:`parse`).

    Raises:
        Unprocessable: a malformed row, or an unreadable file.
    """
    try:
        data = path.read_bytes()
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError):
        raise Unprocessable(
            "the import file is unreadable or not UTF-8", code="invalid_import"
        ) from None
    rows = list(parse(text, fmt or guess_format(path, text), signal=signal, path=path))
    groups: dict[str, list[_Row]] = {}
    refused = 0
    for row in rows:
        if (
            row.signal == "pdq"
            and row.quality is not None
            and row.quality < PdqSignal.quality_floor
        ):
            refused += 1
            continue
        key = f"ref:{row.report}" if row.report is not None else f"line:{row.line}"
        groups.setdefault(key, []).append(row)
    reports = duplicates = fingerprints = 0
    for key, members in groups.items():
        reference = key[4:] if key.startswith("ref:") else None
        distinct: dict[tuple[str, bytes], int | None] = {}
        for r in members:
            distinct.setdefault((r.signal, r.value), r.quality)
        entries = tuple((signal, value, q) for (signal, value), q in sorted(distinct.items()))
        submission = intake.Submission("image", "unknown", entries)
        try:
            intake.store_report(
                connection, submission, source="import", receipt_hash=None, reference=reference
            )
        except Conflict:
            duplicates += 1
            continue
        reports += 1
        fingerprints += len(entries)
    result = ImportResult(reports, fingerprints, duplicates, refused)
    audit.append(
        connection, "import", {"file_sha256": hashlib.sha256(data).hexdigest(), **result.to_json()}
    )
    return result
