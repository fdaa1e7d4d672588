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

from vexpipe import grammar, records

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
    vt = records.field(rec, "vt")
    parts = []
    if vt.get("skipped"):
        parts.append(f"not looked up: {vt['skipped']}")
    for err in records.field(rec, "errors", list):
        if isinstance(err, dict):
            parts.append(f"{err.get('stage')} {err.get('code')}: {err.get('message')}")
    ptc = vt.get("popular_threat_classification")
    if isinstance(ptc, dict) and ptc.get("label"):
        parts.append(str(ptc["label"]))
    for key in ("as_owner", "country", "registrar", "meaningful_name", "title"):
        if vt.get(key):
            parts.append(str(vt[key]))
    mitre = [str(t.get("id")) for t in records.field(rec, "mitre", list) if isinstance(t, dict)]
    if mitre:
        parts.append("ATT&CK " + ",".join(mitre[:4]) + ("…" if len(mitre) > 4 else ""))
    tags = [str(t) for t in records.field(records.field(rec, "kb"), "tags", list)]
    if tags:
        parts.append("#" + " #".join(tags))
    return "; ".join(parts)


def _join(values: Any, limit: int = 4) -> str:
    items = [str(v) for v in values if v not in (None, "")] if isinstance(values, list) else []
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def _day(value: Any) -> str:
    return str(value)[:10] if value else ""


def _item_name(item: Any, ioc: Any) -> str:
    """How a relationship item reads: the other side of a resolution, a whois record's
    registrar, the URL, the sandbox, or the id."""
    if not isinstance(item, dict):
        return str(item)
    if item.get("type") == "resolution":
        other = item.get("host_name") if item.get("ip_address") == ioc else item.get("ip_address")
        return f"{other} ({_day(item.get('date'))})"
    if item.get("type") == "whois":
        return f"{item.get('registrar')} ({_day(item.get('first_seen_date'))})"
    return str(item.get("url") or item.get("sandbox_name") or item.get("id") or "")


def facts(rec: dict) -> list[tuple[str, str]]:
    """The key facts of an enriched IOC record, as (label, text) lines: what vex-fmt's
    console view shows under each IOC (like vex-ioc's investigate view)."""
    vt = records.field(rec, "vt")
    out: list[tuple[str, Any]] = [
        ("detections", detections(vt)), ("reason", vt.get("verdict_reason")), ("link", vt.get("link")),
        ("reputation", vt.get("reputation")), ("tags", _join(vt.get("tags"), 8))]
    if vt.get("skipped"):
        out.append(("skipped", vt["skipped"]))
    for err in records.field(rec, "errors", list):
        if isinstance(err, dict):
            out.append(("error", f"{err.get('stage')} {err.get('code')}: {err.get('message')}"))
    # By type: the network, the registration, the page, the file.
    if vt.get("as_owner") or vt.get("asn"):
        out.append(("network", f"{vt.get('network') or ''} AS{vt.get('asn') or '?'} {vt.get('as_owner') or ''}"
                               f" {vt.get('country') or ''}".strip()))
    if vt.get("object_type") == "domain":
        out.append(("registered", f"{vt.get('registrar') or '?'}, created {_day(vt.get('creation_date')) or '?'}, "
                                  f"expires {_day(vt.get('expiration_date')) or '?'}"))
    records_ = vt.get("last_dns_records")
    if isinstance(records_, list):
        out.append(("dns", _join([f"{r.get('type')} {r.get('value')}" for r in records_ if isinstance(r, dict)], 6)))
    if vt.get("last_final_url") and vt.get("last_final_url") != vt.get("url"):
        out.append(("final url", vt["last_final_url"]))
    if vt.get("title") or vt.get("last_http_response_code"):
        out.append(("page", f"HTTP {vt.get('last_http_response_code') or '?'} {vt.get('title') or ''}".strip()))
    if isinstance(vt.get("categories"), dict):
        out.append(("categories", _join(sorted({str(v) for v in vt["categories"].values()}), 6)))
    out.append(("threat", _join(vt.get("threat_names"))))
    ptc = vt.get("popular_threat_classification")
    if isinstance(ptc, dict):
        out.append(("threat", ptc.get("label")))
    if vt.get("type_description") or vt.get("size"):
        out.append(("file", f"{vt.get('type_description') or '?'}, {vt.get('size') or '?'} bytes"))
    out.append(("names", _join(vt.get("names"))))
    for sv in records.field(vt, "sandbox_verdicts", list):
        if isinstance(sv, dict):
            names = _join(sv.get("malware_names"))
            out.append(("sandbox", f"{sv.get('sandbox')}: {sv.get('category')}" + (f" ({names})" if names else "")))
    out.append(("yara", _join([y.get("rule_name") for y in records.field(vt, "crowdsourced_yara", list) if isinstance(y, dict)])))
    out.append(("first seen", _day(vt.get("first_submission_date"))))
    out.append(("analysed", _day(vt.get("last_analysis_date"))))
    for name, rel in records.field(vt, "relationships").items():
        if not isinstance(rel, dict):
            continue
        if rel.get("available") is False:
            out.append((name.replace("_", " "), f"not available ({rel.get('reason') or 'premium'})"))
        elif rel.get("count"):
            items = [_item_name(i, rec.get("ioc")) for i in records.field(rel, "items", list)]
            out.append((name.replace("_", " "), f"{rel['count']}: {_join(items, 3)}"))
    beh = records.field(vt, "behaviour")
    for key, label in (("processes_created", "processes"), ("command_executions", "commands"),
                       ("registry_keys_set", "registry"), ("dns_lookups", "dns lookups"), ("ip_traffic", "traffic")):
        values = records.field(beh, key, list)
        out.append((label, _join([v.get("key") or v.get("hostname") or
                                  f"{v.get('destination_ip')}:{v.get('destination_port')}"
                                  if isinstance(v, dict) else v for v in values], 3)))
    for t in records.field(rec, "mitre", list)[:8]:
        if isinstance(t, dict):
            out.append(("att&ck", f"{t.get('id')} {t.get('name')} ({t.get('source')}: {t.get('evidence')})"))
    kb = records.field(rec, "kb")
    out.append(("kb tags", _join(kb.get("tags"), 8)))
    out.append(("watchlists", _join(kb.get("watchlists"), 8)))
    for note in records.field(kb, "notes", list):
        if isinstance(note, dict):
            out.append(("note", f"{note.get('created')}: {note.get('text')}"))
    return [(label, str(value)) for label, value in out if value not in (None, "", [])]


def verdict_of(rec: dict) -> str:
    if records.verdict(rec):
        return rec["verdict"]
    if rec.get("errors"):
        return "ERROR"
    vt = rec.get("vt")
    if isinstance(vt, dict) and vt.get("skipped"):
        return "SKIPPED"
    return "-"
