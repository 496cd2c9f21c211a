"""``blindmatch serve``: run the clearinghouse as an HTTP service (needs the ``service`` extra).

Migrates the database, creates the first key epoch and the publication key if missing,
starts the background publisher process, then runs uvicorn with ``--workers`` processes.
The service is imported only when the command runs, so ``blindmatch --help`` works
without the extra.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from blindmatch.cli._argtypes import positive_int
from blindmatch.errors import BlindmatchError

__all__ = ["register", "run"]

_MISSING_EXTRA = "the service needs the 'service' extra: pip install 'blindmatch[service]'"


class MissingExtra(BlindmatchError):
    """The ``service`` extra is not installed (a CLI error: one line, exit 2)."""


def port_number(text: str) -> int:
    """An argparse type: a TCP port 1..65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("a port is an integer") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError("a port is in 1..65535")
    return value


def add_database_arguments(parser: argparse.ArgumentParser) -> None:
    """``--data-dir`` and ``--database-url``, shared with ``admin``."""
    parser.add_argument(
        "--data-dir",
        required=True,
        type=Path,
        metavar="DIR",
        help="the data directory (keys, index files; the SQLite database "
        "unless --database-url is given)",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BLINDMATCH_DATABASE_URL", ""),
        metavar="URL",
        help="a PostgreSQL URL (postgresql://user@host/db); default SQLite in DIR",
    )


def register(subparsers: Any) -> None:
    """Add the ``serve`` subcommand to the ``blindmatch`` parser."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help="run the clearinghouse HTTP service (intake, publication, matching)",
        description="Run the clearinghouse as an HTTP service. Every route is under /v1; the "
        "OpenAPI document is /v1/openapi.json. See docs/deployment.md.",
    )
    add_database_arguments(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=port_number, default=8080, help="port (default 8080)")
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        metavar="N",
        help="uvicorn worker processes (default 1); they share only the database",
    )
    parser.add_argument(
        "--no-publisher",
        action="store_true",
        help="do not start the background publisher (another host runs it)",
    )
    parser.set_defaults(func=run)


def settings_from(args: argparse.Namespace) -> Any:
    """The service settings the parsed arguments name (imports the service)."""
    try:
        from blindmatch.service.settings import Settings
    except ImportError:
        raise MissingExtra(_MISSING_EXTRA) from None
    return Settings.from_env(
        {**os.environ, **Settings(args.data_dir, args.database_url).to_env(), **_limit_overrides()}
    )


def _limit_overrides() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith("BLINDMATCH_LIMIT_")}


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; return the exit code.

    Raises:
        BlindmatchError: the extra is missing, or the data directory or database is unusable.
    """
    settings = settings_from(args)
    from blindmatch.service.bootstrap import bootstrap

    database, _ = bootstrap(settings)
    database.dispose()
    import uvicorn

    os.environ.update(settings.to_env())
    publisher = None
    if not args.no_publisher:
        publisher = subprocess.Popen(
            [sys.executable, "-m", "blindmatch.service.publisher"], env=dict(os.environ)
        )
    try:
        uvicorn.run(
            "blindmatch.service.asgi:create",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            access_log=False,  # access lines carry client addresses: not ours to keep
            log_level="info",
        )
    finally:
        if publisher is not None:
            publisher.terminate()
            publisher.wait(timeout=30)
    return 0
