"""IOC records and events: the shapes every stage reads and writes (DESIGN.md, Records).

Pure helpers, no I/O. An *IOC record* is a dict with ``ioc`` and ``type``; an
*event* is any other dict carrying an ``iocs`` list of IOC records; an *error
record* is what a stage writes for an input line it could not read, so that
nothing vanishes between stages.
"""

from __future__ import annotations

import functools
from typing import Any, Iterator

from vexpipe import grammar

# Worst last. The index is the severity.
VERDICTS = ("CLEAN", "UNKNOWN", "SUSPICIOUS", "MALICIOUS")
SEVERITY = {v: i for i, v in enumerate(VERDICTS)}


def as_list(value: Any) -> list:
    """``value`` if it is a list, else empty. Records come from other tools too: a stage
    reads a key of the wrong shape as missing, never fails on it."""
    return value if isinstance(value, list) else []


def as_dict(value: Any) -> dict:
    """``value`` if it is a dict, else empty (see :func:`as_list`)."""
    return value if isinstance(value, dict) else {}


def field(obj: Any, key: str, kind: type = dict) -> Any:
    """``obj[key]`` when ``obj`` is a dict and the value is of ``kind`` (dict or list), else an
    empty one of that kind."""
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, kind) else kind()


def verdict(record: dict) -> str | None:
    """The record's ``verdict`` when it is one of :data:`VERDICTS`, else None (records from
    other tools may carry anything there)."""
    value = record.get("verdict")
    return value if isinstance(value, str) and value in SEVERITY else None


def error_entry(stage: str, code: str, message: str) -> dict[str, str]:
    """One item of a record's ``errors`` list."""
    return {"stage": stage, "code": code, "message": message}


def add_error(record: dict, stage: str, code: str, message: str) -> dict:
    """Append an error entry to ``record`` (in place) and return it. An ``errors`` value that
    is not a list (another tool's) is kept as the first item of the list."""
    errors = record.get("errors")
    if not isinstance(errors, list):
        errors = record["errors"] = [] if errors is None else [errors]
    errors.append(error_entry(stage, code, message))
    return record


def error_record(raw: str, stage: str, code: str, message: str) -> dict:
    """The record written for an input line that could not be read: it keeps the raw line."""
    return {"raw": raw, "errors": [error_entry(stage, code, message)]}


def ioc_records(record: Any) -> Iterator[dict]:
    """The IOC records in ``record``: itself if it is one, else those in its ``iocs`` list."""
    if not isinstance(record, dict):
        return
    if "ioc" in record and "type" in record:
        yield record
        return
    iocs = record.get("iocs")
    if isinstance(iocs, list):
        for item in iocs:
            if isinstance(item, dict) and "ioc" in item:
                yield item


def canonical(record: dict) -> tuple[str, str] | None:
    """``(type, canonical ioc)`` of an IOC record, or None when its ``ioc`` is not an IOC of
    its ``type``. Records from other tools may be defanged or not canonical (``EVIL[.]com``):
    every stage that looks an IOC up, stores it or exports it uses this form."""
    ioc, ioc_type = record.get("ioc"), record.get("type")
    if not isinstance(ioc, str) or not isinstance(ioc_type, str):
        return None
    return _canonical(ioc_type, ioc)


@functools.lru_cache(maxsize=65536)
def _canonical(ioc_type: str, ioc: str) -> tuple[str, str] | None:
    if ioc_type == "url":
        # A URL is taken as written when its scheme and host are valid (another tool's may
        # hold what vex-detect would stop at: a space, a trailing ";"), its path untouched;
        # else refanged (hxxp, [.]).
        url = grammar.canonical_url(ioc.strip()) or grammar.canonical_url(grammar.refang(ioc.strip()))
        return None if url is None else ("url", url)
    found = grammar.classify(ioc)
    return found if found is not None and found[0] == ioc_type else None


def from_bare_value(value: str) -> dict | None:
    """An IOC record for a bare value (``8.8.8.8``, ``evil[.]com``), or None if it is none."""
    found = grammar.classify(value)
    if found is None:
        return None
    ioc_type, ioc = found
    return {"ioc": ioc, "type": ioc_type}


def is_incomplete(record: dict, stage: str = "lookup") -> bool:
    """True when an IOC record carries an error from ``stage`` (its enrichment is missing)."""
    errors = record.get("errors")
    return isinstance(errors, list) and any(
        isinstance(e, dict) and e.get("stage") == stage for e in errors
    )


def iter_strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """``(dotted path, string)`` for every string inside a JSON value, keys excluded.

    List items share their list's path (``tags``, not ``tags.0``), so a path
    printed here can be given back to ``--field``.
    """
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from iter_strings(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for item in value:
            yield from iter_strings(item, path)


def get_path(value: Any, path: str) -> Iterator[Any]:
    """The values at a dotted ``path`` (``http.request.url``); a list on the way fans out."""
    if not path:
        yield value
        return
    if isinstance(value, list):
        for item in value:
            yield from get_path(item, path)
        return
    if not isinstance(value, dict):
        return
    head, _, rest = path.partition(".")
    if head in value:
        yield from get_path(value[head], rest)
