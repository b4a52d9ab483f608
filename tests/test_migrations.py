"""Data migrations, run forwards on a database holding rows of the old shape."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

BEFORE = [("sms_service", "0001_initial")]
AFTER = [("sms_service", "0002_one_code_per_number")]


@pytest.fixture
def executor():
    executor = MigrationExecutor(connection)
    leaves = executor.loader.graph.leaf_nodes()
    yield executor
    executor = MigrationExecutor(connection)  # leave the schema as the suite expects
    executor.migrate(leaves)


@pytest.mark.django_db(transaction=True)
def test_0002_keeps_the_newest_code_of_each_number_and_purpose(executor):
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    app = old.get_model("sms_service", "App").objects.create(name="Old", company_name="Old Ltd")
    code = old.get_model("sms_service", "VerificationCode")
    now = timezone.now()

    def row(phone, purpose, status, minutes_ago, n):
        return code.objects.create(
            app=app, phone=phone, purpose=purpose, status=status, digest=f"d{n}",
            lookup=f"l{n}", expires_at=now + timedelta(minutes=10 - minutes_ago),
            created_at=now - timedelta(minutes=minutes_ago), data={},
        )

    row("+8618600000001", "generic", "used", 30, 1)
    row("+8618600000001", "generic", "superseded", 20, 2)
    newest = row("+8618600000001", "generic", "active", 1, 3)
    other_purpose = row("+8618600000001", "login", "expired", 40, 4)
    other_number = row("+8618600000002", "generic", "active", 2, 5)

    executor = MigrationExecutor(connection)
    executor.migrate(AFTER)
    new = executor.loader.project_state(AFTER).apps
    kept = new.get_model("sms_service", "VerificationCode").objects.values_list("pk", "status")
    assert dict(kept) == {newest.pk: "active", other_purpose.pk: "expired",
                          other_number.pk: "active"}


@pytest.mark.django_db(transaction=True)
def test_0004_keeps_the_test_numbers_under_their_new_name(executor):
    before = [("sms_service", "0003_phone_users")]
    after = [("sms_service", "0004_fixed_code_numbers")]
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    app = old.get_model("sms_service", "App").objects.create(name="Old", company_name="Old Ltd")
    old.get_model("sms_service", "TestNumber").objects.create(
        app=app, phone="+8618600000001", code="246810"
    )
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(after)
    new = executor.loader.project_state(after).apps
    numbers = new.get_model("sms_service", "FixedCodeNumber").objects.values_list(
        "app__name", "phone", "code"
    )
    assert list(numbers) == [("Old", "+8618600000001", "246810")]


def _around(executor, suffix: str):
    """The migration whose name ends with ``suffix`` and the one before it."""
    graph = executor.loader.graph
    (target,) = [key for key in graph.nodes if key[0] == "sms_service" and key[1].endswith(suffix)]
    (parent,) = [node.key for node in graph.node_map[target].parents
                 if node.key[0] == "sms_service"]
    return [parent], [target]


@pytest.mark.django_db(transaction=True)
def test_unmatched_receipts_keep_the_first_of_each_replay(executor):
    before, after = _around(executor, "_receipts_once_voice_to_landlines")
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    receipt = old.get_model("sms_service", "UnmatchedReceipt")

    def row(pid, status):
        return receipt.objects.create(backend="twilio", provider="twilio",
                                      provider_message_id=pid, status=status)

    first = row("SM1", "delivered")
    row("SM1", "delivered")
    row("SM1", "delivered")
    failed = row("SM1", "failed")
    other = row("SM2", "delivered")

    executor = MigrationExecutor(connection)
    executor.migrate(after)
    new = executor.loader.project_state(after).apps
    kept = new.get_model("sms_service", "UnmatchedReceipt").objects.values_list("pk", flat=True)
    assert sorted(kept) == sorted([first.pk, failed.pk, other.pk])
