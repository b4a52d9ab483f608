"""Type names shared by the package's annotations (nothing here runs)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from django.utils.functional import _StrOrPromise

    #: Text for people: a str or a lazily translated string (gettext_lazy).
    StrOrPromise: TypeAlias = _StrOrPromise
else:
    StrOrPromise = str

#: The host project's user (``AUTH_USER_MODEL``, e.g. ``request.user``): any
#: model the project chose, so nothing more precise can be said here.
User: TypeAlias = Any
