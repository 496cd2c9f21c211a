"""``blindmatch admin``: the operator's commands (needs the ``service`` extra).

``platform create|list|disable``, ``keys rotate|show``, ``index publish``, ``import``, ``reports
review|show|reinstate|remove`` and ``audit verify`` act on the database and data directory of a
deployment, which may be serving at the same time. ``--json`` prints JSON; ``platform
create`` always prints a JSON object, with the API key, which is shown this once.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from blindmatch.cli._argtypes import positive_int
from blindmatch.cli.serve import add_build_arguments, add_database_arguments, settings_from
from blindmatch.errors import BlindmatchError

__all__ = ["register", "run"]


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("an integer is required") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def register(subparsers: Any) -> None:
    """Add the ``admin`` subcommand to the ``blindmatch`` parser."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "admin",
        help="operate a clearinghouse: platforms, keys, publication, audit",
        description="Operator commands of a clearinghouse deployment (docs/deployment.md).",
    )
    add_database_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print JSON")
    groups = parser.add_subparsers(dest="group", metavar="GROUP", required=True)

    platform = groups.add_parser("platform", help="platforms and their API keys")
    actions = platform.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="register a platform; prints its API key once")
    create.add_argument("name")
    create.add_argument(
        "--daily-elements",
        type=_non_negative,
        default=None,
        metavar="N",
        help="elements the platform may have evaluated per UTC day",
    )
    actions.add_parser("list", help="list platforms")
    disable = actions.add_parser("disable", help="disable a platform's API key at once")
    disable.add_argument("name")

    keys = groups.add_parser("keys", help="key epochs and the publication key")
    key_actions = keys.add_subparsers(dest="action", metavar="ACTION", required=True)
    key_actions.add_parser(
        "rotate", help="start a new key epoch (the old one answers for the grace period)"
    )
    key_actions.add_parser("show", help="the epochs and the publication key to pin")

    index = groups.add_parser("index", help="index publication")
    index_actions = index.add_subparsers(dest="action", metavar="ACTION", required=True)
    publish = index_actions.add_parser("publish", help="build and publish the indexes now")
    publish.add_argument(
        "--processes",
        type=positive_int,
        default=None,
        metavar="N",
        help="build processes (default: every core)",
    )
    add_build_arguments(publish)

    bulk = groups.add_parser(
        "import",
        help="import a list of hashes (CSV, JSON Lines, python-threatexchange's "
        "'<type> <hash>' lines, or HMA's CSV)",
    )
    bulk.add_argument("file", type=Path)
    bulk.add_argument(
        "--format",
        choices=("csv", "hma", "jsonl", "te"),
        default=None,
        help="default: from the file (.jsonl; .csv with a signal,hash header; other .csv: "
        "hma; else te)",
    )
    bulk.add_argument(
        "--signal",
        default=None,
        help="the signal type of rows that do not name one (te lines, hma files; default "
        "for hma: the file's name, e.g. pdq.csv)",
    )

    reports = groups.add_parser("reports", help="reports suspended by platform disputes")
    report_actions = reports.add_subparsers(dest="action", metavar="ACTION", required=True)
    report_actions.add_parser("review", help="list the suspended reports awaiting review")
    show = report_actions.add_parser(
        "show", help="a report by its id or by its reference in an imported list"
    )
    show.add_argument("report_id", metavar="ID_OR_REFERENCE")
    reinstate = report_actions.add_parser("reinstate", help="publish a suspended report again")
    reinstate.add_argument("report_id")
    remove = report_actions.add_parser("remove", help="remove a suspended report for good")
    remove.add_argument("report_id")

    audit = groups.add_parser("audit", help="the tamper-evident audit log")
    audit_actions = audit.add_subparsers(dest="action", metavar="ACTION", required=True)
    audit_actions.add_parser("verify", help="recompute the hash chain; exit 1 if broken")
    parser.set_defaults(func=run)


def _print(args: argparse.Namespace, value: Any, text: str) -> None:
    if args.json:
        sys.stdout.write(json.dumps(value, sort_keys=True) + "\n")
    else:
        sys.stdout.write(text + "\n")


def run(args: argparse.Namespace) -> int:
    """Run one admin command; return the exit code.

    Raises:
        BlindmatchError: a missing extra, an unusable database, a refused operation.
    """
    settings = settings_from(args)
    from blindmatch.service import audit, bulk, feedback, platforms
    from blindmatch.service.bootstrap import bootstrap
    from blindmatch.service.publication import publish
    from blindmatch.service.publisher import evaluator_for

    database, keys = bootstrap(settings)
    try:
        if args.group == "platform":
            if args.action == "create":
                daily = (
                    settings.limits.default_daily_elements
                    if args.daily_elements is None
                    else args.daily_elements
                )
                with database.begin() as connection:
                    created, api_key = platforms.create(connection, args.name, daily)
                sys.stdout.write(
                    json.dumps({**created.to_json(), "api_key": api_key}, sort_keys=True) + "\n"
                )
                return 0
            if args.action == "list":
                with database.begin() as connection:
                    found = platforms.list_platforms(connection)
                lines = [
                    f"{p.name}  key {p.public_id}  {p.daily_elements} elements/day"
                    f"{'  DISABLED' if p.disabled else ''}"
                    for p in found
                ]
                _print(args, [p.to_json() for p in found], "\n".join(lines) or "no platforms")
                return 0
            with database.begin() as connection:
                disabled = platforms.disable(connection, args.name)
            _print(args, disabled.to_json(), f"disabled {disabled.name}")
            return 0
        if args.group == "keys":
            if args.action == "rotate":
                info = keys.rotate()
                _print(
                    args,
                    info.to_json(),
                    f"epoch {info.epoch} (key id {info.key_id.hex()}) "
                    "is current; older epochs answer until their retires_at",
                )
                return 0
            epochs = [e.to_json() for e in keys.list()]
            pin = bytes(keys.signing_key().verify_key).hex()
            _print(
                args,
                {"epochs": epochs, "publication_key": pin},
                "\n".join(
                    [
                        f"epoch {e['epoch']}  key id {e['key_id']}  retires_at {e['retires_at']}"
                        for e in epochs
                    ]
                    + [f"publication key (pin this): {pin}"]
                ),
            )
            return 0
        if args.group == "import":
            with database.begin() as connection:
                result = bulk.import_file(connection, args.file, args.format, signal=args.signal)
            counts = result.to_json()
            _print(
                args, counts, ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in counts.items())
            )
            return 0
        if args.group == "reports":
            with database.begin() as connection:
                if args.action == "review":
                    waiting = feedback.suspended(connection)
                    lines = [
                        f"{r.report_id}  reference {r.reference or '-'}  disputes "
                        f"{r.disputes}  actioned {r.actioned}  reported at {r.created_at}"
                        for r in waiting
                    ]
                    _print(
                        args,
                        [r.to_json() for r in waiting],
                        "\n".join(lines) or "no suspended reports",
                    )
                    return 0
                if args.action == "show":
                    shown = feedback.find(connection, args.report_id)
                    _print(
                        args,
                        [r.to_json() for r in shown],
                        "\n".join(
                            f"{r.report_id}  reference {r.reference or '-'}  {r.status}  "
                            f"source {r.source}  fingerprints "
                            + ", ".join(f"{k} {v}" for k, v in r.fingerprints.items())
                            + f"  disputes {r.disputes}  actioned {r.actioned}"
                            for r in shown
                        ),
                    )
                    return 0
                if args.action == "reinstate":
                    feedback.reinstate(connection, args.report_id)
                else:
                    feedback.remove(connection, args.report_id)
            _print(
                args,
                {"report_id": args.report_id, "action": args.action},
                f"{args.action}d {args.report_id}"
                if args.action == "remove"
                else f"reinstated {args.report_id}",
            )
            return 0
        if args.group == "index":
            evaluator = evaluator_for(settings)
            try:
                # The publishers' lock: a running server's publisher skips its polls
                # meanwhile, so two builds never run at once.
                with database.exclusive("publisher"):
                    version = publish(
                        settings, database, keys, processes=args.processes, evaluator=evaluator
                    )
            finally:
                if evaluator is not None:
                    evaluator.close()
            epoch = keys.current().epoch
            if version is None:
                print(
                    "another publisher recorded a version meanwhile; run it again", file=sys.stderr
                )
                return 1
            _print(
                args,
                {"epoch": epoch, "version": version},
                f"published epoch {epoch} version {version}",
            )
            return 0
        with database.begin() as connection:
            report = audit.verify(connection)
        _print(
            args,
            report.to_json(),
            f"audit log OK: {report.entries} entries, head {report.head_hash}"
            if report.ok
            else f"audit log BROKEN at entry {report.bad_seq}: {report.reason}",
        )
        return 0 if report.ok else 1
    except BlindmatchError:
        raise
    finally:
        database.dispose()
