"""Hand-written statements for the few hot paths where building a query through
the ORM costs more than running it (every verify, every billed send).

Statements name their table as ``{table}`` and take ``%s`` parameters; dates,
times and JSON objects go through the backend's own adapters, so the same text
runs on PostgreSQL and SQLite. Everything else uses the ORM.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from django.db import connections, models, router
from django.db.backends.utils import CursorDebugWrapper, CursorWrapper

from .conf import app_settings

try:
    import psycopg
except ImportError:  # psycopg2, or no PostgreSQL driver: prepared_cursor() is the usual one
    psycopg = None  # type: ignore[assignment]


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
    with prepared_cursor(connection) as cursor:
        cursor.execute(sql.format(table=ops.quote_name(model._meta.db_table)), adapted)
        return cursor.fetchone() if fetch else cursor.rowcount


def prepared_cursor(connection: Any) -> Any:
    """A cursor of ``connection`` for the hot statements (the send, the verify).

    On PostgreSQL with psycopg 3 it binds its parameters on the server, so a
    statement a connection has run twice is prepared the third time: from then
    on the server neither parses nor plans it. A connection that lives for one
    request (``CONN_MAX_AGE = 0``) never gets that far and pays nothing.
    Elsewhere, or with the ``PREPARED_STATEMENTS`` setting off (a pooler that
    cannot keep prepared statements, such as PgBouncer before 1.21 in
    transaction mode), it is the usual cursor.
    """
    if (psycopg is None or connection.vendor != "postgresql"
            or not app_settings.PREPARED_STATEMENTS):
        return connection.cursor()
    connection.ensure_connection()
    raw = connection.connection
    if not isinstance(raw, psycopg.Connection):  # psycopg2: the usual cursor
        return connection.cursor()
    if raw.prepare_threshold is None and not connection.features.uses_server_side_binding:
        # Django turns psycopg's preparation off unless OPTIONS asks for it. Only
        # server-binding cursors like this one prepare (Django's own cursors bind
        # on the client), so this leaves every other statement as it was. A
        # project whose Django cursors bind on the server (OPTIONS
        # "server_side_binding") keeps its own "prepare_threshold".
        raw.prepare_threshold = PREPARE_AFTER
    connection.validate_thread_sharing()
    with connection.wrap_database_errors:
        cursor = psycopg.Cursor(raw)
    if connection.queries_logged:
        return _LoggedCursor(cursor, connection)
    return CursorWrapper(cursor, connection)


class _LoggedCursor(CursorDebugWrapper):
    """Logs a prepared statement with its values in it, as Django logs its own
    (once prepared, psycopg keeps no text of the statement to log)."""

    def execute(self, sql: Any, params: Any = None) -> Any:
        with self.debug_sql(self.db.ops.compose_sql(str(sql), params)):
            return CursorWrapper.execute(self, sql, params)


#: Runs of a statement on a connection before the next one is prepared.
PREPARE_AFTER = 2


def insert_from(obj: models.Model, connection: Any, source: str,
                computed: dict[str, str] | None = None) -> tuple[str, list[Any]]:
    """``INSERT INTO <table> (<columns>) SELECT <values> FROM <source>`` for the
    unsaved ``obj`` (PostgreSQL, inside a WITH), with its params.

    Every concrete field but the primary key, prepared as ``save()`` prepares it
    (``auto_now`` included); each value is cast to its column's type, since a
    SELECT list does not take its types from the target columns. ``computed``
    gives SQL for some columns instead (``{"message_id": "m.id"}``). NULLs,
    empty strings, zeros and booleans are written in the text, so the statement
    has few parameters and its text repeats (the driver keeps parsed statements
    of up to 50 parameters).
    """
    computed = computed or {}
    table, columns, fields = _insert_plan(type(obj), connection.vendor, connection.alias)
    values, params = [], []
    for field, cast, as_is in fields:
        if field.column in computed:
            values.append(computed[field.column])
            continue
        value = getattr(obj, field.attname) if as_is else None
        if as_is is None or not (value is None or as_is(value)):
            value = field.get_db_prep_save(field.pre_save(obj, True), connection=connection)
        if value is None:
            values.append(f"NULL::{cast}")
        elif value is True or value is False:
            values.append("true" if value else "false")
        elif value == "" and isinstance(value, str):
            values.append(f"''::{cast}")
        elif value == 0 and type(value) is int:
            values.append(f"0::{cast}")
        else:
            values.append(f"%s::{cast}")
            params.append(value)
    return f"INSERT INTO {table} ({columns}) SELECT {', '.join(values)} FROM {source}", params


def _is_text(value: Any) -> bool:
    return isinstance(value, str)  # choices' enum members are str too


def _is_int(value: Any) -> bool:
    return type(value) is int  # not a bool, which save() would turn into 0 or 1


def _is_bool(value: Any) -> bool:
    return type(value) is bool


#: Fields whose value goes to the database as it is when it passes the test
#: (or is None): ``save()`` would prepare it into the same value. Only these
#: exact classes: a subclass may prepare its values its own way.
_AS_IS: dict[type[models.Field], Callable[[Any], bool]] = {
    models.CharField: _is_text,
    models.TextField: _is_text,
    models.BooleanField: _is_bool,
    models.IntegerField: _is_int,
    models.SmallIntegerField: _is_int,
    models.BigIntegerField: _is_int,
    models.PositiveIntegerField: _is_int,
    models.PositiveSmallIntegerField: _is_int,
    models.PositiveBigIntegerField: _is_int,
}


def _as_is_test(field: models.Field) -> Callable[[Any], bool] | None:
    """The test of the values :func:`insert_from` writes as they are for
    ``field`` (a foreign key: ints, when it points to an integer key)."""
    if type(field) is models.ForeignKey:
        target = field.target_field
        return _is_int if isinstance(target, models.AutoField | models.BigAutoField) else None
    return _AS_IS.get(type(field))


@functools.lru_cache(maxsize=64)
def _insert_plan(model: type[models.Model], vendor: str, alias: str) -> tuple[str, str, list]:
    """The quoted table, the column list and (field, cast type, as-is test)
    of each column."""
    connection = connections[alias]
    ops = connection.ops
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    plan = []
    for field in fields:
        cast = field.cast_db_type(connection)
        if cast is None:  # concrete fields always have one
            raise TypeError(f"{field.name} has no database type")
        # Text goes in as text: the column's own length check then refuses what
        # an explicit cast to varchar(n) would silently cut.
        plan.append((field, "text" if cast.startswith("varchar") else cast, _as_is_test(field)))
    return (ops.quote_name(model._meta.db_table),
            ", ".join(ops.quote_name(str(f.column)) for f in fields), plan)
