"""What vexpipe knows about VirusTotal API v3 objects: paths, identifiers, and the
normalised ``vt`` summary written into records.

Pure functions, no I/O (the HTTP side is :mod:`vexpipe.vtprovider`). The
summary is documented field by field in vex-lookup(1); timestamps are turned
from epoch seconds into ISO 8601 UTC strings.
"""

from __future__ import annotations

import base64
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from vexpipe import records

GUI = "https://www.virustotal.com/gui"
# Bump when the summary's shape changes: cached raw answers are then re-summarised.
SUMMARY_VERSION = 2  # 2: sandbox reports (name, analysis date, verdicts) under relationships.behaviours

COLLECTION = {
    "md5": "files", "sha1": "files", "sha256": "files",
    "ipv4": "ip_addresses", "ipv6": "ip_addresses",
    "domain": "domains", "url": "urls",
}
GUI_KIND = {"files": "file", "ip_addresses": "ip-address", "domains": "domain", "urls": "url"}

# --investigate: relationships whose descriptors (type and id) are enough ride
# on the object request (?relationships=...); those whose attributes matter
# (dates of resolutions, whois history) need their own request, since
# ?relationships= returns descriptors only.
EMBEDDED = {
    "files": ("contacted_domains", "contacted_ips", "contacted_urls", "dropped_files",
              "execution_parents", "behaviours"),
    "domains": ("communicating_files", "subdomains"),
    "ip_addresses": ("communicating_files",),
    "urls": ("last_serving_ip_address", "network_location"),
}
SEPARATE = {
    "domains": ("resolutions", "historical_whois"),
    "ip_addresses": ("resolutions",),
}
# Asked for only with --tier premium (VT Enterprise); a 403 makes them "not available".
PREMIUM = {
    "files": ("itw_urls", "itw_domains", "similar_files"),
    "domains": ("urls", "downloaded_files"),
    "ip_addresses": ("urls", "downloaded_files"),
    "urls": ("contacted_domains", "contacted_ips", "downloaded_files", "redirects_to"),
}
LIST_LIMIT = 40  # items kept per list in a summary (first page of a relationship)
SANDBOX_LIMIT = 10  # sandbox reports fetched per file (each is a full report)
# What is kept of each sandbox report: when and where it ran and what it
# concluded. The full report is large and its contents come merged in the
# behaviour_summary, so the rest is dropped before it reaches the cache.
SANDBOX_FIELDS = ("sandbox_name", "analysis_date", "verdicts", "verdict_confidence", "behash",
                  "has_pcap", "has_html_report", "has_evtx", "has_memdump")


def object_id(ioc_type: str, ioc: str) -> str:
    """The identifier VirusTotal takes in a path: URLs as unpadded URL-safe base64."""
    if ioc_type == "url":
        return base64.urlsafe_b64encode(ioc.encode()).decode().rstrip("=")
    return ioc


def object_path(ioc_type: str, ioc: str) -> str:
    return f"/{COLLECTION[ioc_type]}/{quote(object_id(ioc_type, ioc), safe=':')}"


def gui_link(collection: str, object_id_: str) -> str:
    return f"{GUI}/{GUI_KIND[collection]}/{object_id_}"


def iso(ts: Any) -> str | None:
    """Epoch seconds as ISO 8601 UTC; None for anything that is not a sane timestamp."""
    if isinstance(ts, bool) or not isinstance(ts, (int, float)) or not 0 < ts < 32503680000:
        return None
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _pick(attrs: dict, keys: tuple[str, ...], dates: tuple[str, ...] = ()) -> dict:
    out = {k: attrs[k] for k in keys if attrs.get(k) not in (None, "", [], {})}
    for k in dates:
        value = iso(attrs.get(k))
        if value:
            out[k] = value
    return out


def _strings(value: Any, limit: int = LIST_LIMIT) -> list[str]:
    if not isinstance(value, list):
        return []
    return [v for v in value if isinstance(v, str)][:limit]


def _certificate(cert: Any) -> dict | None:
    if not isinstance(cert, dict):
        return None
    attrs = cert.get("attributes", cert)
    validity = attrs.get("validity") if isinstance(attrs, dict) else None
    if not isinstance(validity, dict):
        return None
    out = {"not_before": validity.get("not_before"), "not_after": validity.get("not_after")}
    issuer = attrs.get("issuer")
    if isinstance(issuer, dict):
        out["issuer"] = issuer.get("CN") or issuer.get("O")
    subject = attrs.get("subject")
    if isinstance(subject, dict):
        out["subject"] = subject.get("CN")
    return {k: v for k, v in out.items() if v}


COMMON = ("reputation", "tags", "total_votes", "times_submitted", "categories")
COMMON_DATES = ("first_submission_date", "last_submission_date", "last_analysis_date",
                "last_modification_date")


def summarize_object(data: dict) -> dict:
    """The triage summary of one VirusTotal object (``data`` of a GET /{collection}/{id})."""
    attrs = data.get("attributes") if isinstance(data.get("attributes"), dict) else {}
    kind = data.get("type", "")
    collection = {"file": "files", "ip_address": "ip_addresses", "domain": "domains", "url": "urls"}.get(kind)
    out: dict[str, Any] = {"found": True, "object_type": kind, "id": data.get("id")}
    if collection and isinstance(data.get("id"), str):
        out["link"] = gui_link(collection, data["id"])
    stats = attrs.get("last_analysis_stats")
    if isinstance(stats, dict):
        out["stats"] = stats
    out.update(_pick(attrs, COMMON, COMMON_DATES))
    if kind == "ip_address":
        out.update(_pick(attrs, ("asn", "as_owner", "country", "continent", "network",
                                 "regional_internet_registry", "jarm"), ("whois_date",)))
    elif kind == "domain":
        out.update(_pick(attrs, ("registrar", "tld", "jarm"),
                         ("creation_date", "expiration_date", "last_update_date", "whois_date",
                          "last_dns_records_date", "last_https_certificate_date")))
        records = attrs.get("last_dns_records")
        if isinstance(records, list):
            out["last_dns_records"] = [
                {k: r.get(k) for k in ("type", "value", "ttl") if k in r}
                for r in records[:LIST_LIMIT] if isinstance(r, dict)]
        ranks = attrs.get("popularity_ranks")
        if isinstance(ranks, dict):
            out["popularity_ranks"] = {k: v.get("rank") for k, v in ranks.items() if isinstance(v, dict)}
    elif kind == "file":
        out.update(_summarize_file(attrs))
    elif kind == "url":
        out.update(_pick(attrs, ("url", "last_final_url", "title", "last_http_response_code", "tld",
                                 "threat_names", "has_content", "targeted_brand")))
        chain = _strings(attrs.get("redirection_chain"))
        if chain:
            out["redirection_chain"] = chain
    if kind in ("ip_address", "domain"):
        cert = _certificate(attrs.get("last_https_certificate"))
        if cert:
            out["last_https_certificate"] = cert
    return out


def _summarize_file(attrs: dict) -> dict:
    out = _pick(attrs, ("md5", "sha1", "sha256", "size", "type_description", "type_tag",
                        "meaningful_name", "vhash", "ssdeep", "tlsh", "sigma_analysis_stats",
                        "crowdsourced_ids_stats"),
                ("creation_date", "first_seen_itw_date"))
    names = _strings(attrs.get("names"))
    if names:
        out["names"] = names
    pe = attrs.get("pe_info")
    if isinstance(pe, dict):
        compiled = iso(pe.get("timestamp"))
        if compiled:
            out["pe_compile_time"] = compiled
        if pe.get("imphash"):
            out["imphash"] = pe["imphash"]
    sig = attrs.get("signature_info")
    if isinstance(sig, dict) and sig:
        out["signature"] = {k.replace(" ", "_"): v for k, v in sig.items()
                            if k in ("verified", "signers", "signing date", "product", "description",
                                     "copyright", "original name") and isinstance(v, str)}
    ptc = attrs.get("popular_threat_classification")
    if isinstance(ptc, dict):
        out["popular_threat_classification"] = {
            "label": ptc.get("suggested_threat_label"),
            "categories": [c.get("value") for c in records.as_list(ptc.get("popular_threat_category")) if isinstance(c, dict)],
            "names": [c.get("value") for c in records.as_list(ptc.get("popular_threat_name")) if isinstance(c, dict)],
        }
    verdicts = attrs.get("sandbox_verdicts")
    if isinstance(verdicts, dict):
        out["sandbox_verdicts"] = [
            {"sandbox": name, **{k: v[k] for k in ("category", "malware_classification", "malware_names",
                                                   "confidence") if k in v}}
            for name, v in verdicts.items() if isinstance(v, dict)]
    sigma = attrs.get("sigma_analysis_results")
    if isinstance(sigma, list):
        out["sigma_rules"] = [r["rule_title"] for r in sigma[:LIST_LIMIT]
                              if isinstance(r, dict) and isinstance(r.get("rule_title"), str)]
    yara = attrs.get("crowdsourced_yara_results")
    if isinstance(yara, list):
        out["crowdsourced_yara"] = [
            {k: y[k] for k in ("rule_name", "ruleset_name", "author", "source", "description") if k in y}
            for y in yara[:LIST_LIMIT] if isinstance(y, dict)]
    return out


def summarize_relationship(name: str, body: Any) -> dict:
    """One relationship: ``{"count", "items"}`` from a descriptor collection, a full
    collection, or a one-to-one descriptor."""
    data = body.get("data") if isinstance(body, dict) else None
    meta = body.get("meta") if isinstance(body, dict) else None
    items = data if isinstance(data, list) else ([data] if isinstance(data, dict) else [])
    out: dict[str, Any] = {"items": [_relationship_item(name, i) for i in items[:LIST_LIMIT] if isinstance(i, dict)]}
    if isinstance(meta, dict) and isinstance(meta.get("count"), int):
        out["count"] = meta["count"]
    else:
        out["count"] = len(items)
    return out


def trim_behaviours(body: Any) -> Any:
    """GET /files/{id}/behaviours, each sandbox report cut down to SANDBOX_FIELDS."""
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        return body
    trimmed = []
    for item in data:
        if isinstance(item, dict):
            attrs = item.get("attributes") if isinstance(item.get("attributes"), dict) else {}
            trimmed.append({"type": item.get("type"), "id": item.get("id"),
                            "attributes": {k: attrs[k] for k in SANDBOX_FIELDS if k in attrs}})
    return {**body, "data": trimmed}


def _relationship_item(name: str, item: dict) -> dict:
    attrs = item.get("attributes") if isinstance(item.get("attributes"), dict) else {}
    out: dict[str, Any] = {"type": item.get("type"), "id": item.get("id")}
    if name == "resolutions":
        out.update(_pick(attrs, ("ip_address", "host_name", "resolver"), ("date",)))
    elif name == "historical_whois":
        whois = attrs.get("whois_map") if isinstance(attrs.get("whois_map"), dict) else {}
        out.update(_pick(attrs, (), ("first_seen_date", "last_updated")))
        for field in ("Registrar", "Creation Date", "Updated Date", "Registry Expiry Date", "Registrant Organization"):
            if isinstance(whois.get(field), str):
                out[field.lower().replace(" ", "_")] = whois[field]
    elif name == "behaviours":
        out.update(_pick(attrs, ("sandbox_name", "verdicts", "behash", "has_pcap"), ("analysis_date",)))
        if "sandbox_name" not in out and "_" in str(item.get("id")):
            out["sandbox_name"] = str(item["id"]).split("_", 1)[1]  # id is "{sha256}_{Sandbox Name}"
    else:
        context = item.get("context_attributes")
        if isinstance(context, dict) and isinstance(context.get("url"), str):
            out["url"] = context["url"]
        out.update(_pick(attrs, ("meaningful_name", "url", "last_analysis_stats")))
    return out


BEHAVIOUR_LISTS = ("processes_created", "command_executions", "files_written", "files_deleted",
                   "files_opened", "modules_loaded", "mutexes_created", "registry_keys_opened",
                   "processes_injected", "calls_highlighted", "tags", "verdicts")


def summarize_behaviour(body: Any) -> dict:
    """The merged sandbox report (GET /files/{id}/behaviour_summary), lists capped."""
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        return {}
    out: dict[str, Any] = {}
    for key in BEHAVIOUR_LISTS:
        values = _strings(data.get(key))
        if values:
            out[key] = values
    for key, fields in (("files_dropped", ("path", "sha256", "type")), ("registry_keys_set", ("key", "value")),
                        ("dns_lookups", ("hostname", "resolved_ips")),
                        ("ip_traffic", ("destination_ip", "destination_port", "transport_layer_protocol")),
                        ("http_conversations", ("url", "request_method", "response_status_code"))):
        items = data.get(key)
        if isinstance(items, list):
            out[key] = [{f: i[f] for f in fields if f in i} for i in items[:LIST_LIMIT] if isinstance(i, dict)]
    techniques = data.get("mitre_attack_techniques")
    if isinstance(techniques, list):
        out["mitre_attack_techniques"] = [
            {"id": t.get("id"), "severity": t.get("severity"), "description": t.get("signature_description")}
            for t in techniques if isinstance(t, dict) and t.get("id")]
    return out


def summarize_mitre_trees(body: Any) -> dict:
    """GET /files/{id}/behaviour_mitre_trees: per sandbox, tactics and techniques with signatures."""
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        return {}
    out = {}
    for sandbox, tree in data.items():
        if not isinstance(tree, dict):
            continue
        tactics = []
        for tactic in records.as_list(tree.get("tactics")):
            if not isinstance(tactic, dict):
                continue
            tactics.append({
                "id": tactic.get("id"), "name": tactic.get("name"),
                "techniques": [
                    {"id": t.get("id"), "name": t.get("name"),
                     "signatures": [{"severity": s.get("severity"), "description": s.get("description")}
                                    for s in records.as_list(t.get("signatures")) if isinstance(s, dict)]}
                    for t in records.as_list(tactic.get("techniques")) if isinstance(t, dict)],
            })
        out[sandbox] = tactics
    return out


def summarize(raw: dict) -> dict:
    """The whole ``vt`` summary from what the provider fetched (see vtprovider.fetch)."""
    if not raw.get("found", True):
        return {"found": False}
    out = summarize_object(records.as_dict(raw.get("object")))
    rels = {}
    for name, body in records.as_dict(raw.get("relationships")).items():
        rels[name] = summarize_relationship(name, body)
    for name in records.as_list(raw.get("unavailable")):
        rels[name] = {"available": False, "reason": "not available with this API key (premium)"}
    if rels:
        out["relationships"] = rels
    if raw.get("behaviour_summary") is not None:
        out["behaviour"] = summarize_behaviour(raw["behaviour_summary"])
    if raw.get("behaviour_mitre_trees") is not None:
        out["behaviour_mitre_trees"] = summarize_mitre_trees(raw["behaviour_mitre_trees"])
    if raw.get("submitted"):
        out["submitted"] = raw["submitted"]
    return out


def summary_of(record: dict) -> dict | None:
    """The ``vt`` summary of a record: its own, or made from the raw answer of a
    ``vex-cache export`` entry (which carries ``provider`` and ``raw`` instead)."""
    vt = record.get("vt")
    if isinstance(vt, dict):
        return vt
    raw = record.get("raw")
    if record.get("provider") == "virustotal" and isinstance(raw, dict):
        return summarize(raw)
    return None
