"""Timeline events from enriched records (pure).

One event per dated fact in a record: ``{time, ioc, type, event, source,
detail}``, ``time`` ISO 8601 UTC. Sources: ``virustotal`` (the ``vt`` summary:
submissions, analyses, file creation and first seen in the wild, PE compile
time, signature date, whois creation/update/expiry, DNS resolutions,
historical whois records, certificate validity, sandbox analyses) and ``kb``
(knowledge-base notes, when vex-kb annotate added them).
"""

from __future__ import annotations

import functools
import re
from datetime import datetime, timezone
from typing import Any, Iterator

from vexpipe import records, vtmodel

# vt summary field -> event name, for the plain dated fields.
VT_DATES = {
    "first_submission_date": "first_submission", "last_submission_date": "last_submission",
    "last_modification_date": "last_modification", "first_seen_itw_date": "first_seen_in_the_wild",
    "pe_compile_time": "pe_compiled", "expiration_date": "whois_expires", "last_update_date": "whois_updated",
    "last_dns_records_date": "dns_records_seen", "last_https_certificate_date": "certificate_seen",
    "whois_date": "whois_fetched",
}


def normalize_time(value: Any) -> str | None:
    """An ISO 8601 UTC string (``...Z``) for the time formats VirusTotal and whois use, or None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        if not 0 < value < 32503680000:
            return None
        return datetime.fromtimestamp(value, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return _normalize_text(str(value).strip())


_ISO_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


@functools.lru_cache(maxsize=65536)
def _normalize_text(text: str) -> str | None:
    # Cached (dates repeat across a log's records, strptime is slow), with a fast path
    # for the form vex-lookup writes: it only needs checking.
    if _ISO_Z.fullmatch(text):
        try:
            datetime.fromisoformat(text[:-1])
            return text
        except ValueError:
            return None
    for fmt in ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S%z",
                "%Y-%m-%d", "%I:%M %p %m/%d/%Y", "%H:%M %m/%d/%Y"):
        try:
            t = datetime.strptime(text, fmt)
        except ValueError:
            continue
        if t.tzinfo is None:
            t = t.replace(tzinfo=timezone.utc)
        return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return None


def _event(time: Any, rec: dict, event: str, source: str, detail: str) -> dict | None:
    iso = normalize_time(time)
    if iso is None:
        return None
    return {"time": iso, "ioc": rec.get("ioc"), "type": rec.get("type"), "event": event, "source": source,
            "detail": detail}


def events(record: Any) -> Iterator[dict]:
    """Every timeline event in a record (an IOC record or an event carrying iocs)."""
    for rec in records.ioc_records(record):
        yield from _ioc_events(rec)


def _ioc_events(rec: dict) -> Iterator[dict]:
    vt = vtmodel.summary_of(rec)
    candidates: list[dict | None] = []
    if vt is not None and "skipped" not in vt:
        stats = vt.get("stats") if isinstance(vt.get("stats"), dict) else {}
        answered = sum(v for k, v in stats.items() if k in ("harmless", "malicious", "suspicious", "undetected")
                       and isinstance(v, int))
        verdict = records.verdict(rec) or "no verdict"
        candidates.append(_event(vt.get("last_analysis_date"), rec, "last_analysis", "virustotal",
                                 f"{stats.get('malicious', 0)}/{answered} engines malicious, verdict {verdict}"))
        created = "whois_created" if rec.get("type") == "domain" else "file_created"
        candidates.append(_event(vt.get("creation_date"), rec, created, "virustotal",
                                 str(vt.get("registrar") or vt.get("meaningful_name") or "")))
        for field, name in VT_DATES.items():
            if field in vt:
                detail = {"expiration_date": str(vt.get("registrar") or ""),
                          "pe_compile_time": str(vt.get("meaningful_name") or "")}.get(field, "")
                if field.endswith("submission_date") and vt.get("times_submitted"):
                    detail = f"submitted {vt['times_submitted']} times"
                candidates.append(_event(vt[field], rec, name, "virustotal", detail))
        signature = vt.get("signature")
        if isinstance(signature, dict) and signature.get("signing_date"):
            candidates.append(_event(signature["signing_date"], rec, "signed", "virustotal",
                                     str(signature.get("signers") or signature.get("verified") or "")))
        cert = vt.get("last_https_certificate")
        if isinstance(cert, dict):
            issuer = f"issued by {cert.get('issuer')}" if cert.get("issuer") else ""
            candidates.append(_event(cert.get("not_before"), rec, "certificate_valid_from", "virustotal", issuer))
            candidates.append(_event(cert.get("not_after"), rec, "certificate_valid_until", "virustotal", issuer))
        rels = records.field(vt, "relationships")
        for item in records.field(records.field(rels, "resolutions"), "items", list):
            if isinstance(item, dict):
                candidates.append(_event(item.get("date"), rec, "dns_resolution", "virustotal",
                                         f"{item.get('host_name')} -> {item.get('ip_address')}"))
        for item in records.field(records.field(rels, "behaviours"), "items", list):
            if isinstance(item, dict):
                verdicts = ", ".join(v for v in records.field(item, "verdicts", list) if isinstance(v, str))
                candidates.append(_event(item.get("analysis_date"), rec, "sandbox_analysis", "virustotal",
                                         f"{item.get('sandbox_name')}: {verdicts or 'no verdict'}"))
        for item in records.field(records.field(rels, "historical_whois"), "items", list):
            if isinstance(item, dict):
                candidates.append(_event(item.get("first_seen_date"), rec, "whois_record_seen", "virustotal",
                                         str(item.get("registrar") or "")))
    for note in records.field(records.field(rec, "kb"), "notes", list):
        if isinstance(note, dict):
            candidates.append(_event(note.get("created"), rec, "kb_note", "kb", str(note.get("text") or "")))
    for event in candidates:
        if event is not None:
            yield event
