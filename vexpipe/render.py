"""Making records safe and readable for people (pure): what vex-fmt prints with.

Attacker-controlled strings (URLs, file names, whois text, page titles) reach
a terminal here, so :func:`safe` shows control characters and escape sequences
as visible ``\\xNN`` text instead of passing them through; :func:`csv_cell`
also neutralises spreadsheet formulas (a cell starting with ``= + - @``, tab
or CR gets a leading apostrophe). :func:`defang_value` defangs every IOC in
every string of a record, hashes excepted.
"""

from __future__ import annotations

import re
from typing import Any

from vexpipe import grammar

# C0 and C1 controls (ESC starts every terminal escape sequence), line and
# paragraph separators, and the bidirectional overrides that reorder text.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def safe(text: Any) -> str:
    """``text`` with every control character shown as ``\\xNN`` (``\\uNNNN``): without its ESC
    an escape sequence is plain, harmless text."""
    s = "" if text is None else str(text)
    return _UNSAFE.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 256 else f"\\u{ord(m.group()):04x}", s)


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(text: Any) -> str:
    s = safe(text)
    raw = "" if text is None else str(text)
    return "'" + s if raw.startswith(FORMULA_START) else s


def defang_text(text: str) -> str:
    """Every IOC in ``text`` written defanged (hashes and IPv6 stay as they are)."""
    out, last = [], 0
    for f in grammar.find_iocs(text):
        if f.type in grammar.HASH_TYPES.values() or f.type == "ipv6":
            continue
        out.append(text[last:f.start])
        out.append(grammar.defang(f.ioc, f.type))
        last = f.end
    out.append(text[last:])
    return "".join(out)


def defang_value(value: Any) -> Any:
    """A JSON value with every string defanged (keys kept): also inside relationships."""
    if isinstance(value, str):
        return defang_text(value)
    if isinstance(value, dict):
        return {k: defang_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [defang_value(v) for v in value]
    return value


def fit(text: str, width: int) -> str:
    """Cut to ``width`` characters with an ellipsis; pad to it."""
    if width <= 0:
        return ""
    if len(text) > width:
        return text[: width - 1] + "…"
    return text.ljust(width)


def detections(vt: dict) -> str:
    stats = vt.get("stats") if isinstance(vt.get("stats"), dict) else None
    if not stats:
        return ""
    answered = sum(v for k, v in stats.items()
                   if k in ("harmless", "malicious", "suspicious", "undetected") and isinstance(v, int))
    return f"{stats.get('malicious', 0)}/{answered}"


def details(rec: dict) -> str:
    """One line of the most telling facts of an IOC record."""
    vt = rec.get("vt") if isinstance(rec.get("vt"), dict) else {}
    parts = []
    if vt.get("skipped"):
        parts.append(f"not looked up: {vt['skipped']}")
    for err in rec.get("errors") or []:
        if isinstance(err, dict):
            parts.append(f"{err.get('stage')} {err.get('code')}: {err.get('message')}")
    ptc = vt.get("popular_threat_classification")
    if isinstance(ptc, dict) and ptc.get("label"):
        parts.append(str(ptc["label"]))
    for key in ("as_owner", "country", "registrar", "meaningful_name", "title"):
        if vt.get(key):
            parts.append(str(vt[key]))
    mitre = [t.get("id") for t in rec.get("mitre") or [] if isinstance(t, dict)]
    if mitre:
        parts.append("ATT&CK " + ",".join(mitre[:4]) + ("…" if len(mitre) > 4 else ""))
    kb = rec.get("kb") if isinstance(rec.get("kb"), dict) else {}
    if kb.get("tags"):
        parts.append("#" + " #".join(kb["tags"]))
    return "; ".join(parts)


def verdict_of(rec: dict) -> str:
    if rec.get("verdict"):
        return str(rec["verdict"])
    if rec.get("errors"):
        return "ERROR"
    vt = rec.get("vt")
    if isinstance(vt, dict) and vt.get("skipped"):
        return "SKIPPED"
    return "-"
