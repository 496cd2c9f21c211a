"""The clearinghouse as a service: HTTP intake, publication and matching around the core.

A thin, tested layer over the sans-IO :class:`~blindmatch.protocols.ClearinghouseSession`,
the index builder and the wire messages, which it uses unchanged (docs/deployment.md):

- :mod:`.settings` the data directory, the database URL and the limits;
- :mod:`.schema`, :mod:`.storage` the tables (SQLAlchemy Core) on SQLite or PostgreSQL,
  migrated by Alembic (``migrations/``);
- :mod:`.intake` anonymous reports, receipts, status, withdrawal, rate limits;
- :mod:`.platforms`, :mod:`.quotas` API keys and daily element quotas;
- :mod:`.epochs` key epochs and the publication key;
- :mod:`.publication`, :mod:`.publisher` index builds and signed manifests;
- :mod:`.matching` the wire messages over HTTP; :mod:`.audit` the hash-chained log;
- :mod:`.app` the FastAPI application (every route under ``/v1``).

It needs the ``service`` extra. Nothing below it imports it.
"""

from __future__ import annotations

from blindmatch.service.settings import Limits, Settings

__all__ = ["Limits", "Settings"]
