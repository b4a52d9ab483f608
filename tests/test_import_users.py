"""``manage.py sms_service_import_users``: LeanCloud users become members of an
app and log in with their LeanCloud passwords."""

from __future__ import annotations

import io
import json

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from sms_service.models import App, AppUser
from tests.test_import_users_parsing import ROW, SALT

pytestmark = pytest.mark.django_db

BOB = {"objectId": "5f1a2b3c4d5e6f7a8b9c0d2f", "username": "bob",
       "mobilePhoneNumber": "+8618600000002", "mobilePhoneVerified": False,
       "createdAt": {"__type": "Date", "iso": "2019-05-06T07:08:09.000Z"}}


def export(tmp_path, *rows, name="_User.jsonl") -> str:
    path = tmp_path / name
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


def run(app, path, **kwargs) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("sms_service_import_users", app.app_id, path, stdout=out, stderr=err, **kwargs)
    return out.getvalue(), err.getvalue()


def login(lc, **body):
    return lc.post("/1.1/login", body)


def test_imported_users_log_in_with_their_leancloud_password(lc, app, tmp_path):
    out, err = run(app, export(tmp_path, ROW, BOB))

    assert out.strip() == "2 users imported, 0 already there, 0 rows skipped."
    assert err == ""
    alice = AppUser.objects.get(app=app, object_id=ROW["objectId"])
    assert (alice.username, alice.email, alice.phone) == ("alice", "alice@example.com",
                                                          "+8618600000000")
    assert alice.phone_verified and alice.email_verified
    assert alice.created_at.isoformat() == "2021-03-04T05:06:07.890000+00:00"
    assert alice.extra == {"nickname": "Al", "level": 3}
    assert alice.user.password.startswith(f"leancloud_sha512${SALT}$")

    assert login(lc, username="alice", password="wrong").json()["code"] == 210
    response = login(lc, username="alice", password="password")

    assert response.status_code == 200, response.content
    assert response.json()["objectId"] == ROW["objectId"]
    # Upgraded to the default hasher by that first login; the password still works.
    alice.user.refresh_from_db()
    assert alice.user.password.startswith("md5$")
    assert login(lc, mobilePhoneNumber="+8618600000000", password="password").status_code == 200


def test_a_user_without_a_password_cannot_log_in_with_one(lc, app, tmp_path):
    run(app, export(tmp_path, BOB))
    bob = AppUser.objects.get(app=app, object_id=BOB["objectId"])
    assert not bob.user.has_usable_password()
    assert bob.created_at.isoformat() == "2019-05-06T07:08:09+00:00"
    assert login(lc, username="bob", password="").status_code == 400


def test_running_it_again_adds_nothing(app, tmp_path):
    path = export(tmp_path, ROW, BOB)
    run(app, path)
    users = get_user_model().objects.count()

    out, err = run(app, path)

    assert out.strip() == "0 users imported, 2 already there, 0 rows skipped."
    assert AppUser.objects.filter(app=app).count() == 2
    assert get_user_model().objects.count() == users


def test_bad_rows_are_reported_by_line_and_skipped(app, tmp_path):
    path = tmp_path / "_User.jsonl"
    path.write_text("\n".join([
        json.dumps(ROW),
        "{not json",
        json.dumps({**BOB, "username": ""}),
        json.dumps({**BOB, "objectId": "5f1a2b3c4d5e6f7a8b9c0d30", "username": "carol",
                    "mobilePhoneNumber": ROW["mobilePhoneNumber"]}),  # alice's number
        json.dumps(BOB),
    ]) + "\n")
    users = get_user_model().objects.count()

    out, err = run(app, str(path))

    assert out.strip() == "2 users imported, 0 already there, 3 rows skipped."
    lines = err.strip().splitlines()
    assert [line.split(": skipped: ")[0] for line in lines] == [f"{path}:{n}" for n in (2, 3, 4)]
    assert "not JSON" in lines[0]
    assert "username is missing" in lines[1]
    assert "(code 214)" in lines[2]
    # The clashing row left nothing behind: no host user, no member.
    assert get_user_model().objects.count() == users + 2
    assert sorted(AppUser.objects.values_list("username", flat=True)) == ["alice", "bob"]


def test_json_array_export(app, tmp_path):
    path = tmp_path / "_User.json"
    path.write_text('{"results": [\n' + json.dumps(ROW) + ",\n" + json.dumps([]) + "\n]}")

    out, err = run(app, str(path))

    assert out.strip() == "1 users imported, 0 already there, 1 rows skipped."
    assert err.strip() == f"{path}:3: skipped: a row must be a JSON object"


def test_users_join_only_the_named_app(app, tmp_path):
    other = App.objects.create(name="Other")
    run(other, export(tmp_path, ROW))
    assert not AppUser.objects.filter(app=app).exists()
    out, _ = run(app, export(tmp_path, ROW))  # the same export into a second app
    assert out.startswith("1 users imported")


def test_progress_bar_on_a_terminal(app, tmp_path):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    err = Terminal()
    call_command("sms_service_import_users", app.app_id, export(tmp_path, ROW, BOB),
                 stdout=io.StringIO(), stderr=err)
    assert "users: 100%" in err.getvalue()

    quiet = Terminal()
    call_command("sms_service_import_users", app.app_id, export(tmp_path, ROW, BOB),
                 "--no-progress", stdout=io.StringIO(), stderr=quiet)
    assert quiet.getvalue() == ""


def test_refusals(app, tmp_path, settings):
    with pytest.raises(CommandError, match="No app with id 'nope'"):
        call_command("sms_service_import_users", "nope", export(tmp_path, ROW))
    with pytest.raises(CommandError, match="Cannot read"):
        call_command("sms_service_import_users", app.app_id, str(tmp_path / "missing.jsonl"))
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    with pytest.raises(CommandError, match="LeanCloudPasswordHasher"):
        call_command("sms_service_import_users", app.app_id, export(tmp_path, ROW))
    assert not AppUser.objects.exists()
