"""Pieces the in-process benchmarks share."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class NoMigrations(dict):
    """``MIGRATION_MODULES`` that builds tables straight from the models: a
    benchmark's throw-away database needs no migration history."""

    def __contains__(self, item: object) -> bool:
        return True

    def __getitem__(self, item: str) -> None:
        return None


@contextmanager
def throwaway_database() -> Iterator[None]:
    """The settings' test database, built from the models for the ``with``
    block and dropped after it (``django.setup()`` must have run)."""
    from django.test.utils import override_settings, setup_databases, teardown_databases

    with override_settings(MIGRATION_MODULES=NoMigrations()):
        old = setup_databases(verbosity=0, interactive=False)
    try:
        yield
    finally:
        teardown_databases(old, verbosity=0)


#: ``RATE_LIMITS`` with every per-number, per-IP and per-prefix limit off (a
#: benchmark sends many codes from one address to neighbouring numbers); the
#: voice limit stays as the settings check requires a value.
NO_SENDING_LIMITS: dict[str, Any] = {
    "app_number_interval": 0,
    "signature_number_interval": 0,
    "signature_number_daily": {},
    "voice": [(30, 1)],
    "ip": [],
    "prefix": [],
}
