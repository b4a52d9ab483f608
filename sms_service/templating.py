"""Handlebars rendering for SMS templates: plain-text output, system variables, forbidden brackets.

Templates are compiled with pybars3 once and kept in a bounded per-process LRU
cache keyed by the caller's key (a template version pk) and the body, so a
message costs one function call, not a compile. Output is plain text: SMS has
no markup, so ``&``, ``<``, ``>`` and quotes are never HTML-escaped, not even
inside ``{{double}}`` braces.

A plain ``{{variable}}`` that the context does not provide is an error
(:class:`~sms_service.exceptions.TemplateRenderError`, 606) instead of
Handlebars' silent empty string; block conditions such as ``{{#if coupon}}``
still treat a missing value as false.
"""

from __future__ import annotations

import re
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from typing import Any

import pybars
from pybars import strlist

from .exceptions import InvalidParameterError, TemplateRenderError

#: Filled by the system, never by callers.
SYSTEM_VARIABLES = frozenset({"name", "code", "ttl", "sign", "template"})

#: Appended to every marketing message (reply TD to unsubscribe); carriers require it.
MARKETING_SUFFIX = "回复TD退订"

#: Helpers that pybars provides; their arguments are variables, they are not.
BUILTIN_HELPERS = frozenset({"if", "unless", "each", "with", "lookup", "log", "else"})

CompiledTemplate = Callable[..., str]


class TemplateSyntaxError(ValueError):
    """The body is not valid Handlebars (or uses features SMS templates forbid)."""


class _MissingVariable(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


# pybars' Compiler keeps its code builder in a class attribute, shared by every
# instance: two threads compiling at once corrupt each other's output.
_compile_lock = threading.Lock()
_compiler = pybars.Compiler()


def _plain_prepare(value: Any, should_escape: bool) -> Any:
    # Replaces pybars' ``prepare`` inside each compiled module: same conversions,
    # minus the HTML escaping that has no place in a text message.
    if value is None:
        return ""
    kind = type(value)
    if kind is str or kind is strlist:
        return value
    if kind is bool:
        return "true" if value else "false"
    return str(value)


def _strict_helper_missing(scope: Any, name: str, *args: Any) -> Any:
    # pybars calls helperMissing when ``{{name}}`` resolves to nothing. Block
    # helpers (#if/#each/...) never get here, so optional sections keep working.
    if not args:
        raise _MissingVariable(name)
    raise pybars.PybarsError(f"Could not find helper {name}")


_RENDER_HELPERS = {"helperMissing": _strict_helper_missing}

_MUSTACHE = re.compile(r"\{\{(\{?)~?\s*(.*?)\s*~?\}?\}\}", re.DOTALL)
_LITERAL = re.compile(r"""^(?:"[^"]*"|'[^']*'|-?\d+(?:\.\d+)?|true|false|null|undefined)$""")


def compile_template(source: str) -> CompiledTemplate:
    """Compile a body without caching. Raises :class:`TemplateSyntaxError`."""
    _check_supported(source)
    with _compile_lock:
        try:
            fn = _compiler.compile(source)
        except Exception as exc:
            raise TemplateSyntaxError(str(exc)) from exc
    # pybars registers every compiled template as a module in sys.modules and
    # never removes it; the function keeps its own globals, so drop the entry
    # to keep memory bounded by our cache rather than by uptime.
    sys.modules.pop(fn.__module__, None)
    fn.__globals__["prepare"] = _plain_prepare
    return fn


def _check_supported(source: str) -> None:
    # pybars accepts some broken bodies (an unclosed {{#if}} renders as nothing),
    # so block balance is checked here, where the author gets a clear message.
    open_blocks: list[str] = []
    for token in _tokens(source):
        if token.startswith(">"):
            raise TemplateSyntaxError("Partials ({{> name}}) are not supported.")
        if token[:1] in ("#", "^") and token[1:].split():
            open_blocks.append(token[1:].split()[0])
        elif token.startswith("/"):
            name = token[1:].strip()
            if not open_blocks or open_blocks.pop() != name:
                raise TemplateSyntaxError(f"Unexpected closing tag {{{{/{name}}}}}.")
        for path in _paths(token):
            if any(part.startswith("_") for part in re.split(r"[./]", path) if part):
                raise TemplateSyntaxError(
                    f"Variable names may not start with an underscore: {path}"
                )
    if open_blocks:
        raise TemplateSyntaxError(f"Unclosed block {{{{#{open_blocks[-1]}}}}}.")


class _CompiledCache:
    """A small thread-safe LRU of compiled templates."""

    def __init__(self) -> None:
        self._entries: OrderedDict[tuple[Hashable, str], CompiledTemplate] = OrderedDict()
        self._lock = threading.Lock()
        self.compiles = 0

    def get(self, key: Hashable, source: str) -> CompiledTemplate:
        # The body is part of the key: the dict hashes it (str hashes are cached
        # on the object) and compares it on a hit, so an edited body can never
        # be served from a stale entry.
        cache_key = (key, source)
        with self._lock:
            fn = self._entries.get(cache_key)
            if fn is not None:
                self._entries.move_to_end(cache_key)
                return fn
        fn = compile_template(source)
        with self._lock:
            self.compiles += 1
            self._entries[cache_key] = fn
            self._entries.move_to_end(cache_key)
            while len(self._entries) > _cache_size():
                self._entries.popitem(last=False)
        return fn

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.compiles = 0

    def __len__(self) -> int:
        return len(self._entries)


def _cache_size() -> int:
    from .conf import app_settings

    return max(1, int(app_settings.TEMPLATE_CACHE_SIZE))


#: The process-wide cache; ``cache.compiles`` counts misses (useful in tests).
cache = _CompiledCache()


def get_compiled(source: str, *, key: Hashable = None) -> CompiledTemplate:
    """The compiled template for ``source``, compiling it on first use only."""
    return cache.get(key, source)


def render(template: CompiledTemplate, context: Mapping[str, Any]) -> str:
    """Run a compiled template. Any failure becomes TemplateRenderError (606)."""
    try:
        # pybars only reads the context; copy just to accept any Mapping.
        ctx = context if type(context) is dict else dict(context)
        return template(ctx, helpers=_RENDER_HELPERS)
    except _MissingVariable as exc:
        raise TemplateRenderError(variable=exc.name) from None
    except Exception as exc:
        raise TemplateRenderError() from exc


#: Characters no caller text may hold: C0/C1 controls (a line break is allowed in
#: variables), surrogates (not text; PostgreSQL cannot store them) and the
#: bidirectional overrides that make a text read differently than it is stored.
_FORBIDDEN_CHARS = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\ud800-\udfff\u202a-\u202e\u2066-\u2069]"
)

#: Something a phone would show as a link: a scheme, "www." or a host name
#: (a dot, ASCII or full-width, followed by two letters).
_LINK = re.compile(r"://|\bwww[.。．｡]|\w[.。．｡][A-Za-z]{2}", re.IGNORECASE)


def check_value(key: str, value: str) -> None:
    """A caller's variable value: no 【 or 】 (the signature brackets), no control
    characters or surrogates. Raises InvalidParameterError."""
    if "【" in value or "】" in value:
        raise InvalidParameterError(f"Template variable {key} may not contain 【 or 】.")
    if _FORBIDDEN_CHARS.search(value):
        raise InvalidParameterError(f"Template variable {key} contains a control character.")


def check_label(key: str, value: str, *, max_length: int) -> None:
    """A caller's ``name`` or ``op`` for the default text: the rules of a variable,
    one line, no link, at most ``max_length`` characters (it stands where the
    app's own name stands, so it must not pass for another sender)."""
    check_value(key, value)
    if len(value) > max_length:
        raise InvalidParameterError(f"{key} may be at most {max_length} characters long.")
    if "\n" in value:
        raise InvalidParameterError(f"{key} must be one line.")
    if _LINK.search(value):
        raise InvalidParameterError(f"{key} may not contain a link.")


def build_context(
    variables: Mapping[str, Any], system: Mapping[str, Any]
) -> dict[str, Any]:
    """Caller variables plus system variables, which always win.

    Raises InvalidParameterError when a caller value contains 【 or 】 (they would forge a signature).
    """
    context: dict[str, Any] = {}
    for key, value in variables.items():
        if key in SYSTEM_VARIABLES:
            continue
        if isinstance(value, str):
            check_value(key, value)
        context[key] = value
    context.update(system)
    return context


def render_body(
    body: str,
    *,
    variables: Mapping[str, Any],
    system: Mapping[str, Any],
    key: Hashable = None,
) -> str:
    """Render a template body (cached compile) with caller and system variables."""
    try:
        template = get_compiled(body, key=key)
    except TemplateSyntaxError as exc:
        raise TemplateRenderError() from exc
    return render(template, build_context(variables, system))


def compose(*, signature_text: str, body: str, marketing: bool) -> str:
    """The final text: 【signature】 + body (+ 回复TD退订 for marketing)."""
    text = f"【{signature_text}】{body}"
    return text + MARKETING_SUFFIX if marketing else text


# --- Static analysis used by the lint and the admin preview ---------------------


def _tokens(source: str) -> list[str]:
    return [m.group(2) for m in _MUSTACHE.finditer(source)]


def _paths(token: str) -> list[str]:
    """Variable paths a mustache reads (helpers, literals and data vars excluded)."""
    if not token or token[0] in "!/":
        return []
    if token[0] in "#^":
        parts = token[1:].split()
        if not parts:
            return []
        if parts[0] in BUILTIN_HELPERS:
            candidates = parts[1:]
        else:
            candidates = parts[:1]
    elif token.startswith("else"):
        candidates = token.split()[2:]  # "else if x"
    elif token[0] == ">":
        return []
    else:
        parts = token.split()
        candidates = parts[1:] if parts[0] in BUILTIN_HELPERS else parts[:1]
    out = []
    for raw in candidates:
        path = raw.split("=", 1)[-1]
        if _LITERAL.match(path) or path.startswith(("@", "..", "this")):
            continue
        out.append(path)
    return out


def template_variables(source: str) -> list[str]:
    """Top-level variable names a body uses, in order of first use."""
    seen: dict[str, None] = {}
    for token in _tokens(source):
        for path in _paths(token):
            seen.setdefault(re.split(r"[./]", path)[0], None)
    return list(seen)


def expansions(source: str) -> list[tuple[str, int, int]]:
    """``(variable, start, end)`` for every plain ``{{variable}}`` output in a body."""
    out = []
    for match in _MUSTACHE.finditer(source):
        token = match.group(2)
        if not token or token[0] in "!/#^>" or token.startswith("else"):
            continue
        for path in _paths(token):
            out.append((re.split(r"[./]", path)[0], match.start(), match.end()))
    return out


class FillerContext(dict):
    """A context that invents a value for any variable it is asked about.

    Used to measure a body with every custom variable at a given length.
    """

    def __init__(self, filler: str, values: Mapping[str, Any]) -> None:
        super().__init__(values)
        self.filler = filler

    def __missing__(self, key: str) -> str:
        return self.filler


def render_with_filler(
    source: str, *, filler: str, values: Mapping[str, Any]
) -> str:
    """Render with ``values`` and ``filler`` for everything else (never raises 606
    for missing variables). Raises TemplateSyntaxError or TemplateRenderError."""
    template = get_compiled(source, key=None)
    try:
        return template(FillerContext(filler, values), helpers=_RENDER_HELPERS)
    except Exception as exc:
        raise TemplateRenderError() from exc
