"""`blindmatch report|status|withdraw` against a real `blindmatch serve` on loopback.

The commands run as subprocesses, as a person runs them; the server is the real service
process (SQLite in a temporary data directory; PostgreSQL for the published-then-withdrawn
case). Each test reports files of its own (distinct seeds), since the service refuses the
same fingerprints twice.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from blindmatch.client.reporting import Receipt, ReportingClient
from report_support import blindmatch, one_line, picture, video
from service_support import (  # noqa: F401 - fixtures
    BLINDMATCH,
    PostgresServer,
    Server,
    free_port,
    postgres,
    start_server,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """SQLite; publication every hour, so a new report stays ``pending`` in these tests."""
    root = tmp_path_factory.mktemp("report-server")
    running = start_server(
        root / "data", "", limits={"intake_per_hour": "1000", "publish_interval": "3600"}
    )
    yield running
    running.stop()


def _receipts(stdout: str) -> list[Receipt]:
    return Receipt.find_all(stdout)


def test_report_status_withdraw_status(server: Server, tmp_path: Path) -> None:
    photo = picture(tmp_path / "photo.jpg", 101)
    clip = video(tmp_path / "clip.mp4", 102)
    sent = blindmatch("report", "--server", server.url, "--age", "minor", str(photo), str(clip))
    assert sent.returncode == 0, sent.stderr
    receipts = _receipts(sent.stdout)
    assert len(receipts) == 2
    # Each file is named with its report id, and each receipt is printed once.
    assert f"{photo}: reported (report id {receipts[0].report_id})" in sent.stdout
    assert f"{clip}: reported (report id {receipts[1].report_id})" in sent.stdout
    for receipt in receipts:
        assert sent.stdout.count(receipt.secret) == 1
        assert receipt.secret not in sent.stderr
    assert "KEEP THESE RECEIPTS SAFE" in sent.stderr
    assert "nobody can show it again" in sent.stderr

    saved = tmp_path / "receipts.txt"
    saved.write_text(sent.stdout)
    status = blindmatch("status", "--server", server.url, "--receipt-file", str(saved), "--json")
    assert status.returncode == 0, status.stderr
    states = [json.loads(line) for line in status.stdout.splitlines()]
    assert [(s["report_id"], s["status"]) for s in states] == [
        (r.report_id, "pending") for r in receipts
    ]

    gone = blindmatch(
        "withdraw", "--server", server.url, env={"BLINDMATCH_RECEIPT": receipts[0].text()}
    )
    assert gone.returncode == 0, gone.stderr
    assert f"report {receipts[0].report_id} " in gone.stdout
    assert ": withdrawn: platforms no longer look for this file" in gone.stdout

    after = blindmatch("status", "--server", server.url, "--receipt-file", str(saved))
    assert after.returncode == 0, after.stderr
    lines = after.stdout.splitlines()
    assert ": withdrawn: " in lines[0]
    assert receipts[0].report_id in lines[0]
    assert ": pending: " in lines[1]
    assert receipts[1].report_id in lines[1]

    # Withdrawing again is not an error: the report is withdrawn, as asked.
    again = blindmatch("withdraw", "--server", server.url, "--receipt", receipts[0].text())
    assert again.returncode == 0, again.stderr
    assert ": withdrawn: " in again.stdout


def test_published_then_withdrawn_on_postgresql(postgres: PostgresServer, tmp_path: Path) -> None:  # noqa: F811
    running = start_server(tmp_path / "data", postgres.new_database())
    try:
        photo = picture(tmp_path / "photo.jpg", 201)
        sent = blindmatch("report", "--server", running.url, "--age", "adult", str(photo))
        assert sent.returncode == 0, sent.stderr
        [receipt] = _receipts(sent.stdout)
        with ReportingClient(running.url) as client:
            deadline = time.monotonic() + 60
            while client.status(receipt).status != "published":
                assert time.monotonic() < deadline, "never published"
                time.sleep(0.5)
        shown = blindmatch("status", "--server", running.url, "--receipt", receipt.text())
        assert shown.returncode == 0, shown.stderr
        assert ": published: on the list" in shown.stdout
        gone = blindmatch("withdraw", "--server", running.url, "--receipt", receipt.text())
        assert gone.returncode == 0, gone.stderr
        after = blindmatch("status", "--server", running.url, "--receipt", receipt.text(), "--json")
        assert json.loads(after.stdout)["status"] == "withdrawn"
    finally:
        running.stop()


def test_wrong_receipt_is_refused_with_exit_3(server: Server, tmp_path: Path) -> None:
    sent = blindmatch(
        "report", "--server", server.url, "--age", "minor", str(picture(tmp_path / "a.jpg", 301))
    )
    [receipt] = _receipts(sent.stdout)
    wrong_secret = Receipt(receipt.report_id, "A" * 43)
    unknown_report = Receipt("0" * 24, receipt.secret)
    for wrong in (wrong_secret, unknown_report):
        for command in ("status", "withdraw"):
            answer = blindmatch(command, "--server", server.url, "--receipt", wrong.text())
            assert answer.returncode == 3
            line = one_line(answer.stderr)
            assert "does not recognise this receipt" in line
            assert wrong.secret not in line
            assert receipt.secret not in line
            assert answer.stdout == ""
    # The wrong receipt withdrew nothing.
    with ReportingClient(server.url) as client:
        assert client.status(receipt).status == "pending"


def test_server_down_is_one_line_and_exit_4(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    photo = picture(tmp_path / "a.jpg", 401)
    for args in (
        ("report", "--server", url, "--age", "minor", str(photo)),
        ("status", "--server", url, "--receipt", Receipt("1" * 24, "B" * 43).text()),
        ("withdraw", "--server", url, "--receipt", Receipt("1" * 24, "B" * 43).text()),
    ):
        answer = blindmatch(*args)
        assert answer.returncode == 4, answer.stderr
        assert "could not connect to the clearinghouse" in one_line(answer.stderr)
        assert answer.stdout == ""


def test_hashes_input_from_blindmatch_hash(server: Server, tmp_path: Path) -> None:
    photo = picture(tmp_path / "media" / "p.jpg", 501)
    clip = video(tmp_path / "media" / "v.mp4", 502)
    hashed = blindmatch("hash", str(tmp_path / "media"))
    assert hashed.returncode == 0, hashed.stderr
    (tmp_path / "h.jsonl").write_text(hashed.stdout)
    # The media are gone: only their fingerprints are reported.
    photo.unlink()
    clip.unlink()
    sent = blindmatch(
        "report", "--server", server.url, "--age", "minor", "--hashes", str(tmp_path / "h.jsonl")
    )
    assert sent.returncode == 0, sent.stderr
    assert len(_receipts(sent.stdout)) == 2
    # From the standard input, JSON out: the same fingerprints again are a duplicate.
    again = blindmatch(
        "report", "--server", server.url, "--age", "minor", "--hashes", "-", "--json",
        stdin=hashed.stdout,
    )  # fmt: skip
    assert again.returncode == 1
    records = [json.loads(line) for line in again.stdout.splitlines()]
    assert [r["error"]["code"] for r in records] == ["duplicate_submission"] * 2
    assert "already reported" in again.stderr


def test_bad_hashes_file_is_a_usage_error(server: Server, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    cases = {
        "not JSON": "{nope\n",
        "no path": '{"kind": "image"}\n',
        "(no 'md5')": '{"path": "x.jpg", "kind": "image"}\n',
        "PDQ hash must be 64 hex digits": (
            '{"path": "x.jpg", "kind": "image", "md5": "' + "0" * 32 + '", "sha256": "'
            + "0" * 64 + '", "pdq": "zz", "quality": 90}\n'
        ),
        "no fingerprints in it": "\n",
    }  # fmt: skip
    for expected, text in cases.items():
        bad.write_text(text)
        answer = blindmatch(
            "report", "--server", server.url, "--age", "minor", "--hashes", str(bad)
        )
        assert answer.returncode == 2, (expected, answer.stderr)
        line = one_line(answer.stderr)
        assert line.startswith("blindmatch: error: --hashes ")
        assert expected in line
    missing = blindmatch(
        "report", "--server", server.url, "--age", "minor", "--hashes", str(tmp_path / "nope")
    )
    assert missing.returncode == 2
    assert "No such file or directory" in one_line(missing.stderr)


def test_rate_limit_is_a_kind_message_and_exit_3(tmp_path: Path) -> None:
    limited = start_server(tmp_path / "data", "", limits={"intake_per_hour": "1"})
    try:
        files = [str(picture(tmp_path / f"{n}.jpg", 600 + n)) for n in range(3)]
        answer = blindmatch("report", "--server", limited.url, "--age", "minor", *files)
        assert answer.returncode == 3
        [receipt] = _receipts(answer.stdout)
        assert files[0] in answer.stdout
        assert f"{files[1]}: not reported: the clearinghouse has had too many reports" in (
            answer.stderr
        )
        assert "Nothing is wrong with your files: please try again in about" in answer.stderr
        assert f"{files[2]}: not sent" in answer.stderr
        assert "KEEP THIS RECEIPT SAFE" in answer.stderr
        assert "Traceback" not in answer.stderr
        with ReportingClient(limited.url) as client:
            assert client.status(receipt).status in ("pending", "published")
    finally:
        limited.stop()


def test_files_that_cannot_be_reported_are_named(server: Server, tmp_path: Path) -> None:
    picture(tmp_path / "good.jpg", 701)
    flat = picture(tmp_path / "flat.jpg", 0, flat=True)
    text = tmp_path / "notes.txt"
    text.write_text("not a picture")
    answer = blindmatch("report", "--server", server.url, "--age", "minor", "--json", str(tmp_path))
    assert answer.returncode == 1, answer.stderr
    records = {Path(r["path"]).name: r for r in map(json.loads, answer.stdout.splitlines())}
    assert records["notes.txt"]["error"]["type"] == "UnsupportedMedia"
    assert (
        Receipt.parse(records["good.jpg"]["receipt"]).report_id == records["good.jpg"]["report_id"]
    )
    # A flat picture has no usable PDQ hash: it is reported by MD5 and SHA-256 alone.
    assert "receipt" in records["flat.jpg"]
    assert f"{flat}: too little detail for a PDQ fingerprint" in answer.stderr
    assert f"{text}: not reported: " in answer.stderr
    assert "2 of 3 files reported" in answer.stderr
    # Two copies of one file are one report.
    copy = tmp_path / "again" / "copy.jpg"
    copy.parent.mkdir()
    new = picture(tmp_path / "again" / "new.jpg", 702)
    copy.write_bytes(new.read_bytes())
    twice = blindmatch("report", "--server", server.url, "--age", "minor", str(copy.parent))
    assert twice.returncode == 0, twice.stderr
    assert len(_receipts(twice.stdout)) == 1
    assert f"{new}: the same file as {copy}: reported once" in twice.stderr


def test_kind_that_does_not_fit_sends_nothing(server: Server, tmp_path: Path) -> None:
    photo = picture(tmp_path / "p.jpg", 801)
    clip = video(tmp_path / "v.mp4", 802)
    answer = blindmatch(
        "report", "--server", server.url, "--age", "minor", "--kind", "image", str(photo), str(clip)
    )
    assert answer.returncode == 2
    assert one_line(answer.stderr) == (
        f"blindmatch: error: {clip} is not a picture (--kind image): nothing was sent"
    )
    # Nothing was sent: the picture can still be reported (no duplicate).
    sent = blindmatch(
        "report", "--server", server.url, "--age", "minor", "--kind", "image", str(photo)
    )
    assert sent.returncode == 0, sent.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["report", "--server", "{url}", "x.jpg"], "required: --age"),
        (["report", "--server", "{url}", "--age", "old", "x.jpg"], "invalid choice: 'old'"),
        (["report", "--server", "{url}", "--age", "minor"], "name the files or folders"),
        (["report", "--server", "{url}", "--age", "minor", "--hashes", "h", "x"], "not both"),
        (["report", "--age", "minor", "x.jpg"], "required: --server"),
        (["report", "--server", "http://example.org", "--age", "minor", "x"], "use https://"),
        (["report", "--server", "ftp://h", "--age", "minor", "x"], "must start with https://"),
        (["report", "--server", "{url}", "--age", "minor", "{tmp}/none"], "no files found"),
        (["status", "--server", "{url}"], "no receipt: give --receipt-file F"),
        (["status", "--server", "{url}", "--receipt", "bm1.abc"], "not a blindmatch receipt"),
        (["withdraw", "--server", "{url}", "--receipt-file", "{tmp}/missing"], "No such file"),
        (["withdraw", "--server", "{url}", "--receipt-file", "{tmp}/none"], "Is a directory"),
        (["status", "--server", "{url}", "--receipt", "r", "--receipt-file", "f"], "not allowed"),
    ],
)
def test_usage_mistakes_are_one_line_and_exit_2(
    server: Server, tmp_path: Path, args: list[str], expected: str
) -> None:
    (tmp_path / "none").mkdir()
    filled = [a.format(url=server.url, tmp=tmp_path) for a in args]
    answer = blindmatch(*filled, stdin="")
    assert answer.returncode == 2, answer.stderr
    assert expected in one_line(answer.stderr)
    assert answer.stdout == ""


def test_receipt_file_holds_no_receipt(server: Server, tmp_path: Path) -> None:
    empty = tmp_path / "r.txt"
    empty.write_text("my receipts:\nbm1.123\n")
    answer = blindmatch("status", "--server", server.url, "--receipt-file", str(empty))
    assert answer.returncode == 2
    assert "no blindmatch receipt in it" in one_line(answer.stderr)


def test_help_documents_exit_codes_and_the_history_warning() -> None:
    for command in ("report", "status", "withdraw"):
        shown = blindmatch(command, "--help")
        assert shown.returncode == 0
        text = " ".join(shown.stdout.split())
        assert "Exit codes: 0" in text
        assert "4 the clearinghouse could not be reached" in text
    for command in ("status", "withdraw"):
        text = " ".join(blindmatch(command, "--help").stdout.split())
        assert "saved in your shell's history" in text
        assert "BLINDMATCH_RECEIPT" in text
    text = " ".join(blindmatch("report", "--help").stdout.split())
    assert "Each file becomes its own report" in text
    assert "never a file name" in text


def test_usage_mistake_comes_before_the_server(tmp_path: Path) -> None:
    """A missing path is exit 2 even when the clearinghouse is down too (nothing is asked)."""
    url = f"http://127.0.0.1:{free_port()}"
    answer = blindmatch("report", "--server", url, "--age", "minor", str(tmp_path / "none"))
    assert answer.returncode == 2
    assert (
        one_line(answer.stderr) == f"blindmatch: error: {tmp_path / 'none'}: no such file or folder"
    )


def test_receipt_typed_at_the_prompt_is_not_shown(server: Server, tmp_path: Path) -> None:
    """In a terminal (a real pseudo-terminal), with no receipt given, the command asks for
    one and the terminal does not echo it."""
    import os
    import pty
    import select

    sent = blindmatch(
        "report", "--server", server.url, "--age", "minor", str(picture(tmp_path / "a.jpg", 1001))
    )
    [receipt] = _receipts(sent.stdout)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLINDMATCH_")}
    pid, fd = pty.fork()
    if pid == 0:  # the child: blindmatch on the pseudo-terminal
        os.execve(sys.executable, [*BLINDMATCH, "status", "--server", server.url], env)  # noqa: S606 - our own CLI
    seen = b""
    typed = False
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
        if not typed and b"Your receipt" in seen:
            os.write(fd, receipt.text().encode() + b"\n")
            typed = True
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert typed, seen
    assert os.waitstatus_to_exitcode(status) == 0, seen
    assert f"report {receipt.report_id} ".encode() in seen
    assert b": pending: " in seen
    assert receipt.secret.encode() not in seen
