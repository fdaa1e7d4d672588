"""STIX 2.1 objects from enriched IOC records (pure, deterministic).

Identifiers: cyber observables (SCOs) get the spec's deterministic UUIDv5 over
their ID-contributing properties (JCS-canonical JSON, STIX namespace; for
files a single hash, MD5 first), so ``example.com`` is always
``domain-name--bedb4899-d24b-5401-bc86-8f6b4cc18ec7``. SDOs and relationships
get ids derived from their identifying content (see :func:`content_id`), and
their times come from the data (the lookup's ``fetched_at``), not the clock,
so the same input gives byte-identical output.

What strict validation asks, and how it is met: an indicator is ``based-on``
an observed-data object that refers to the observable; external references
carry ``source_name`` and ``external_id`` with the web link in their
``description`` (a ``url`` would need a hash of the page).
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from typing import Any, Iterator
from urllib.parse import quote

from vexpipe import records, vtmodel
from vexpipe.attack import AttackTable

STIX_NAMESPACE = uuid.UUID("00abedb4-aa42-466c-9c01-fed23315a9b7")
EPOCH = "1970-01-01T00:00:00.000Z"  # for records that carry no time at all
IDENTITY_CREATED = "2026-01-01T00:00:00.000Z"

TLP_EXTENSION = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"
TLP = {  # FIRST TLP 2.0 marking definitions, as published in oasis-open/cti-stix-common-objects
    "clear": "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
    "green": "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
    "amber": "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
    "amber+strict": "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
    "red": "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
}
INDICATOR_TYPES = {"MALICIOUS": ["malicious-activity"], "SUSPICIOUS": ["anomalous-activity"],
                   "CLEAN": ["benign"], "UNKNOWN": ["unknown"]}
MALWARE_TYPES = {"trojan": "trojan", "ransomware": "ransomware", "downloader": "downloader", "dropper": "dropper",
                 "backdoor": "backdoor", "spyware": "spyware", "worm": "worm", "virus": "virus",
                 "rootkit": "rootkit", "bot": "bot", "keylogger": "keylogger", "adware": "adware",
                 "miner": "resource-exploitation", "coinminer": "resource-exploitation", "rat": "remote-access-trojan",
                 "exploit": "exploit", "wiper": "wiper", "webshell": "webshell", "stealer": "spyware",
                 "scareware": "scareware"}
HASH_KEYS = (("md5", "MD5"), ("sha1", "SHA-1"), ("sha256", "SHA-256"))
HASH_FORMS = {"md5": re.compile("[0-9a-fA-F]{32}"), "sha1": re.compile("[0-9a-fA-F]{40}"),
              "sha256": re.compile("[0-9a-fA-F]{64}")}


def canonical(value: Any) -> str:
    """JSON canonical form (RFC 8785) for the strings, numbers and objects used here."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sco_id(sco_type: str, contributing: dict) -> str:
    return f"{sco_type}--{uuid.uuid5(STIX_NAMESPACE, canonical(contributing))}"


def content_id(obj_type: str, *parts: Any) -> str:
    """A deterministic id for an SDO or relationship, from its identifying content.

    Shaped as UUIDv4 (version and variant bits set), as the spec recommends and
    the validator's strict mode requires, but derived from a SHA-256 of the
    content rather than chance, so the same input gives the same id.
    """
    digest = hashlib.sha256(canonical([obj_type, *parts]).encode()).digest()
    return f"{obj_type}--{uuid.UUID(bytes=digest[:16], version=4)}"


def stix_time(iso: str | None) -> str:
    """An ISO 8601 UTC time in STIX form, precise to the millisecond (``...00.000Z``)."""
    if not iso or not isinstance(iso, str) or len(iso) < 19:
        return EPOCH
    return iso[:19] + ".000Z"


def escape(value: str) -> str:
    """A string literal body for a STIX pattern: backslash and quote escaped."""
    return value.replace("\\", "\\\\").replace("'", "\\'")


def identity() -> dict:
    return {"type": "identity", "spec_version": "2.1", "id": content_id("identity", "vexpipe"),
            "created": IDENTITY_CREATED, "modified": IDENTITY_CREATED, "name": "vexpipe",
            "identity_class": "system", "description": "vexpipe: IOC detection and enrichment pipeline"}


def tlp_marking(level: str) -> dict:
    return {"type": "marking-definition", "spec_version": "2.1", "id": TLP[level],
            "created": "2022-10-01T00:00:00.000Z", "name": f"TLP:{level.upper()}",
            "extensions": {TLP_EXTENSION: {"extension_type": "property-extension", "tlp_2_0": level}}}


def observable(rec: dict) -> dict | None:
    """The cyber observable for one IOC record (a file carries every hash known), with the
    canonical, refanged value; None when ``ioc`` is not an IOC of its ``type``."""
    found = records.canonical(rec)
    if found is None:
        return None
    ioc_type, ioc = found
    simple = {"domain": "domain-name", "ipv4": "ipv4-addr", "ipv6": "ipv6-addr", "url": "url", "email": "email-addr"}
    if ioc_type in simple:
        # A zone id is not part of an address; a URL must be a valid URI.
        value = ioc.split("%", 1)[0] if ioc_type == "ipv6" else uri(ioc) if ioc_type == "url" else ioc
        kind = simple[ioc_type]
        return {"type": kind, "spec_version": "2.1", "id": sco_id(kind, {"value": value}), "value": value}
    if ioc_type in ("md5", "sha1", "sha256"):
        vt = vtmodel.summary_of(rec) or {}
        # The IOC's own hash is canonical; the summary's others are taken only when
        # well formed (records from other tools may carry anything there).
        hashes = {}
        for key, name in HASH_KEYS:
            value = ioc if key == ioc_type else vt.get(key)
            if isinstance(value, str) and HASH_FORMS[key].fullmatch(value):
                hashes[name] = value.lower()
        chosen = next({name: hashes[name]} for _, name in HASH_KEYS if name in hashes)
        return {"type": "file", "spec_version": "2.1", "id": sco_id("file", {"hashes": chosen}), "hashes": hashes}
    return None


def uri(url: str) -> str:
    """A URL as an RFC 3986 URI, as STIX requires of url objects: characters a URI may
    not hold (``[``, ``{``, spaces, non-ASCII...) percent-encoded after the host, and a
    ``%`` that starts no escape encoded too. Valid URLs come back unchanged."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return quote(url, safe=URI_SAFE)
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    before, hash_, fragment = _LONE_PERCENT.sub("%25", rest[end:]).partition("#")
    tail = quote(before, safe=URI_SAFE) + (hash_ + quote(fragment, safe=URI_SAFE) if hash_ else "")
    return f"{scheme}://{rest[:end]}{tail}"


URI_SAFE = "/?@!$&'()*+,;=:~%"  # what may stand after the host, but "#" (only the first one may)
_LONE_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


def pattern(sco: dict) -> str:
    if sco["type"] == "file":
        terms = [f"file:hashes.{name if name == 'MD5' else repr(name)} = '{escape(v)}'"
                 for name, v in sco["hashes"].items()]
        return "[" + " OR ".join(terms) + "]"
    return f"[{sco['type']}:value = '{escape(sco['value'])}']"


def confidence(vt: dict) -> int | None:
    """0-100 from the detection ratio: the share of answering engines that flag it."""
    stats = vt.get("stats") if isinstance(vt.get("stats"), dict) else None
    if not stats:
        return None
    answered = sum(v for k, v in stats.items()
                   if k in ("harmless", "malicious", "suspicious", "undetected") and isinstance(v, int))
    if answered <= 0:
        return None
    flagged = sum(stats.get(k, 0) for k in ("malicious", "suspicious") if isinstance(stats.get(k), int))
    return max(0, min(100, round(100 * flagged / answered)))


def relationship(kind: str, source: str, target: str, when: str, creator: str) -> dict:
    return {"type": "relationship", "spec_version": "2.1", "id": content_id("relationship", source, kind, target),
            "created_by_ref": creator, "created": when, "modified": when, "relationship_type": kind,
            "source_ref": source, "target_ref": target}


def objects_for(rec: dict, table: AttackTable, creator: str, now: str | None = None) -> Iterator[dict]:
    """The STIX objects for one IOC record: observable, observed-data, indicator based on it,
    malware for a popular threat label, attack-patterns for its ``mitre`` techniques."""
    sco = observable(rec)
    if sco is None:
        return
    vt = vtmodel.summary_of(rec) or {}
    when = now or stix_time(vt.get("fetched_at") or vt.get("last_analysis_date"))
    verdict = records.verdict(rec) or "UNKNOWN"
    pat = pattern(sco)
    indicator: dict[str, Any] = {
        "type": "indicator", "spec_version": "2.1", "id": content_id("indicator", pat),
        "created_by_ref": creator, "created": when, "modified": when,
        "name": f"{rec['type']} {rec['ioc']}",
        "description": f"{verdict}: {vt.get('verdict_reason') or 'not enriched'}",
        "indicator_types": INDICATOR_TYPES[verdict], "pattern": pat, "pattern_type": "stix",
        "pattern_version": "2.1", "valid_from": when,
    }
    conf = confidence(vt)
    if conf is not None:
        indicator["confidence"] = conf
    if isinstance(vt.get("link"), str) and isinstance(vt.get("id"), str):
        indicator["external_references"] = [{"source_name": "VirusTotal", "external_id": vt["id"],
                                             "description": f"VirusTotal report: {vt['link']}"}]
    observed = {"type": "observed-data", "spec_version": "2.1", "id": content_id("observed-data", sco["id"]),
                "created_by_ref": creator, "created": when, "modified": when, "first_observed": when,
                "last_observed": when, "number_observed": 1, "object_refs": [sco["id"]]}
    yield sco
    yield observed
    yield indicator
    yield relationship("based-on", indicator["id"], observed["id"], when, creator)
    ptc = vt.get("popular_threat_classification")
    label = ptc.get("label") if isinstance(ptc, dict) else None
    if isinstance(label, str) and label:
        types = sorted({MALWARE_TYPES[c] for c in records.as_list(ptc.get("categories")) if isinstance(c, str) and c in MALWARE_TYPES}) or ["unknown"]
        malware = {"type": "malware", "spec_version": "2.1", "id": content_id("malware", label),
                   "created_by_ref": creator, "created": when, "modified": when, "name": label,
                   "is_family": True, "malware_types": types}
        names = [n for n in records.as_list(ptc.get("names")) if isinstance(n, str) and n != label]
        if names:
            malware["aliases"] = names
        yield malware
        yield relationship("indicates", indicator["id"], malware["id"], when, creator)
    for item in records.field(rec, "mitre", list):
        technique = table.lookup(item.get("id", "")) if isinstance(item, dict) else None
        if technique is None:
            continue
        ap = {"type": "attack-pattern", "spec_version": "2.1", "id": content_id("attack-pattern", technique.id),
              "created_by_ref": creator, "created": IDENTITY_CREATED, "modified": IDENTITY_CREATED,
              "name": technique.name,
              "external_references": [{"source_name": "mitre-attack", "external_id": technique.id,
                                       "description": technique.url}],
              "kill_chain_phases": [{"kill_chain_name": "mitre-attack", "phase_name": t} for t in technique.tactics]}
        yield ap
        yield relationship("indicates", indicator["id"], ap["id"], when, creator)
