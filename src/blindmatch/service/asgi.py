"""The import string uvicorn workers start from (``blindmatch.service.asgi:create``)."""

from __future__ import annotations

from fastapi import FastAPI

from blindmatch.service.app import create_app
from blindmatch.service.settings import Settings
from blindmatch.service.storage import Database

__all__ = ["create"]


def create() -> FastAPI:
    """The application for the settings ``blindmatch serve`` put in the environment.

    The parent already migrated the schema; a worker only opens its own engine.
    """
    settings = Settings.from_env()
    return create_app(settings, Database(settings))
