"""Readable request-validation errors (422) and the JSON content-type check (415).

Pydantic reports a value that fits no member of a union type (``user_id``: a string or an integer;
event values: a string, a number or null; feature values: a number, null or a string) once per
member, with the member's internal name appended to the location (``["body", "events", 0, "user_id",
"constrained-str"]``, ``"nullable[float]"``, ``"function-after[...]"``).  :func:`readable_errors` removes
those names, merges the members' errors into one error per field and says in the message which field
is wrong and how to fix it.  The offending value is never echoed (it may be a user id).
"""

from __future__ import annotations

import difflib
import email.message
import json
import re
from collections.abc import Sequence
from typing import Any

from fastapi import HTTPException, Request, status

from buyerscore.serving.api.schemas import EventIn, EventsRequest, ScoreRequest

JSON_MEDIA_TYPE = "application/json"

_TAG = re.compile(r"^(?:str|int|float|bool|bytes|none|decimal|date|datetime|time|timedelta|uuid|url|any|"
                  r"constrained-[a-z]+|[a-z][a-z0-9_-]*\[.*\])$")
"""Pydantic-core's names of union members and validator wrappers (never a field name of the API's bodies)."""
_WRAPPER = re.compile(r"^(?:function-(?:after|before|wrap|plain)|nullable|tagged-union|union|lax-or-strict|"
                      r"json-or-python|default|chain|definition-ref)\[.*\]$")
"""Validator wrappers that pydantic-core may name in the middle of a location."""
_KEEP_LAST = frozenset({"extra_forbidden", "missing"})  # the last loc element of these is a field name

_BODIES: dict[str, Any] = {"/v1/events": EventsRequest, "/v1/score": ScoreRequest}
_SCALAR_FIX = "send a string, a number or null (true/false, lists and objects are not accepted)"
_FIXES: dict[tuple[str, str], str] = {
    ("event", "user_id"): "send the user id as a string of 1 to 200 characters without '/' (or as an integer); "
                          "true/false are not ids",
    **{("event", f): _SCALAR_FIX for f in ("ts", "event_type", "platform", "item_id", "category", "quantity",
                                           "amount", "currency", "order_id", "rating", "installments")},
    ("feature", "*"): "send a finite number, null (unknown) or a string of at most 200 characters "
                      "(true/false are not accepted: send 1 or 0)",
}


def field_path(loc: Sequence[Any]) -> str:
    """``["body", "events", 0, "amount"]`` -> ``events[0].amount`` (``body`` itself when nothing follows).

    >>> field_path(["body", "events", 0, "amount"]), field_path(["body", "features", "odd name"]), field_path(["body"])
    ('events[0].amount', 'features["odd name"]', 'body')
    """
    parts = list(loc[1:]) if loc and loc[0] == "body" else list(loc)
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif isinstance(p, str) and p.isidentifier():
            out += f".{p}" if out else p
        else:
            out += f"[{json.dumps(str(p), ensure_ascii=False)}]"
    return out or (str(loc[0]) if loc else "body")


def _clean_loc(loc: Sequence[Any], typ: str) -> tuple[list[Any], bool]:
    """The location without union-member / validator names, and whether the last element was one."""
    out = list(loc)
    tagged_last = False
    if len(out) > 1 and isinstance(out[-1], str) and _TAG.match(out[-1]) and typ not in _KEEP_LAST:
        out.pop()
        tagged_last = True
    kept = [p for i, p in enumerate(out) if not (i > 0 and isinstance(p, str) and _WRAPPER.match(p))]
    return kept, tagged_last


_NOTHING = object()


def _json_kind(v: Any) -> str:
    """The JSON type of a value, in words (never the value: it may be a user id)."""
    if v is _NOTHING:
        return ""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true/false"
    if isinstance(v, int | float):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list | tuple):
        return "a list"
    if isinstance(v, dict):
        return "an object"
    return type(v).__name__


def _context(loc: Sequence[Any]) -> tuple[str, str] | None:
    """What the location points at: an event field or a feature value (for the fix text)."""
    if len(loc) == 4 and loc[:2] == ["body", "events"] and isinstance(loc[2], int) and isinstance(loc[3], str):
        return "event", loc[3]
    if len(loc) == 3 and loc[:2] == ["body", "features"]:
        return "feature", "*"
    return None


def _fields_of(loc: Sequence[Any], url_path: str) -> list[str]:
    if len(loc) == 4 and loc[:2] == ["body", "events"]:
        return list(EventIn.model_fields)
    model = _BODIES.get(url_path)
    if len(loc) == 2 and model is not None:
        return list(model.model_fields)
    return []


def _single(e: dict[str, Any], loc: list[Any], url_path: str) -> str:
    """The message of one error: the field, pydantic's words and, for common cases, the fix."""
    typ, msg, path = e.get("type", ""), str(e.get("msg", "")), field_path(loc)
    if typ == "extra_forbidden":
        name = str(loc[-1])
        known = _fields_of(loc, url_path)
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        listed = f" (accepted: {', '.join(known)})" if known else ""
        return f"{path}: unknown field; {hint}remove or rename it{listed}"
    if typ == "missing":
        if loc == ["body"]:
            return "body: the request has no body; send a JSON object with Content-Type: application/json"
        return f"{path}: required field is missing; add it"
    if typ == "json_invalid":
        err = (e.get("ctx") or {}).get("error")
        pos = e.get("loc", [None, None])[1] if len(e.get("loc", ())) > 1 else None
        where = f" at character {pos}" if isinstance(pos, int) else ""
        return f"body: not valid JSON{where}{f' ({err})' if err else ''}; send one JSON object"
    if typ in ("model_attributes_type", "model_type", "dict_type"):
        return f"{path}: {msg}; send a JSON object" + (" such as {\"events\": [...]}" if loc == ["body"] else "")
    if typ == "list_type":
        return f"{path}: {msg}; send a JSON array"
    if typ == "too_short" and loc == ["body", "events"]:
        return f"{path}: {msg}; send at least one event"
    return f"{path}: {msg}"


def readable_errors(errors: Sequence[dict[str, Any]], url_path: str = "") -> list[dict[str, Any]]:
    """FastAPI validation errors -> ``[{"loc", "msg", "type"}]`` without pydantic's internal names.

    Errors of the members of one union are merged into one error at the field.

    >>> errs = [{"loc": ("body", "events", 0, "user_id", "constrained-str"), "msg": "Input should be a valid string",
    ...          "type": "string_type"},
    ...         {"loc": ("body", "events", 0, "user_id", "int"), "msg": "Input should be a valid integer",
    ...          "type": "int_type"}]
    >>> out = readable_errors(errs)
    >>> out[0]["loc"], out[0]["type"], len(out)
    (['body', 'events', 0, 'user_id'], 'string_type', 1)
    >>> out[0]["msg"].split(";")[0]
    'events[0].user_id: wrong type'
    """
    groups: dict[str, tuple[list[Any], list[dict[str, Any]]]] = {}  # cleaned loc -> (loc, its errors)
    unions: set[str] = set()  # locs some error reached through a union member
    for e in errors:
        loc, union = _clean_loc(list(e.get("loc", ())), str(e.get("type", "")))
        if e.get("type") == "json_invalid":  # pydantic puts the character position in loc; msg says it
            loc = ["body"]
        key = json.dumps(loc, default=str)
        groups.setdefault(key, (loc, []))[1].append(e)
        if union:
            unions.add(key)
    out = []
    for key, (loc, errs) in groups.items():
        union = key in unions
        if not union:
            for e in errs:
                out.append({"loc": loc, "msg": _single(e, loc, url_path), "type": e.get("type", "")})
            continue
        # a member whose type fitted but whose constraint did not (pattern, length) tells what is wrong;
        # when no member's type fitted, the JSON type sent is the problem
        specific = [e for e in errs if not str(e.get("type", "")).endswith(("_type", "_parsing"))]
        ctx = _context(loc)
        fix = _FIXES.get(ctx) if ctx is not None else None
        if specific:
            words = list(dict.fromkeys(str(e.get("msg", "")) for e in specific))
            what = "; ".join(words)
        else:
            got = _json_kind(errs[0].get("input", _NOTHING))
            what = "wrong type" + (f" (got {got})" if got else "")
        first = specific[0] if specific else errs[0]
        msg = f"{field_path(loc)}: {what}" + (f"; {fix}" if fix else "")
        out.append({"loc": loc, "msg": msg, "type": first.get("type", "")})
    return out


async def require_json(request: Request) -> None:
    """415 unless a request with a body declares it as JSON (``application/json`` or ``application/*+json``).

    Without this a ``text/plain`` body reached validation as a string and came back as a puzzling 422.
    A request without body and without content type is left to validation ("body required").
    """
    ctype = request.headers.get("content-type")
    if ctype is None:
        if not await request.body():
            return
        shown = "none"
    else:
        m = email.message.Message()
        m["content-type"] = ctype
        main, sub = m.get_content_maintype(), m.get_content_subtype()
        if main == "application" and (sub == "json" or sub.endswith("+json")):
            return
        shown = f"'{ctype.split(';')[0].strip()[:100]}'"
    raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
                        detail=f"unsupported Content-Type {shown}: send the body as JSON with the header "
                               f"'Content-Type: {JSON_MEDIA_TYPE}'")
