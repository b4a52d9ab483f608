"""Hand-written statements for the few hot paths where building a query through
the ORM costs more than running it (every verify, every billed send).

Statements name their table as ``{table}`` and take ``%s`` parameters; dates,
times and JSON objects go through the backend's own adapters, so the same text
runs on PostgreSQL and SQLite. Everything else uses the ORM.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from django.db import connections, models, router


def run(model: type[models.Model], sql: str, params: list[Any], *, fetch: bool = False) -> Any:
    """Run ``sql`` on ``model``'s database (the router's write alias): the first
    row when ``fetch``, else the number of rows changed."""
    connection = connections[router.db_for_write(model)]
    ops = connection.ops
    adapted = [
        ops.adapt_datetimefield_value(value) if isinstance(value, datetime)
        else ops.adapt_datefield_value(value) if isinstance(value, date)
        else ops.adapt_json_value(value, None) if isinstance(value, dict)
        else value
        for value in params
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql.format(table=ops.quote_name(model._meta.db_table)), adapted)
        return cursor.fetchone() if fetch else cursor.rowcount
