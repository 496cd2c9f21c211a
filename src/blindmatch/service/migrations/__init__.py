"""Alembic migrations of the service's schema, run by :func:`blindmatch.service.storage.migrate`."""
