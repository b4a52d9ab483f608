"""The process cache in front of the shared one: each read is a copy of what was
kept, entries expire and the oldest go first."""

from __future__ import annotations

import pytest

from sms_service.caching import ProcessCache
from sms_service.models import App

pytestmark = pytest.mark.django_db


def test_an_app_read_back_is_a_copy_that_can_be_changed_freely(app) -> None:
    app.allowed_countries = ["CN", "HK"]
    app.pumping_settings = {"RANGE_MIN_VOLUME": 50}
    kept = ProcessCache()
    kept.set("app", app, 60)
    app.name = "changed after it was kept"

    first = kept.get("app")
    first.sms_enabled = False
    first.allowed_countries.append("GB")
    first.pumping_settings["RANGE_MIN_VOLUME"] = 1
    second = kept.get("app")

    assert isinstance(second, App) and second.pk == app.pk
    assert second.name != "changed after it was kept"
    assert second.sms_enabled is True
    assert second.allowed_countries == ["CN", "HK"]
    assert second.pumping_settings == {"RANGE_MIN_VOLUME": 50}
    assert second._state is not first._state and not second._state.adding
    assert second._state.db == app._state.db
    # Still a saved row: saving the copy updates it.
    second.name = "saved from a copy"
    second.save(update_fields=["name"])
    assert App.objects.get(pk=app.pk).name == "saved from a copy"


def test_other_values_read_back_are_copies_too() -> None:
    kept = ProcessCache()
    kept.set("blocks", [["range", "+447400"]], 60)
    kept.get("blocks").append(["country", "GB"])
    assert kept.get("blocks") == [["range", "+447400"]]


def test_entries_expire_after_their_timeout(clock) -> None:
    kept = ProcessCache()
    kept.set("price", {"CN": "0.05"}, 2)
    clock.shift(1.5)
    assert kept.get("price") == {"CN": "0.05"}
    clock.shift(1)
    assert kept.get("price") is None
    assert kept.get("price", "gone") == "gone"


def test_the_oldest_entries_go_beyond_the_bound() -> None:
    kept = ProcessCache(max_entries=2)
    kept.set("a", 1, 60)
    kept.set("b", 2, 60)
    kept.set("a", 3, 60)  # written again: now the newest
    kept.set("c", 4, 60)
    assert [kept.get(key) for key in "abc"] == [3, None, 4]
