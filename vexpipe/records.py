"""IOC records and events: the shapes every stage reads and writes (DESIGN.md, Records).

Pure helpers, no I/O. An *IOC record* is a dict with ``ioc`` and ``type``; an
*event* is any other dict carrying an ``iocs`` list of IOC records; an *error
record* is what a stage writes for an input line it could not read, so that
nothing vanishes between stages.
"""

from __future__ import annotations

from typing import Any, Iterator

from vexpipe import grammar

# Worst last. The index is the severity.
VERDICTS = ("CLEAN", "UNKNOWN", "SUSPICIOUS", "MALICIOUS")
SEVERITY = {v: i for i, v in enumerate(VERDICTS)}


def error_entry(stage: str, code: str, message: str) -> dict[str, str]:
    """One item of a record's ``errors`` list."""
    return {"stage": stage, "code": code, "message": message}


def add_error(record: dict, stage: str, code: str, message: str) -> dict:
    """Append an error entry to ``record`` (in place) and return it."""
    record.setdefault("errors", []).append(error_entry(stage, code, message))
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
