"""The shipped catalogues: complete, compiled, current with the pages; and the
API's English error texts unless the project opts in to translated ones."""

from __future__ import annotations

import gettext
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from django.core.management import call_command

from sms_service import exceptions

PACKAGE = Path(exceptions.__file__).resolve().parent
LOCALE = PACKAGE / "locale"
LANGUAGES = ("zh_Hans", "en")


def _require_gettext() -> None:
    if shutil.which("msgfmt") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI must check the catalogues: msgfmt (gettext) is missing")
        pytest.skip("msgfmt is missing (apt-get install gettext)")


def _catalogue(mo: Path) -> dict:
    with mo.open("rb") as handle:
        return dict(gettext.GNUTranslations(handle)._catalog)


@pytest.mark.parametrize("language", LANGUAGES)
def test_shipped_mo_is_the_compiled_po(language, tmp_path):
    _require_gettext()
    po = LOCALE / language / "LC_MESSAGES" / "django.po"
    fresh = tmp_path / "django.mo"
    subprocess.run(["msgfmt", "--check-format", "-o", str(fresh), str(po)], check=True)
    assert _catalogue(LOCALE / language / "LC_MESSAGES" / "django.mo") == _catalogue(fresh)


def test_chinese_catalogue_has_no_untranslated_or_fuzzy_entry():
    _require_gettext()
    po = LOCALE / "zh_Hans" / "LC_MESSAGES" / "django.po"
    result = subprocess.run(["msgfmt", "--statistics", "-o", os.devnull, str(po)],
                            capture_output=True, text=True, check=True)
    assert "untranslated" not in result.stderr and "fuzzy" not in result.stderr, result.stderr


def test_every_string_of_the_pages_and_errors_is_in_the_catalogue(tmp_path):
    """makemessages over the pages and the error texts finds nothing the shipped
    catalogue lacks."""
    _require_gettext()
    copy = tmp_path / "sms_service"
    for part in ("accounts", "templates/sms_service/accounts", "static/sms_service/accounts"):
        shutil.copytree(PACKAGE / part, copy / part)
    shutil.copy(PACKAGE / "exceptions.py", copy / "exceptions.py")
    (copy / "locale").mkdir()
    cwd = Path.cwd()
    os.chdir(copy)
    try:
        call_command("makemessages", locale=["zh_Hans"], no_location=True, verbosity=0)
    finally:
        os.chdir(cwd)
    wanted = _msgids(copy / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po")
    assert {"Send code", "Send again in {s} s", "Invalid SMS code."} <= wanted
    shipped = _catalogue(LOCALE / "zh_Hans" / "LC_MESSAGES" / "django.mo")
    missing = sorted(msgid for msgid in wanted if msgid not in shipped)
    assert missing == []


def _msgids(po: Path) -> set[str]:
    """The singular msgids of a .po file (a small reader: makemessages' output only)."""
    ids, current = set(), None
    for line in po.read_text(encoding="utf-8").splitlines():
        if line.startswith("msgid "):
            current = [json.loads(line[6:])]
        elif line.startswith('"') and current is not None:
            current.append(json.loads(line))
        else:
            if current is not None and "".join(current):
                ids.add("".join(current))
            current = None
    return ids


# --- API error texts ------------------------------------------------------------------


def test_api_errors_stay_in_leancloud_english_by_default(lc):
    response = lc.post("/1.1/requestSmsCode", {"mobilePhoneNumber": "186abc"},
                       HTTP_ACCEPT_LANGUAGE="zh-CN")
    assert response.json() == {"code": 127, "error": "The mobile phone number was invalid."}


def test_api_errors_in_the_request_language_when_the_project_opts_in(lc, settings):
    settings.SMS_SERVICE = {**settings.SMS_SERVICE, "TRANSLATE_API_ERRORS": True}
    response = lc.post("/1.1/requestSmsCode", {"mobilePhoneNumber": "186abc"},
                       HTTP_ACCEPT_LANGUAGE="zh-CN")
    assert response.json() == {"code": 127, "error": "手机号码无效。"}
    response = lc.post("/1.1/requestSmsCode", {"mobilePhoneNumber": "186abc"})
    assert response.json() == {"code": 127, "error": "The mobile phone number was invalid."}
    assert lc.get("/1.1/nowhere", HTTP_ACCEPT_LANGUAGE="zh-CN").json() == {
        "code": 404, "error": "未找到。"}


@pytest.mark.parametrize("error_class", [
    cls for cls in vars(exceptions).values()
    if isinstance(cls, type) and issubclass(cls, exceptions.SmsServiceError)
])
def test_every_error_text_has_a_chinese_translation(error_class):
    shipped = _catalogue(LOCALE / "zh_Hans" / "LC_MESSAGES" / "django.mo")
    assert error_class.default_message in shipped, error_class.__name__
