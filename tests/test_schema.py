"""The migrated schema holds every index and constraint the models declare.

Migrations can lose one without the models noticing (for instance an index
dropped together with a foreign key's own). The suite builds its database from
the migrations, so this reads the real tables.
"""

from __future__ import annotations

import pytest
from django.apps import apps
from django.db import connection

pytestmark = pytest.mark.django_db


def test_every_declared_index_and_constraint_exists_in_the_database():
    missing = []
    with connection.cursor() as cursor:
        for model in apps.get_app_config("sms_service").get_models():
            present = set(connection.introspection.get_constraints(cursor, model._meta.db_table))
            for declared in [*model._meta.indexes, *model._meta.constraints]:
                if declared.name not in present:
                    missing.append(f"{model._meta.db_table}.{declared.name}")
    assert missing == []
