"""Reading LeanCloud ``_User`` exports: both file forms, line numbers, field mapping.

(The import itself, through the users service, is in tests/test_import_users.py.)
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from sms_service.hashers import LeanCloudPasswordHasher
from sms_service.services.user_import import ExportReader, RowError, member_fields

SALT = "h60d8x797d3oa0naxybxxv9bn7xpt2yiowz68mpiwou7gwr2"
EXPORTED = "tA7BLW+NK0UeARng0693gCaVnljkglCB9snqlpCSUKjx2RgYp8VZZOQt0S5iUtlDrkJXfT3gknS4rRqjYsd/Ug=="

ROW = {
    "objectId": "5f1a2b3c4d5e6f7a8b9c0d1e",
    "username": "alice",
    "password": EXPORTED,
    "salt": SALT,
    "email": "alice@example.com",
    "emailVerified": True,
    "mobilePhoneNumber": "+8618600000000",
    "mobilePhoneVerified": True,
    "createdAt": "2021-03-04T05:06:07.890Z",
    "updatedAt": "2022-01-01T00:00:00.000Z",
    "ACL": {"*": {"read": True}},
    "sessionToken": "lc-session",
    "authData": {"weixin": {"access_token": "secret"}},
    "nickname": "Al",
    "level": 3,
}


def rows_of(path) -> list[tuple[int, object, str | None]]:
    return [(row.line, row.data, row.error) for row in ExportReader(path)]


def test_json_lines_with_a_bad_line_and_blank_lines(tmp_path):
    path = tmp_path / "_User.jsonl"
    path.write_text(json.dumps({"objectId": "a"}) + "\n\n{broken\n" + json.dumps([1]) + "\n")

    rows = rows_of(path)

    assert rows[0] == (1, {"objectId": "a"}, None)
    assert rows[1][0] == 3 and rows[1][1] is None and rows[1][2].startswith("not JSON")
    assert rows[2] == (4, [1], None)
    reader = ExportReader(path)
    assert not reader.is_array
    assert [row.position for row in reader][-1] == reader.total


def test_json_array_rows_carry_the_line_they_start_on(tmp_path):
    path = tmp_path / "_User.json"
    path.write_text('[\n  {"objectId": "a",\n   "username": "x"},\n  {"objectId": "b"}\n]\n')

    assert rows_of(path) == [(2, {"objectId": "a", "username": "x"}, None),
                             (4, {"objectId": "b"}, None)]
    assert ExportReader(path).is_array


def test_results_wrapper_and_single_line_array(tmp_path):
    wrapped = tmp_path / "wrapped.json"
    wrapped.write_text('{"results": [{"objectId": "a"},\n{"objectId": "b"}]}')
    assert rows_of(wrapped) == [(1, {"objectId": "a"}, None), (2, {"objectId": "b"}, None)]

    flat = tmp_path / "flat.json"
    flat.write_text('[{"objectId": "a"}, {"objectId": "b"}]')
    assert [line for line, _, _ in rows_of(flat)] == [1, 1]


def test_broken_array_stops_with_its_line(tmp_path):
    path = tmp_path / "_User.json"
    path.write_text('[\n{"objectId": "a"},\n{"objectId": }\n]')

    rows = rows_of(path)

    assert rows[0] == (2, {"objectId": "a"}, None)
    assert rows[1][0] == 3 and "cannot be read" in rows[1][2]


def test_field_mapping():
    fields = member_fields(ROW)

    assert fields["object_id"] == ROW["objectId"]
    assert fields["username"] == "alice"
    assert fields["password_hash"] == LeanCloudPasswordHasher.from_export(salt=SALT,
                                                                          password=EXPORTED)
    assert (fields["email"], fields["email_verified"]) == ("alice@example.com", True)
    assert (fields["phone"], fields["phone_verified"]) == ("+8618600000000", True)
    assert fields["created_at"] == datetime(2021, 3, 4, 5, 6, 7, 890000, tzinfo=UTC)
    # Custom fields are kept; LeanCloud's ACL, session and third-party tokens are not.
    assert fields["extra"] == {"nickname": "Al", "level": 3}


def test_date_objects_and_users_without_password():
    row = {"objectId": "x", "username": "bob",
           "createdAt": {"__type": "Date", "iso": "2020-01-01T00:00:00.000Z"}}
    fields = member_fields(row)
    assert fields["created_at"] == datetime(2020, 1, 1, tzinfo=UTC)
    assert fields["password_hash"] is None
    assert fields["phone"] is None and fields["phone_verified"] is False


@pytest.mark.parametrize("change, message", [
    ({"objectId": None}, "objectId is missing"),
    ({"username": ""}, "username is missing"),
    ({"salt": None}, "password and salt must both be strings"),
    ({"salt": "a$b"}, "a LeanCloud salt cannot contain '$'"),
    ({"password": "bm90IGEgaGFzaA=="}, "password is not 64 bytes"),
    ({"password": "%%%"}, "password is not base64"),
    ({"salt": "s" * 70}, "the salt is too long to store"),
    ({"mobilePhoneVerified": "yes"}, "mobilePhoneVerified must be true or false"),
    ({"email": 5}, "email must be a string"),
    ({"createdAt": "yesterday"}, "createdAt must be an ISO 8601 date with a time zone"),
    ({"createdAt": "2021-13-01T00:00:00Z"}, "createdAt must be an ISO 8601 date with a time zone"),
])
def test_bad_rows_say_why(change, message):
    with pytest.raises(RowError, match=message.replace("$", r"\$")):
        member_fields({**ROW, **change})


def test_a_row_must_be_an_object():
    with pytest.raises(RowError, match="a row must be a JSON object"):
        member_fields([ROW])
