"""The outbox: commit a message, enqueue it after commit, deliver it once.

The statuses a message moves through, and who moves it, are in
:mod:`sms_service.services.lifecycle`.

``call_started_at`` is set just before the provider is called, under the claim
(see :mod:`sms_service.services.recovery`).
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterator
from datetime import timedelta
from functools import partial
from typing import Any

from django.core.cache import cache, caches
from django.core.cache.backends.dummy import DummyCache
from django.core.cache.backends.locmem import LocMemCache
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from .. import caching, signals, sql
from ..adapter import get_adapter
from ..backends import get_backend
from ..backends.base import BaseSmsBackend, OutgoingMessage, SendResult
from ..conf import app_settings
from ..crypto import decrypt_message
from ..exceptions import (
    ProviderOutcomeUnknownError,
    ProviderRejectedError,
    ProviderTemporaryError,
    SendCancelled,
    SmsServiceConfigurationError,
)
from ..models import App, Message, MessageEvent, MessageStatus
from . import billing, circuit, provider_templates, taskqueue
from .lifecycle import transition
from .receipts import apply_held_receipts, status_callback_url

logger = logging.getLogger(__name__)


def route(*, app: App, phone: str, channel: str, kind: str) -> list[str]:
    """The backend aliases for a message, best first (the adapter's
    ``get_backend_aliases``); every alias must be configured in ``BACKENDS``.
    A message is sent through the first."""
    aliases = list(get_adapter().get_backend_aliases(app=app, phone=phone, channel=channel,
                                                     kind=kind))
    if not aliases:
        raise SmsServiceConfigurationError(
            "The adapter's get_backend_aliases() returned no backend alias."
        )
    unknown = [alias for alias in aliases if alias not in app_settings.BACKENDS]
    if unknown:
        raise SmsServiceConfigurationError(
            f'The adapter routes to {unknown[0]!r}, which SMS_SERVICE["BACKENDS"] lacks.'
        )
    return aliases


def delivers_at_commit() -> bool:
    """Whether a committed message is delivered by the process that committed
    it (``ASYNC`` off). Such a message is written already claimed (``sending``,
    first attempt): nothing else may take it, and the recovery sweep sends it
    again if this process dies before the provider call."""
    return not app_settings.ASYNC


def enqueue(message: Message) -> None:
    """Dispatch after the surrounding transaction commits (never for a rollback)."""
    if delivers_at_commit():
        transaction.on_commit(partial(_deliver_committed, message))
    else:
        transaction.on_commit(partial(_publish, message.pk, message.backend))
    transaction.on_commit(
        partial(signals.message_queued.send_robust, sender=Message, message=message)
    )


def _publish(message_id: int, alias: str) -> None:
    """Hand a committed message to the workers: a wake-up of its backend's
    delivery runs when they are shared (:func:`coalesces`), else its own task."""
    if coalesces(alias):
        wake(alias, for_message=message_id)
    else:
        _send_task(taskqueue.get("deliver_message"), message_id)


def _send_task(task: Any, argument: int | str, for_message: int | None = None) -> bool:
    """Publish ``task(argument)`` (a message id, or a backend alias for a
    delivery run, woken by ``for_message`` if a commit woke it); False when
    the broker could not be reached."""
    try:
        task.delay(argument)
    except Exception:
        # The broker is down: the rows stay queued and redispatch_stuck() sends
        # them once the broker is back. The caller's request has already succeeded.
        what = f"message {argument}" if isinstance(argument, int) else (
            f"the delivery run of backend {argument!r}")
        if for_message is not None:
            what = f"message {for_message} ({what})"
        logger.exception("could not enqueue %s; it will be redispatched", what)
        return False
    return True


# --- wake-ups: one delivery run for many commits -----------------------------------

#: How long a published wake-up holds back the next one. A run whose task was
#: lost (a broker emptied) stops holding them back after this; the stuck-message
#: sweep delivers what such a run would have.
WAKE_SECONDS = 10


def _wake_key(alias: str) -> str:
    return f"sms-service:outbox-wake:{alias}"


def coalesces(alias: str) -> bool:
    """Whether the queued messages of backend ``alias`` share delivery runs
    (:func:`deliver_queued`) instead of each having its own task.

    They do on PostgreSQL (runs claim with ``SKIP LOCKED``) when the default
    cache is shared by every process (a pending wake-up must be seen by the
    web processes and cleared by the workers: a process-local cache cannot),
    and either the backend sends in batches or tasks go through a broker. A
    backend that sends one message at a time gets runs of one message that
    each wake the next: the request that commits a message then publishes
    nothing while a run is pending. With ``CELERY_TASK_ALWAYS_EAGER`` nothing
    goes through a broker, so such a backend keeps a run per message, at commit.
    """
    if connection.vendor != "postgresql" or isinstance(caches["default"],
                                                        LocMemCache | DummyCache):
        return False
    return batch_size(alias) > 1 or not taskqueue.get("deliver_queued").app.conf.task_always_eager


def wake(alias: str, for_message: int | None = None, *, force: bool = False) -> None:
    """Make sure a delivery run of backend ``alias`` is pending: publish one
    unless another is already waiting to start (then that run will see the
    messages committed until it starts, so a burst of sends costs one task).
    ``for_message``: the committed message it is for (named in the log when
    the broker is down). ``force``: publish one whatever the cache says (a
    worker starting: the run it names may have died with a previous worker)."""
    key = _wake_key(alias)
    if force:
        _forget_wake(key)
    try:
        pending = not _add_wake(key)
    except Exception:
        logger.warning("cache unreachable: waking a delivery run of %s", alias, exc_info=True)
        pending = False
    if pending:
        return
    if not _send_task(taskqueue.get("deliver_queued"), alias, for_message):
        _forget_wake(key)


def _add_wake(key: str) -> bool:
    """Set the wake-up ``key`` for ``WAKE_SECONDS`` unless it is set; True when
    this call set it. Every commit does this: on django-redis it is one SET NX
    sent through the raw client (the cache's ``add()`` goes through its value
    encoding and more layers), else the cache's ``add()``."""
    shared = caches["default"]  # the backend itself: ``cache`` is a proxy to it
    client = caching.redis_client(shared)
    if client is None:
        return bool(shared.add(key, 1, WAKE_SECONDS))
    return bool(client.execute_command("SET", shared.make_key(key), 1, "NX", "EX", WAKE_SECONDS))


def wake_waiting(*, now: Any) -> list[str]:
    """Wake the delivery runs of every backend that shares them and has due
    queued messages older than a wake-up lasts (``WAKE_SECONDS``): the run
    their commits counted on was lost (its task died with a worker, or a
    broker was emptied) and no commit has woken another since. Returns the
    aliases woken (a run already pending is left to start)."""
    cutoff = now - timedelta(seconds=WAKE_SECONDS)
    woken = []
    for alias in _coalescing_aliases():
        waiting = Message.objects.filter(
            status=MessageStatus.QUEUED, backend=alias, updated_at__lt=cutoff,
        ).filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)).exists()
        if waiting:
            wake(alias)
            woken.append(alias)
    return woken


def wake_every_backend() -> list[str]:
    """Publish a delivery run of every backend whose messages share them,
    whatever the cache says (a worker starting: a pending run may have died
    with a previous worker). Returns the aliases woken."""
    aliases = list(_coalescing_aliases())
    for alias in aliases:
        wake(alias, force=True)
    return aliases


def _coalescing_aliases() -> Iterator[str]:
    return (alias for alias in app_settings.BACKENDS if coalesces(alias))


def _forget_wake(key: str) -> None:
    try:
        cache.delete(key)
    except Exception:
        # It expires after WAKE_SECONDS; until then commits rely on the run it names.
        logger.warning("cache unreachable: wake-up %s kept until it expires", key, exc_info=True)


def deliver_queued(*, alias: str) -> int:
    """One delivery run of backend ``alias``: claim up to a batch of its due
    queued messages and send each of them once. Returns how many it claimed.

    The pending wake-up is dropped before the claim, so every message committed
    after the claim wakes another run. A full batch wakes one more at once: a
    backlog is drained by as many runs as there are free worker processes.
    """
    _forget_wake(_wake_key(alias))
    size = batch_size(alias)
    claimed = _claim_batch(alias=alias, exclude=None, limit=size, now=timezone.now())
    if len(claimed) >= size:
        wake(alias)
    if claimed:
        _deliver_batch(claimed)
    return len(claimed)


def start_call(message: Message) -> bool:
    """Record that the provider is about to be called; False when this run's
    claim was released meanwhile (it must not call the provider)."""
    now = timezone.now()
    started = Message.objects.filter(
        pk=message.pk, status=MessageStatus.SENDING, attempts=message.attempts,
        call_started_at__isnull=True,
    ).update(call_started_at=now)
    if started:
        message.call_started_at = now
    return bool(started)


def start_calls(messages: list[Message]) -> None:
    """:func:`start_call` for many messages in one statement (a batch about to
    be sent); sets ``call_started_at`` on those whose claim still holds."""
    if not messages:
        return
    now = timezone.now()
    started = _changed_ids(
        "UPDATE {table} AS m SET call_started_at = %s "
        "FROM jsonb_to_recordset(%s::jsonb) AS c(id bigint, attempts integer) "
        "WHERE m.id = c.id AND m.attempts = c.attempts AND m.status = %s "
        "AND m.call_started_at IS NULL RETURNING m.id",
        [now, json.dumps([{"id": m.pk, "attempts": m.attempts} for m in messages]),
         MessageStatus.SENDING],
    )
    for message in messages:
        if message.pk in started:
            message.call_started_at = now


def _deliver_committed(message: Message) -> None:
    """Deliver in this process (``ASYNC`` off) a message just committed here,
    claimed when it was written (:func:`delivers_at_commit`): sent from the
    instance in memory, with no claim and no read."""
    try:
        if message.status == MessageStatus.SENDING:
            _deliver_own(message, timezone.now())
        else:  # written before ASYNC was turned off: claimed as a task claims it
            deliver(message_id=message.pk)
    except ProviderTemporaryError:
        pass  # rescheduled by deliver(); picked up on the next pass


def deliver(*, message_id: int) -> str:
    """Send one queued message through its backend. Safe to call more than once.

    When the message's backend sends in batches (its ``batch_size``, see
    :attr:`BaseSmsBackend.batch_size`), the run also claims up to that many
    other queued messages of the same backend and sends them too; their own
    tasks then find them claimed and skip.

    Raises :class:`ProviderTemporaryError` after putting the message back in the
    queue when a retry may help (the Celery task retries with backoff).
    """
    if message_id in _sent_in_batch:
        # Claimed and sent by an earlier batch of this process: nothing to ask.
        _sent_in_batch.discard(message_id)
        return "skipped"
    now = timezone.now()
    if not _claim(message_id, now):
        return "skipped"
    return _deliver_own(Message.objects.select_related("app").get(pk=message_id), now)


def _deliver_own(message: Message, now: Any) -> str:
    """Send a message this run has claimed, with the others of a batching
    backend it can claim too; the claimed message's outcome."""
    if connection.vendor != "postgresql":
        return _deliver_claimed(message, _Immediate())
    # A batch of one writes as a batch does: its events, its final status and
    # its charge in a few statements at the end, instead of one at each step.
    size = batch_size(message.backend)
    others = []
    if size > 1:
        others = _claim_batch(alias=message.backend, exclude=message.pk, limit=size - 1, now=now)
    return _deliver_batch([message, *others], own=message)


def _claim(message_id: int, now: Any) -> bool:
    """``queued -> sending`` for one message, if it is still queued: one
    conditional UPDATE, written out (it is also what every duplicate or
    already-batched task runs, so it stays as cheap as a statement can)."""
    with sql.prepared_cursor(connection) as cursor:
        cursor.execute(
            f"UPDATE {_table(Message)} SET status = %s, attempts = attempts + 1, updated_at = %s, "
            f"next_attempt_at = NULL, call_started_at = NULL WHERE id = %s AND status = %s",
            [MessageStatus.SENDING, connection.ops.adapt_datetimefield_value(now), message_id,
             MessageStatus.QUEUED],
        )
        return cursor.rowcount == 1


def _deliver_claimed(message: Message, sink: _Immediate) -> str:
    """Send a message this run has claimed (``sending``), along its route."""
    sink.event(message, f"attempt {message.attempts}", status=MessageStatus.SENDING)
    aliases = _failover_route(message)
    last_error: ProviderTemporaryError | ProviderRejectedError | None = None
    for position, alias in enumerate(aliases):
        remaining = position < len(aliases) - 1
        if not sink.allow(alias):
            # Skipped without a call: nothing can have been sent through it.
            sink.event(message, f"{alias}: circuit open, skipped", backend=alias)
            last_error = ProviderTemporaryError(f"the circuit of backend {alias!r} is open")
            continue
        if alias != message.backend:
            Message.objects.filter(pk=message.pk).update(backend=alias)
            message.backend = alias
        backend = get_backend(alias)
        sink.event(message, f"sending through {alias} ({backend.provider_name})",
                   status=MessageStatus.SENDING, backend=alias, provider=backend.provider_name)
        try:
            outgoing = _outgoing(message, backend)
            # Once per claim, just before the first provider call.
            if message.call_started_at is None and not sink.start_call(message):
                return "skipped"  # this claim was abandoned and given to another run
            result = backend.send(outgoing)
        except SendCancelled as exc:
            sink.flush()
            transition(message, MessageStatus.FAILED, description=f"cancelled before sending: {exc}",
                       error_code="cancelled", error_message=str(exc), payload=None)
            return MessageStatus.FAILED
        except ProviderTemporaryError as exc:
            sink.record_failure(alias)
            sink.event(message, f"{alias} failed, nothing sent: {exc}", backend=alias)
            last_error = exc
            continue
        except ProviderRejectedError as exc:
            if remaining and exc.context.get("provider_fault"):
                # The provider's own refusal (account, template, signature):
                # the next provider may well send it.
                sink.event(message, f"{alias} refused, trying the next: {exc}", backend=alias)
                last_error = exc
                continue
            sink.flush()
            _fail(message, exc)
            return MessageStatus.FAILED
        except ProviderOutcomeUnknownError as exc:
            # The provider may have sent it: never resent, here or elsewhere.
            sink.flush()
            transition(message, MessageStatus.UNKNOWN, description=f"outcome unknown ({alias}): {exc}",
                       error_message=str(exc))
            return MessageStatus.UNKNOWN
        sink.record_success(alias)
        return sink.success(message, backend.provider_name, result)
    sink.flush()
    if isinstance(last_error, ProviderRejectedError):
        _fail(message, last_error)
        return MessageStatus.FAILED
    assert last_error is not None  # the route has at least one alias, and each failed
    if _handle_temporary(message, last_error):
        raise last_error
    return MessageStatus.FAILED


# --- batches ---------------------------------------------------------------------------

#: Ids this process sent in a batch whose own task has not arrived yet: that
#: task skips without a query. Bounded; forgetting an id only costs the query.
_sent_in_batch: set[int] = set()
_SENT_IN_BATCH_MAX = 50_000


def _in_worker() -> bool:
    """Whether this runs as a task in a Celery worker (not eagerly in-process)."""
    from celery import current_task

    if not current_task:  # a proxy: false outside a task
        return False
    return not getattr(current_task.request, "is_eager", True)


def batch_size(alias: str) -> int:
    """How many messages of backend ``alias`` one run may send (1: one at a time)."""
    try:
        return max(1, int(get_backend(alias).batch_size))
    except SmsServiceConfigurationError:
        return 1


def _changed_ids(statement: str, params: list[Any]) -> set[int]:
    """Run a statement on the message table (``{table}``) that returns the ids
    of the rows it changed."""
    with sql.prepared_cursor(connection) as cursor:
        cursor.execute(statement.format(table=_table(Message)), params)
        return {row[0] for row in cursor.fetchall()}


def _claim_batch(*, alias: str, exclude: int | None, limit: int, now: Any) -> list[Message]:
    """Claim up to ``limit`` due queued messages of backend ``alias`` but
    ``exclude`` in one statement (rows another run holds are skipped, never
    waited for)."""
    ids = _changed_ids(
        # A CTE runs once: the LIMIT holds (a subquery may be rescanned).
        "WITH picked AS MATERIALIZED ("
        "  SELECT id FROM {table} WHERE status = %s AND backend = %s AND id <> %s"
        "  AND (next_attempt_at IS NULL OR next_attempt_at <= %s)"
        "  ORDER BY updated_at LIMIT %s FOR UPDATE SKIP LOCKED) "
        "UPDATE {table} AS m SET status = %s, attempts = m.attempts + 1, updated_at = %s, "
        "next_attempt_at = NULL, call_started_at = NULL "
        "FROM picked WHERE m.id = picked.id AND m.status = %s RETURNING m.id",
        [MessageStatus.QUEUED, alias, exclude or 0, now, limit, MessageStatus.SENDING, now,
         MessageStatus.QUEUED],
    )
    if not ids:
        return []
    return list(Message.objects.select_related("app").filter(pk__in=ids).order_by("pk"))


class _Immediate:
    """How a single run writes: each event and status change at once."""

    def event(self, message: Message, description: str, *, status: str = "",
              **detail: Any) -> None:
        MessageEvent.objects.record(message, description, status=status, **detail)

    def start_call(self, message: Message) -> bool:
        return start_call(message)

    def allow(self, alias: str) -> bool:
        return circuit.allow(alias)

    def record_failure(self, alias: str) -> None:
        circuit.record_failure(alias)

    def record_success(self, alias: str) -> None:
        circuit.record_success(alias)

    def success(self, message: Message, provider: str, result: SendResult) -> str:
        _handle_success(message, provider, result)
        return message.status

    def flush(self) -> None:
        pass


class _Batch(_Immediate):
    """How a batch writes: events and final-at-once successes are kept and
    written together (a few statements for the whole batch); the start of the
    provider calls is recorded for all the batch's unstarted messages at once,
    just before the first of them is sent."""

    def __init__(self, messages: list[Message]):
        self.messages = messages
        self.events: list[dict[str, Any]] = []
        self.delivered: list[tuple[Message, str, SendResult]] = []
        self.closed: set[str] = set()  # circuits found closed in this batch
        self.succeeded: set[str] = set()

    def allow(self, alias: str) -> bool:
        # A closed circuit is asked once per batch (a few milliseconds), not per
        # message; a failure asks again (it may have opened the circuit).
        if alias in self.closed:
            return True
        if circuit.state(alias) == circuit.CLOSED:
            self.closed.add(alias)
            return True
        return circuit.allow(alias)

    def record_success(self, alias: str) -> None:
        self.succeeded.add(alias)

    def record_failure(self, alias: str) -> None:
        self.closed.discard(alias)
        circuit.record_failure(alias)

    def event(self, message: Message, description: str, *, status: str = "",
              if_delivered: bool = False, **detail: Any) -> None:
        self.events.append({"message_id": message.pk, "status": status,
                            "description": description[:255], "detail": detail,
                            "created_at": timezone.now(), "if_delivered": if_delivered})

    def start_call(self, message: Message) -> bool:
        pending = [m for m in self.messages if m.call_started_at is None]
        if message not in pending:
            pending.append(message)
        start_calls(pending)
        return message.call_started_at is not None

    def success(self, message: Message, provider: str, result: SendResult) -> str:
        if result.status != MessageStatus.DELIVERED:
            self.flush()
            return super().success(message, provider, result)
        self.delivered.append((message, provider, result))
        return MessageStatus.DELIVERED

    def flush(self) -> None:
        succeeded, self.succeeded = self.succeeded, set()
        for alias in succeeded:
            circuit.record_success(alias)
        delivered, self.delivered = self.delivered, []
        changed: list[Message] = []
        if delivered:
            for message, provider, _ in delivered:
                # Written only for the messages the statement moves to delivered.
                self.event(message, f"accepted by {provider}", status=MessageStatus.ACCEPTED,
                           if_delivered=True)
                self.event(message, f"{provider} reports delivered",
                           status=MessageStatus.DELIVERED, if_delivered=True)
            changed = _write_delivered(delivered, self.events)
            self.events = []
        elif self.events:
            _insert_events(self.events)
            self.events = []
        # Only a worker process remembers: there ids are never reused (a test
        # database rolled back may hand the same id to another message).
        in_worker = _in_worker()
        for message in changed:
            for old, new in ((MessageStatus.SENDING, MessageStatus.ACCEPTED),
                             (MessageStatus.ACCEPTED, MessageStatus.DELIVERED)):
                signals.delivery_status_changed.send_robust(
                    sender=Message, message=message, old_status=old, new_status=new)
            if in_worker:
                _sent_in_batch.add(message.pk)
        if len(_sent_in_batch) > _SENT_IN_BATCH_MAX:
            _sent_in_batch.clear()


_EVENTS_FROM = (
    "INSERT INTO {events} (message_id, status, description, detail, created_at) "
    "SELECT message_id, status, description, detail, created_at "
    "FROM jsonb_to_recordset(%s::jsonb) AS v(message_id bigint, status text, "
    "description text, detail jsonb, created_at timestamptz, if_delivered boolean)"
)


def _insert_events(events: list[dict[str, Any]]) -> None:
    """Many message events in one INSERT (no model instances: a batch writes
    hundreds)."""
    with sql.prepared_cursor(connection) as cursor:
        cursor.execute(_EVENTS_FROM.format(events=_table(MessageEvent)), [_events_json(events)])


def _table(model: type[Any]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _events_json(events: list[dict[str, Any]]) -> str:
    return json.dumps(events, cls=DjangoJSONEncoder)


def _write_delivered(delivered: list[tuple[Message, str, SendResult]],
                     events: list[dict[str, Any]]) -> list[Message]:
    """One statement for the end of a batch: ``sending -> delivered`` (through
    ``accepted``) for many messages, a conditional UPDATE; the charge of those
    it changed; and the batch's events (those marked ``if_delivered`` only for
    the messages it changed). Returns the messages it changed."""
    now = timezone.now()
    by_id = {message.pk: (message, provider, result) for message, provider, result in delivered}
    charge, charge_params = billing.charge_delivered_statement(connection=connection, source="d")
    update = (
        f"UPDATE {_table(Message)} AS m SET status = %s, provider = v.provider, "
        "provider_message_id = v.provider_message_id, sent_at = %s, finished_at = %s, "
        "updated_at = %s, payload = NULL "
        "FROM jsonb_to_recordset(%s::jsonb) "
        "  AS v(id bigint, provider text, provider_message_id text) "
        "WHERE m.id = v.id AND m.status = %s RETURNING m.id, m.app_id, m.cost, m.is_test"
    )
    events_insert = _EVENTS_FROM.format(events=_table(MessageEvent))
    statement = (f"WITH d AS ({update}), c AS ({charge}), "
                 f"e AS ({events_insert} WHERE NOT v.if_delivered "
                 f"OR v.message_id IN (SELECT id FROM d)) SELECT id FROM d")
    params = [MessageStatus.DELIVERED, now, now, now,
              json.dumps([{"id": pk, "provider": provider,
                           "provider_message_id": result.provider_message_id}
                          for pk, (_, provider, result) in by_id.items()]),
              MessageStatus.SENDING, *charge_params, _events_json(events)]
    with sql.prepared_cursor(connection) as cursor:
        cursor.execute(statement, params)
        ids = [row[0] for row in cursor.fetchall()]
    changed = []
    for message_id in sorted(ids):
        message, provider, result = by_id[message_id]
        message.status = MessageStatus.DELIVERED
        message.provider = provider
        message.provider_message_id = result.provider_message_id
        message.sent_at = message.finished_at = message.updated_at = now
        message.payload = None
        changed.append(message)
    return changed


def _deliver_batch(messages: list[Message], own: Message | None = None) -> str:
    """Send claimed ``messages``, each at most once, as alone; an error with one
    is that message's and never stops the rest. ``own`` is the message of the
    task that runs the batch, if any: returns its outcome (raising its
    temporary error last, for the task to retry); the others' retries are
    scheduled here."""
    batch = _Batch(messages)
    outcome = "skipped"
    own_error: BaseException | None = None
    try:
        for message in batch.messages:
            try:
                status = _deliver_claimed(message, batch)
            except ProviderTemporaryError as exc:
                if message is own:
                    own_error = exc
                else:
                    _dispatch_later(message.pk, exc.retry_after or 1)
                continue
            except Exception as exc:
                if message is own:
                    own_error = exc
                else:
                    logger.exception("message %s failed in a batch", message.pk)
                continue
            if message is own:
                outcome = status
    finally:
        batch.flush()
    if own_error is not None:
        raise own_error
    return outcome


def _dispatch_later(message_id: int, countdown: int) -> None:
    try:
        taskqueue.get("deliver_message").apply_async((message_id,), countdown=countdown)
    except Exception:
        logger.exception("could not schedule the retry of message %s; it will be "
                         "redispatched", message_id)


def _failover_route(message: Message) -> list[str]:
    """The aliases to try, in order: the message's route when its backend is on
    it (every attempt starts from the best), else the backend alone."""
    try:
        aliases = route(app=message.app, phone=message.phone, channel=message.channel,
                        kind=message.kind)
    except SmsServiceConfigurationError:
        logger.exception("no route for message %s; using its backend", message.pk)
        return [message.backend]
    return aliases if message.backend in aliases else [message.backend]


def _fail(message: Message, exc: ProviderRejectedError) -> None:
    transition(message, MessageStatus.FAILED, description=f"provider refused: {exc}",
               error_code=str(exc.context.get("provider_code", ""))[:64],
               error_message=str(exc), payload=None)


def _outgoing(message: Message, backend: BaseSmsBackend | None = None) -> OutgoingMessage:
    if message.payload is not None:
        text, values = decrypt_message(message.payload)
    else:
        text, values = message.body, {}
    digits = text if message.channel == "voice" else ""
    template_id, sign_name = "", ""
    params: tuple[tuple[str, str], ...] = ()
    if backend is not None and backend.uses_templates:
        # The provider sends its own registered template, filled with the values.
        mapping = provider_templates.find(
            app=message.app, version=message.template_version, alias=backend.alias,
            channel=message.channel,
        )
        template_id, params = provider_templates.fill(
            mapping=mapping, values=values, alias=backend.alias
        )
        sign_name = message.signature.text if message.signature else ""
    return OutgoingMessage(
        message_id=message.pk,
        app_id=message.app.app_id,
        to=message.phone,
        channel=message.channel,
        body=_voice_text(text) if message.channel == "voice" else text,
        digits=digits,
        created=message.created_at,
        status_callback=_status_callback(message),
        template_id=template_id,
        template_params=params,
        sign_name=sign_name,
    )


def _voice_text(digits: str) -> str:
    # A voice call reads the digits only, spaced so they are read one by one.
    return " ".join(digits)


def _status_callback(message: Message) -> str:
    return status_callback_url(message)


def _handle_success(message: Message, provider: str, result: SendResult) -> None:
    now = timezone.now()
    status = MessageStatus.DELIVERED if result.status == MessageStatus.DELIVERED else MessageStatus.ACCEPTED
    fields = {"provider": provider, "provider_message_id": result.provider_message_id,
              "sent_at": now, "payload": None}
    if status == MessageStatus.DELIVERED:
        # Record acceptance first so billing sees the same path as a receipt; both
        # or neither (a worker killed in between would leave it awaiting a
        # receipt that a final-at-once provider never sends).
        with transaction.atomic():
            transition(message, MessageStatus.ACCEPTED, description=f"accepted by {provider}",
                       **fields)
            transition(message, MessageStatus.DELIVERED,
                       description=f"{provider} reports delivered")
    elif transition(message, MessageStatus.ACCEPTED, description=f"accepted by {provider}", **fields):
        # Receipts the provider posted before the id above was stored.
        apply_held_receipts(message=message)


def _handle_temporary(message: Message, exc: ProviderTemporaryError) -> bool:
    """Re-queue with a backoff delay; returns False when out of attempts (failed)."""
    if message.attempts > app_settings.MAX_RETRIES:
        transition(message, MessageStatus.FAILED, description=f"gave up after {message.attempts} attempts: {exc}",
                   error_message=str(exc), payload=None)
        return False
    delay = retry_delay(message.attempts)
    transition(message, MessageStatus.QUEUED, description=f"temporary error, retry in {delay}s: {exc}",
               error_message=str(exc), next_attempt_at=timezone.now() + timedelta(seconds=delay),
               call_started_at=None)
    exc.retry_after = delay
    return True


def retry_delay(attempt: int) -> int:
    """Exponential backoff with full jitter, capped (attempt 1 -> up to 2 s)."""
    cap = app_settings.RETRY_BACKOFF_MAX
    return max(1, int(random.uniform(0, min(cap, 2**attempt))))


def dispatch_now(message_id: int) -> None:
    if app_settings.ASYNC:
        _send_task(taskqueue.get("deliver_message"), message_id)
    else:
        try:
            deliver(message_id=message_id)
        except ProviderTemporaryError:
            pass  # rescheduled by deliver(); picked up on the next pass
