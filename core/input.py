"""One check of every request's text before any view (or CSRF check) sees it: the path, the query string, form
fields and JSON bodies must be valid UTF-8 with no lone surrogate and no NUL, else 422 `invalid_text`.

Werkzeug is lenient: it keeps undecodable `%FF` escapes as literal text in query args and form fields, replaces
them with U+FFFD in paths and multipart fields, and JSON's `\\ud800` escape yields a lone surrogate that no database
driver can encode (a 500, and no audit row). Here the raw bytes are checked strictly instead. JSON nested deeper
than `MAX_JSON_DEPTH` is refused with 400 `json_too_deep` (the parser would otherwise hit Python's recursion limit).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

from flask import Flask, request
from werkzeug.exceptions import BadRequest, UnprocessableEntity

MAX_JSON_DEPTH = 64
_FORBIDDEN_TEXT = re.compile("[\x00\ud800-\udfff]")
_PAIR_SEPARATOR = re.compile(rb"[&;]")


class InvalidText(UnprocessableEntity):
    code_name = "invalid_text"
    description = ("Part of the request is not valid text: it must be UTF-8, without NUL characters or lone "
                   "surrogates. Check what was typed or pasted, and try again.")


class JsonTooDeep(BadRequest):
    code_name = "json_too_deep"
    description = f"The JSON body is nested too deeply (at most {MAX_JSON_DEPTH} levels)."


def is_forbidden_text(text: str) -> bool:
    """A NUL or a lone surrogate: text no database column (nor UTF-8) can hold."""
    return _FORBIDDEN_TEXT.search(text) is not None


def holds_forbidden_text(value: Any) -> bool:
    """Whether any string in a decoded JSON value (keys included) is forbidden text."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if is_forbidden_text(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def json_depth_exceeds(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False


def _valid_bytes(raw: bytes) -> bool:
    """Strict UTF-8 (which refuses encoded surrogates and over-long forms) without NUL."""
    if b"\x00" in raw:
        return False
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _valid_urlencoded(raw: bytes) -> bool:
    """Every key and value of `a=1&b=2`, percent-decoded as bytes, is valid text."""
    for pair in _PAIR_SEPARATOR.split(raw):
        for part in pair.split(b"=", 1):
            if not _valid_bytes(unquote_to_bytes(part.replace(b"+", b" "))):
                return False
    return True


def _valid_path() -> bool:
    """The path as sent (RAW_URI from gunicorn, REQUEST_URI from werkzeug, still percent-encoded) and as decoded
    into PATH_INFO (WSGI: the raw bytes, one latin-1 character each)."""
    environ = request.environ
    uri = environ.get("RAW_URI") or environ.get("REQUEST_URI") or ""
    raw_path = urlsplit(uri).path if "://" in uri else uri.split("?", 1)[0]
    if not _valid_bytes(unquote_to_bytes(raw_path)):
        return False
    path = environ.get("PATH_INFO", "")
    try:
        return _valid_bytes(path.encode("latin-1"))
    except UnicodeEncodeError:  # a server that decoded the path already
        return not is_forbidden_text(path)


def _check_form() -> None:
    if request.mimetype == "application/x-www-form-urlencoded":
        if not _valid_urlencoded(request.get_data(cache=True)):
            raise InvalidText()
        return
    if request.mimetype == "multipart/form-data":
        for key, values in request.form.lists():
            if is_forbidden_text(key) or any(is_forbidden_text(value) for value in values):
                raise InvalidText()
        if any(is_forbidden_text(f.filename or "") for f in request.files.values()):
            raise InvalidText()


def _check_json() -> None:
    raw = request.get_data(cache=True)
    if not raw.strip():
        return
    if not _valid_bytes(raw):  # JSON on the wire is UTF-8 (RFC 8259); a raw NUL is never JSON
        raise InvalidText()
    try:
        value = request.get_json(silent=True)  # cached: the view's own get_json() reads this result
    except RecursionError:
        raise JsonTooDeep() from None
    if json_depth_exceeds(value):
        raise JsonTooDeep()
    if holds_forbidden_text(value):
        raise InvalidText()


def refuse_invalid_text() -> None:
    """before_request, first of all: 422 for text that is not valid, 400 for JSON nested too deeply."""
    if not _valid_path() or not _valid_urlencoded(request.query_string):
        raise InvalidText()
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    if request.is_json:
        _check_json()
    else:
        _check_form()


def install(app: Flask) -> None:
    """Run the check before every other before_request hook (CSRF included), so it holds for every route."""
    app.before_request_funcs.setdefault(None, []).insert(0, refuse_invalid_text)
