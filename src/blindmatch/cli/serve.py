"""``blindmatch serve``: run the clearinghouse as an HTTP service (needs the ``service`` extra).

Migrates the database, creates the first key epoch and the publication key if missing,
starts the background publisher process, then runs uvicorn with ``--workers`` processes.
The reporting page (:mod:`blindmatch.web`, static files) is served at ``/`` unless
``--no-page``: this module hands its directory and policy to the service's settings, so
the service never imports the page.
The service is imported only when the command runs, so ``blindmatch --help`` works
without the extra.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from blindmatch.cli._argtypes import non_negative_seconds, positive_int
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


def add_build_arguments(parser: argparse.ArgumentParser) -> None:
    """``--ray-address``, ``--ray-task-timeout`` and ``--exact-index``: where indexes are
    built and how the exact signals are published, shared by ``serve`` and ``admin index
    publish`` (a version built by hand must have the format the publisher would give it)."""
    parser.add_argument(
        "--ray-address",
        default=os.environ.get("BLINDMATCH_RAY_ADDRESS", ""),
        metavar="ADDR",
        help="build indexes on Ray (needs the 'ray' extra): 'local' starts Ray on this "
        "machine, else a cluster's address (HOST:PORT, auto, ray://HOST:10001); "
        "default: local worker processes. See docs/deployment.md",
    )
    parser.add_argument(
        "--ray-task-timeout",
        type=non_negative_seconds,
        default=None,
        metavar="SECONDS",
        help="with --ray-address: a build's Ray task unanswered after SECONDS is cancelled "
        "and resubmitted (3 submissions, then the publication fails and is retried); 0 waits "
        "for ever (default: BLINDMATCH_RAY_TASK_TIMEOUT, else 600)",
    )
    parser.add_argument(
        "--exact-index",
        choices=("compact", "bands"),
        default=os.environ.get("BLINDMATCH_EXACT_INDEX", "compact") or "compact",
        help="how md5 and sha256 are published: 'compact' exact indexes (format version "
        "3, about 5 bytes a reference; default) or 'bands' (format version 1, about 28 "
        "bytes a reference); platforms retro-match either. Default from "
        "BLINDMATCH_EXACT_INDEX. See docs/deployment.md",
    )


def register(subparsers: Any) -> None:
    """Add the ``serve`` subcommand to the ``blindmatch`` parser."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help="run the clearinghouse HTTP service (intake, publication, matching)",
        description="Run the clearinghouse as an HTTP service. Every route is under /v1; the "
        "OpenAPI document is /v1/openapi.json. The reporting page, where a person fingerprints "
        "their pictures in the browser and reports them, is at / (open "
        "http://127.0.0.1:8080/). See docs/deployment.md and docs/web.md.",
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
    add_build_arguments(parser)
    parser.add_argument(
        "--no-page",
        action="store_true",
        help="do not serve the reporting page at / (only the API under /v1)",
    )
    parser.set_defaults(func=run)


def settings_from(args: argparse.Namespace) -> Any:
    """The service settings the parsed arguments name (imports the service)."""
    try:
        from blindmatch.service.settings import Settings
    except ImportError:
        raise MissingExtra(_MISSING_EXTRA) from None
    from blindmatch.service.settings import ENV_DATA_DIR, ENV_DATABASE_URL

    # The environment's settings (limits, exact index, Ray), then what the arguments name.
    settings = Settings.from_env(
        {**os.environ, ENV_DATA_DIR: str(args.data_dir), ENV_DATABASE_URL: args.database_url}
    )
    if hasattr(args, "exact_index"):
        settings = replace(
            settings, exact_index=args.exact_index, ray_address=args.ray_address.strip()
        )
    if getattr(args, "ray_task_timeout", None) is not None:
        settings = replace(settings, ray_task_timeout=args.ray_task_timeout)
    return settings


def _check_ray() -> None:
    """Refuse to start, in one line, when a Ray build is asked for without the extra."""
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise MissingExtra("--ray-address needs the 'ray' extra: pip install 'blindmatch[ray]'")


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; return the exit code.

    Raises:
        BlindmatchError: the extra is missing, or the data directory or database is unusable.
    """
    settings = replace(settings_from(args), page_dir=None)
    if settings.ray_address and not args.no_publisher:
        _check_ray()
    if not args.no_page:
        from blindmatch.web import CONTENT_SECURITY_POLICY, static_dir

        settings = replace(settings, page_dir=static_dir(), page_policy=CONTENT_SECURITY_POLICY)
    from blindmatch.service.bootstrap import bootstrap
    from blindmatch.service.settings import ENV_EXACT_INDEX, ENV_PAGE_DIR, ENV_RAY_ADDRESS

    # settings.to_env() below says whether there is a page and where builds run.
    os.environ.pop(ENV_PAGE_DIR, None)
    os.environ.pop(ENV_RAY_ADDRESS, None)
    os.environ.pop(ENV_EXACT_INDEX, None)

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
