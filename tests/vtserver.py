"""A VirusTotal-API-v3-compatible HTTP server for tests, the benchmark and the demo data.

Runs on 127.0.0.1 in a thread (``VTServer().start()``) or as a process
(``python tests/vtserver.py --port 0 --latency 0.05``, prints its base URL).
Bodies follow the shapes in ../shared/reference/virustotal-v3.md (objects,
descriptor collections, error bodies); values are made up but deterministic.

What an IOC is, by its name first (domains, URLs, e-mail hosts): containing
``notfound`` or ``unknown`` -> 404; ``malicious`` or ``evil`` -> 12 engines
malicious; ``suspicious`` -> 1 malicious, 2 suspicious; ``fewengines`` -> 5
engines answered; ``clean`` -> clean. Anything else is picked by a hash of
the value (2/10 malicious, 1/10 suspicious, 1/10 not found, 6/10 clean), and
``server.profiles[value]`` overrides all of it.

Quotas per key (``per_minute`` in any 60 s window, ``per_day``) answer 429
QuotaExceededError. ``server.faults`` is a list of :class:`Fault` consumed in
order by the requests they match; ``p_5xx`` / ``p_reset`` inject faults at
random (seeded). ``server.log`` records every request.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import random
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

ENGINES = [f"Engine{i:02d}" for i in range(70)]
BASE_TIME = 1_764_547_200  # 2025-12-01T00:00:00Z: all made-up dates are around it
# Relationships a public (free) key gets 403 ForbiddenError for, per collection.
PREMIUM_RELATIONSHIPS = {
    "files": {"itw_urls", "itw_domains", "itw_ips", "similar_files", "analyses", "submissions"},
    "domains": {"urls", "downloaded_files", "caa_records", "cname_records", "mx_records", "ns_records"},
    "ip_addresses": {"urls", "downloaded_files"},
    "urls": {"contacted_domains", "contacted_ips", "downloaded_files", "redirects_to", "analyses", "submissions"},
}


@dataclass
class Fault:
    """Make the next ``count`` requests whose path contains ``match`` fail in one way.

    kind: ``status`` (answer ``status`` with a VT error body), ``429`` (with
    ``retry_after`` seconds if given), ``reset`` (close the connection without
    an answer), ``hang`` (sleep ``seconds`` before answering), ``truncate``
    (Content-Length larger than the body sent), ``nonjson`` (200 with HTML),
    ``garbage`` (200 with JSON of the wrong shape).
    """

    kind: str
    count: int = 1
    match: str = ""
    status: int = 503
    retry_after: float | None = None
    seconds: float = 5.0


@dataclass
class Request:
    t: float
    method: str
    path: str
    query: dict
    key: str | None
    status: int = 0


@dataclass
class VTServer:
    keys: dict = field(default_factory=lambda: {"test-key-free": "free", "test-key-premium": "premium"})
    latency: float = 0.0
    per_minute: int | None = None
    per_day: int | None = None
    p_5xx: float = 0.0
    p_reset: float = 0.0
    seed: int = 1

    def __post_init__(self):
        self.faults: list[Fault] = []
        self.profiles: dict[str, str] = {}
        self.log: list[Request] = []
        self.submitted: dict[str, dict] = {}
        self.lock = threading.Lock()
        self.random = random.Random(self.seed)
        self._windows: dict[str, list[float]] = {}
        self._days: dict[str, int] = {}
        self.httpd: ThreadingHTTPServer | None = None

    # --- life cycle ------------------------------------------------------------

    def start(self, port: int = 0) -> str:
        server = self

        class Handler(_Handler):
            vt = server

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self.base_url

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/api/v3"

    def stop(self) -> None:
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()

    def reset(self) -> None:
        with self.lock:
            self.faults.clear()
            self.profiles.clear()
            self.log.clear()
            self.submitted.clear()
            self._windows.clear()
            self._days.clear()
        self.latency = 0.0
        self.per_minute = self.per_day = None
        self.p_5xx = self.p_reset = 0.0

    # --- what went over the wire ---------------------------------------------------

    def requests(self, method: str | None = None, path: str = "") -> list[Request]:
        with self.lock:
            return [r for r in self.log if (method is None or r.method == method) and path in r.path]

    def max_in_window(self, seconds: float = 60.0, key: str | None = None) -> int:
        """The most requests that arrived within any ``seconds`` window (for one key)."""
        times = sorted(r.t for r in self.requests() if key is None or r.key == key)
        best, j = 0, 0
        for i, t in enumerate(times):
            while times[j] <= t - seconds:
                j += 1
            best = max(best, i - j + 1)
        return best

    # --- decisions -------------------------------------------------------------------

    def take_fault(self, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.count > 0 and fault.match in path:
                    fault.count -= 1
                    return fault
            roll = self.random.random()
        if roll < self.p_reset:
            return Fault("reset")
        if roll < self.p_reset + self.p_5xx:
            return Fault("status", status=self.random.choice([500, 502, 503, 504]))
        return None

    def over_quota(self, key: str, now: float) -> bool:
        with self.lock:
            window = [t for t in self._windows.get(key, []) if t > now - 60]
            window.append(now)
            self._windows[key] = window
            self._days[key] = self._days.get(key, 0) + 1
            return bool((self.per_minute and len(window) > self.per_minute)
                        or (self.per_day and self._days[key] > self.per_day))

    def profile(self, value: str) -> str:
        if value in self.profiles:
            return self.profiles[value]
        if value in self.submitted and self.submitted[value].get("done"):
            return "clean"
        name = value.lower()
        for word, prof in (("notfound", "notfound"), ("unknown", "notfound"), ("malicious", "malicious"),
                           ("evil", "malicious"), ("suspicious", "suspicious"), ("fewengines", "fewengines"),
                           ("clean", "clean")):
            if word in name:
                return prof
        h = int(hashlib.sha256(value.encode()).hexdigest()[:8], 16) % 10
        return (["malicious"] * 2 + ["suspicious"] + ["notfound"] + ["clean"] * 6)[h]


# --- bodies -------------------------------------------------------------------------------


def _h(value: str, n: int = 8) -> int:
    return int(hashlib.sha256(value.encode()).hexdigest()[:n], 16)


def stats_for(profile: str) -> dict:
    base = {"harmless": 0, "malicious": 0, "suspicious": 0, "undetected": 0, "timeout": 0}
    base.update({"malicious": {"malicious": 12, "suspicious": 1, "undetected": 50, "harmless": 7},
                 "suspicious": {"malicious": 1, "suspicious": 2, "undetected": 58, "harmless": 9},
                 "clean": {"undetected": 22, "harmless": 48},
                 "fewengines": {"undetected": 5}}.get(profile, {}))
    return base


def results_for(profile: str, stats: dict) -> dict:
    out, i = {}, 0
    for category in ("malicious", "suspicious", "harmless", "undetected"):
        for _ in range(stats.get(category, 0)):
            name = ENGINES[i % len(ENGINES)]
            out[name] = {"category": category, "engine_name": name, "engine_version": "1.0",
                         "engine_update": "20251130", "method": "blacklist",
                         "result": {"malicious": "Trojan.GenericKD.71234", "suspicious": "suspicious",
                                    "harmless": "clean", "undetected": None}[category]}
            i += 1
    return out


def common_attrs(value: str, profile: str) -> dict:
    stats = stats_for(profile)
    seed = _h(value)
    attrs = {
        "last_analysis_stats": stats, "last_analysis_results": results_for(profile, stats),
        "last_analysis_date": BASE_TIME - seed % 86400, "last_modification_date": BASE_TIME - seed % 3600,
        "reputation": {"malicious": -42, "suspicious": -3}.get(profile, 0),
        "total_votes": {"harmless": 1, "malicious": 9 if profile == "malicious" else 0},
        "tags": {"malicious": ["trojan", "c2"], "suspicious": ["suspicious-udp"]}.get(profile, []),
    }
    return attrs


def file_object(value: str, profile: str) -> dict:
    sha256 = value if len(value) == 64 else hashlib.sha256(value.encode()).hexdigest()
    attrs = common_attrs(value, profile)
    seed = _h(value)
    attrs.update({
        "md5": value if len(value) == 32 else hashlib.md5(sha256.encode()).hexdigest(),
        "sha1": value if len(value) == 40 else hashlib.sha1(sha256.encode()).hexdigest(),
        "sha256": sha256, "vhash": "015036656d5223z1", "ssdeep": "3072:abcdEFGH:abcdEFGH", "size": 200_000 + seed % 100_000,
        "type_description": "Win32 EXE", "type_tag": "peexe", "type_extension": "exe", "magic": "PE32 executable",
        "names": ["invoice_2211.exe", "payload.bin", "svchost.exe"], "meaningful_name": "invoice_2211.exe",
        "first_submission_date": BASE_TIME - 90 * 86400 - seed % 86400, "last_submission_date": BASE_TIME - 86400,
        "first_seen_itw_date": BASE_TIME - 95 * 86400, "creation_date": BASE_TIME - 100 * 86400,
        "times_submitted": 3 + seed % 40, "unique_sources": 2,
        "pe_info": {"imphash": "f34d5f2d4577ed6d9ceec516c1f5a744", "timestamp": BASE_TIME - 101 * 86400,
                    "machine_type": 332, "entry_point": 4096},
        "signature_info": {"verified": "Unsigned", "product": "Invoice Viewer", "description": "Invoice Viewer",
                           "copyright": "(c) 2025", "original name": "viewer.exe"},
    })
    if profile == "malicious":
        attrs["popular_threat_classification"] = {
            "suggested_threat_label": "trojan.emotet/heodo",
            "popular_threat_category": [{"value": "trojan", "count": 30}, {"value": "downloader", "count": 8}],
            "popular_threat_name": [{"value": "emotet", "count": 25}, {"value": "heodo", "count": 9}]}
        attrs["sandbox_verdicts"] = {"Zenbox": {"category": "malicious", "sandbox_name": "Zenbox",
                                                "malware_classification": ["MALWARE", "TROJAN"],
                                                "malware_names": ["Emotet"], "confidence": 90}}
        attrs["crowdsourced_yara_results"] = [{
            "ruleset_id": "0001a2b3", "ruleset_name": "Emotet", "rule_name": "Emotet_Loader_2025",
            "author": "ReversingLabs", "source": "https://github.com/reversinglabs/reversinglabs-yara-rules",
            "description": "Emotet loader", "match_date": BASE_TIME - 30 * 86400, "ruleset_version": "0001a2b3|1"}]
        attrs["tags"] = ["peexe", "long-sleeps", "detect-debug-environment", "persistence"]
    return {"type": "file", "id": sha256, "links": {"self": f"/api/v3/files/{sha256}"}, "attributes": attrs}


def ip_object(value: str, profile: str) -> dict:
    attrs = common_attrs(value, profile)
    attrs.update({"as_owner": "EXAMPLE-HOSTING-AS", "asn": 64500 + _h(value) % 400, "continent": "EU",
                  "country": ["NL", "DE", "RU", "US"][_h(value) % 4], "network": value.rsplit(".", 1)[0] + ".0/24"
                  if "." in value else value + "/64", "regional_internet_registry": "RIPE NCC",
                  "whois": "NetRange: ...\nOrgName: Example Hosting\n", "whois_date": BASE_TIME - 10 * 86400,
                  "last_https_certificate": {"validity": {"not_before": "2025-10-01 00:00:00",
                                                          "not_after": "2026-01-01 00:00:00"},
                                             "issuer": {"CN": "R11", "O": "Let's Encrypt"},
                                             "subject": {"CN": "host.example-hosting.net"}},
                  "last_https_certificate_date": BASE_TIME - 5 * 86400})
    return {"type": "ip_address", "id": value, "links": {"self": f"/api/v3/ip_addresses/{value}"},
            "attributes": attrs}


def domain_object(value: str, profile: str) -> dict:
    attrs = common_attrs(value, profile)
    attrs.update({
        "registrar": "NameCheap, Inc.", "creation_date": BASE_TIME - 40 * 86400 - _h(value) % 86400,
        "expiration_date": BASE_TIME + 325 * 86400, "last_update_date": BASE_TIME - 39 * 86400,
        "tld": value.rsplit(".", 1)[-1], "whois": "Domain Name: " + value.upper() + "\nRegistrar: NameCheap, Inc.\n",
        "whois_date": BASE_TIME - 2 * 86400,
        "categories": {"Forcepoint ThreatSeeker": "malicious web sites" if profile == "malicious" else "information technology",
                       "BitDefender": "phishing" if profile == "malicious" else "computersandsoftware"},
        "last_dns_records": [{"type": "A", "value": "203.0.113.77", "ttl": 300},
                             {"type": "NS", "value": "ns1.example-dns.net", "ttl": 3600}],
        "last_dns_records_date": BASE_TIME - 3600, "popularity_ranks": {"Tranco": {"rank": 50000 + _h(value) % 900000,
                                                                                   "timestamp": BASE_TIME}},
        "last_https_certificate": {"validity": {"not_before": "2025-11-01 00:00:00", "not_after": "2026-01-30 00:00:00"},
                                   "issuer": {"CN": "R10"}, "subject": {"CN": value}},
        "last_https_certificate_date": BASE_TIME - 86400,
    })
    if profile == "malicious":
        attrs["tags"] = ["phishing", "dga"]
    return {"type": "domain", "id": value, "links": {"self": f"/api/v3/domains/{value}"}, "attributes": attrs}


def url_object(url: str, profile: str) -> dict:
    sha = hashlib.sha256(url.encode()).hexdigest()
    attrs = common_attrs(url, profile)
    attrs.update({"url": url, "last_final_url": url, "title": "Sign in to your account",
                  "last_http_response_code": 200, "last_http_response_content_length": 5120,
                  "tld": urlsplit(url).hostname.rsplit(".", 1)[-1] if urlsplit(url).hostname else "",
                  "first_submission_date": BASE_TIME - 20 * 86400, "last_submission_date": BASE_TIME - 86400,
                  "times_submitted": 4, "redirection_chain": [url], "has_content": True,
                  "threat_names": ["Phishing.Generic"] if profile == "malicious" else [],
                  "categories": {"Sophos": "phishing and fraud" if profile == "malicious" else "business"}})
    return {"type": "url", "id": sha, "links": {"self": f"/api/v3/urls/{sha}"}, "attributes": attrs}


def descriptors(kind: str, ids: list[str], context: list[dict] | None = None) -> dict:
    data = [{"type": kind, "id": i, **({"context_attributes": context[n]} if context else {})}
            for n, i in enumerate(ids)]
    return {"data": data, "meta": {"count": len(data)}, "links": {"self": "..."}}


def embedded_relationship(collection: str, oid: str, name: str, profile: str) -> dict:
    seed = _h(oid)
    bad = profile == "malicious"
    if name == "contacted_domains":
        return descriptors("domain", [f"c2-{seed % 97}.evil-cdn.net", "update-checker.xyz"] if bad else ["www.google.com"])
    if name == "contacted_ips":
        return descriptors("ip_address", ["45.83.193.150", "194.26.29.112"] if bad else ["142.250.74.138"])
    if name == "contacted_urls":
        urls = ["http://update-checker.xyz/i.sh"] if bad else []
        return descriptors("url", [hashlib.sha256(u.encode()).hexdigest() for u in urls], [{"url": u} for u in urls])
    if name in ("dropped_files", "execution_parents", "communicating_files"):
        return descriptors("file", [hashlib.sha256(f"{oid}:{name}:{i}".encode()).hexdigest() for i in range(2 if bad else 0)])
    if name == "behaviours":
        return descriptors("file_behaviour", [f"{oid}_Zenbox", f"{oid}_CAPE Sandbox"] if bad else [])
    if name == "subdomains":
        return descriptors("domain", [f"mail.{oid}", f"login.{oid}"])
    if name == "last_serving_ip_address":
        return {"data": {"type": "ip_address", "id": "203.0.113.77"}, "links": {"self": "..."}}
    if name == "network_location":
        return {"data": {"type": "domain", "id": "example-bad.com"}, "links": {"self": "..."}}
    return descriptors("url", [])


def resolutions(collection: str, oid: str) -> dict:
    data = []
    for i in range(3):
        ip = f"203.0.113.{70 + i}" if collection == "domains" else oid
        host = oid if collection == "domains" else f"host{i}.example-bad.com"
        data.append({"type": "resolution", "id": ip + host, "attributes": {
            "date": BASE_TIME - (i + 1) * 7 * 86400, "host_name": host, "ip_address": ip, "resolver": "VirusTotal",
            "host_name_last_analysis_stats": stats_for("clean"), "ip_address_last_analysis_stats": stats_for("clean")}})
    return {"data": data, "meta": {"count": len(data)}, "links": {"self": "..."}}


def historical_whois(oid: str) -> dict:
    return {"data": [{"type": "whois", "id": f"{oid}-{i}", "attributes": {
        "first_seen_date": BASE_TIME - (60 - i * 20) * 86400, "last_updated": BASE_TIME - (40 - i * 20) * 86400,
        "whois_map": {"Registrar": "NameCheap, Inc.", "Creation Date": "2025-10-22T08:00:00Z",
                      "Updated Date": "2025-10-23T08:00:00Z", "Registry Expiry Date": "2026-10-22T08:00:00Z",
                      "Registrant Organization": "Privacy service provided by Withheld for Privacy ehf"}}}
        for i in range(2)], "meta": {"count": 2}, "links": {"self": "..."}}


def behaviour_summary(oid: str) -> dict:
    return {"data": {
        "processes_created": ["C:\\Users\\jdoe\\AppData\\Local\\Temp\\invoice_2211.exe",
                              "C:\\Windows\\System32\\rundll32.exe C:\\ProgramData\\svchost.dll,DllRegisterServer"],
        "command_executions": ["cmd.exe /c schtasks /create /tn Updater /tr C:\\ProgramData\\svchost.dll /sc minute",
                               "powershell.exe -nop -w hidden -enc SQBFAFgA"],
        "files_written": ["C:\\ProgramData\\svchost.dll"],
        "files_dropped": [{"path": "C:\\ProgramData\\svchost.dll", "sha256": hashlib.sha256(oid.encode()).hexdigest(),
                           "type": "PE32 DLL"}],
        "registry_keys_set": [{"key": "HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run\\Updater",
                               "value": "rundll32.exe C:\\ProgramData\\svchost.dll"}],
        "mutexes_created": ["Global\\M2A1F3"],
        "dns_lookups": [{"hostname": "update-checker.xyz", "resolved_ips": ["194.26.29.112"]},
                        {"hostname": "nx-domain-lookup.example"}],
        "ip_traffic": [{"destination_ip": "45.83.193.150", "destination_port": 8443, "transport_layer_protocol": "TCP"}],
        "http_conversations": [{"url": "http://update-checker.xyz/i.sh", "request_method": "GET",
                                "response_status_code": 200}],
        "tags": ["LONG_SLEEPS", "DETECT_DEBUG_ENVIRONMENT", "PERSISTENCE"],
        "verdicts": ["MALWARE", "TROJAN"],
        "mitre_attack_techniques": [
            {"id": "T1055", "signature_description": "Injects code into another process", "severity": "IMPACT_SEVERITY_HIGH"},
            {"id": "T1053.005", "signature_description": "Creates a scheduled task", "severity": "IMPACT_SEVERITY_MEDIUM"},
            {"id": "T1562.001", "signature_description": "Disables Windows Defender", "severity": "IMPACT_SEVERITY_HIGH"},
            {"id": "T1497", "signature_description": "Long sleeps to evade sandboxes", "severity": "IMPACT_SEVERITY_INFO"}],
    }, "links": {"self": "..."}}


def sandbox_reports(oid: str) -> dict:
    """GET /files/{id}/behaviours: full file_behaviour objects, one per sandbox."""
    data = []
    for n, sandbox in enumerate(("Zenbox", "CAPE Sandbox")):
        attrs = dict(behaviour_summary(oid)["data"])
        attrs.update({"sandbox_name": sandbox, "analysis_date": BASE_TIME - (n + 1) * 3 * 86400,
                      "behash": hashlib.md5(f"{oid}{sandbox}".encode()).hexdigest(), "has_html_report": True,
                      "has_pcap": n == 0, "has_evtx": False, "has_memdump": False,
                      "processes_tree": [{"process_id": "2212", "name": "invoice_2211.exe", "children": []}]})
        data.append({"type": "file_behaviour", "id": f"{oid}_{sandbox}", "attributes": attrs,
                     "links": {"self": f"/api/v3/file_behaviours/{oid}_{sandbox}"}})
    return {"data": data, "meta": {"count": len(data)}, "links": {"self": "..."}}


def mitre_trees(oid: str) -> dict:
    return {"data": {"Zenbox": {"tactics": [
        {"id": "TA0002", "name": "Execution", "link": "https://attack.mitre.org/tactics/TA0002/", "description": "...",
         "techniques": [{"id": "T1053.005", "name": "Scheduled Task", "link": "...", "description": "...",
                         "signatures": [{"severity": "MEDIUM", "description": "Creates a scheduled task"}]}]},
        {"id": "TA0005", "name": "Defense Evasion", "link": "...", "description": "...",
         "techniques": [{"id": "T1564.001", "name": "Hidden Files and Directories", "link": "...",
                         "description": "...", "signatures": [{"severity": "LOW", "description": "Hides a file"}]}]}]},
        "CAPE Sandbox": None}, "links": {"self": "..."}}


def error_body(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without TCP_NODELAY, Nagle holds the
    # body until the client's delayed ACK, adding ~40 ms to every answer.
    disable_nagle_algorithm = True
    vt: VTServer

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self.handle_api("GET")

    def do_POST(self) -> None:
        self.handle_api("POST")

    def handle_api(self, method: str) -> None:
        vt = self.vt
        parts = urlsplit(self.path)
        path = parts.path
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        key = self.headers.get("x-apikey")
        entry = Request(time.time(), method, path, query, key)
        with vt.lock:
            vt.log.append(entry)
        if vt.latency:
            time.sleep(vt.latency)
        fault = vt.take_fault(path)
        if fault and self.apply_fault(fault, entry):
            return
        if not key:
            return self.send(401, error_body("AuthenticationRequiredError", "X-Apikey header is missing"), entry)
        tier = vt.keys.get(key)
        if tier is None:
            return self.send(401, error_body("WrongCredentialsError", "Wrong API key"), entry)
        if vt.over_quota(key, entry.t):
            return self.send(429, error_body("QuotaExceededError", "Quota exceeded"), entry)
        status, payload = self.route(method, path, query, body, tier)
        self.send(status, payload, entry)

    def apply_fault(self, fault: Fault, entry: Request) -> bool:
        if fault.kind == "hang":
            time.sleep(fault.seconds)
            return False
        if fault.kind == "reset":
            entry.status = -1
            self.close_connection = True
            try:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            except OSError:
                pass
            self.connection.close()
            return True
        if fault.kind == "status":
            self.send(fault.status, error_body("TransientError", "try again later") if fault.status == 503
                      else b"<html><body>Internal error</body></html>", entry)
            return True
        if fault.kind == "429":
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            self.send(429, error_body("TooManyRequestsError", "Too many requests"), entry, headers)
            return True
        if fault.kind == "truncate":
            entry.status = 200
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "5000")
            self.end_headers()
            self.wfile.write(b'{"data": {"type": "domain", "id": "cut')
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return True
        if fault.kind == "nonjson":
            self.send(200, b"<html><body>Service Unavailable</body></html>", entry, {"Content-Type": "text/html"})
            return True
        if fault.kind == "garbage":
            self.send(200, b'{"data": 5, "what": "no object here"}', entry)
            return True
        return False

    def send(self, status: int, payload: bytes, entry: Request, headers: dict | None = None) -> None:
        entry.status = status
        self.send_response(status)
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        for k, v in hdrs.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def route(self, method: str, path: str, query: dict, body: bytes, tier: str) -> tuple[int, bytes]:
        vt = self.vt
        segments = [unquote(s) for s in path.split("/")]
        if segments[:3] != ["", "api", "v3"] or len(segments) < 4:
            return 404, error_body("NotFoundError", f"Resource {path} not found")
        rest = segments[3:]
        if method == "POST" and rest == ["urls"]:
            url = parse_qs(body.decode()).get("url", [""])[0]
            if not url:
                return 400, error_body("InvalidArgumentError", "url is required")
            analysis = f"u-{hashlib.sha256(url.encode()).hexdigest()}-{int(time.time())}"
            with vt.lock:
                vt.submitted[url] = {"analysis": analysis, "polls": 0, "done": False}
            return 200, json.dumps({"data": {"type": "analysis", "id": analysis,
                                             "links": {"self": f"/api/v3/analyses/{analysis}"}}}).encode()
        if method != "GET":
            return 405, error_body("BadRequestError", "method not allowed")
        if rest[0] == "analyses" and len(rest) == 2:
            for url, sub in vt.submitted.items():
                if sub["analysis"] == rest[1]:
                    sub["polls"] += 1
                    sub["done"] = sub["polls"] >= 2
                    status = "completed" if sub["done"] else "queued"
                    stats = stats_for("clean") if sub["done"] else {k: 0 for k in stats_for("clean")}
                    return 200, json.dumps({"data": {"type": "analysis", "id": rest[1], "attributes": {
                        "date": int(time.time()), "status": status, "stats": stats, "results": {}}},
                        "meta": {"url_info": {"id": hashlib.sha256(url.encode()).hexdigest(), "url": url}}}).encode()
            return 404, error_body("NotFoundError", f"Analysis {rest[1]} not found")
        collection = rest[0]
        if collection not in ("files", "ip_addresses", "domains", "urls") or len(rest) < 2:
            return 404, error_body("NotFoundError", f"Resource {path} not found")
        oid = rest[1]
        value = oid
        if collection == "urls":
            try:
                value = base64.urlsafe_b64decode(oid + "=" * (-len(oid) % 4)).decode()
            except ValueError:
                return 400, error_body("InvalidArgumentError", "bad URL identifier")
        profile = vt.profile(value)
        if profile == "notfound":
            kind = {"files": "File", "ip_addresses": "IP address", "domains": "Domain", "urls": "URL"}[collection]
            return 404, error_body("NotFoundError", f'{kind} "{value}" not found')
        make = {"files": file_object, "ip_addresses": ip_object, "domains": domain_object, "urls": url_object}[collection]
        obj = make(value, profile)
        if len(rest) == 3:
            sub = rest[2]
            if sub in PREMIUM_RELATIONSHIPS[collection] and tier != "premium":
                return 403, error_body("ForbiddenError", "You are not allowed to perform the requested operation")
            if sub == "resolutions":
                return 200, json.dumps(resolutions(collection, value)).encode()
            if sub == "historical_whois":
                return 200, json.dumps(historical_whois(value)).encode()
            if sub == "behaviour_summary" and collection == "files":
                return 200, json.dumps(behaviour_summary(obj["id"])).encode()
            if sub == "behaviours" and collection == "files" and profile == "malicious":
                return 200, json.dumps(sandbox_reports(obj["id"])).encode()
            if sub == "behaviour_mitre_trees" and collection == "files":
                return 200, json.dumps(mitre_trees(obj["id"])).encode()
            return 200, json.dumps(embedded_relationship(collection, obj["id"], sub, profile)).encode()
        wanted = [r for r in query.get("relationships", "").split(",") if r]
        if any(r in PREMIUM_RELATIONSHIPS[collection] for r in wanted) and tier != "premium":
            return 403, error_body("ForbiddenError", "You are not allowed to perform the requested operation")
        if wanted:
            obj["relationships"] = {r: embedded_relationship(collection, obj["id"], r, profile) for r in wanted}
        return 200, json.dumps({"data": obj}).encode()


def main() -> None:
    p = argparse.ArgumentParser(description="VirusTotal-compatible test server on 127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--latency", type=float, default=0.0)
    p.add_argument("--per-minute", type=int)
    p.add_argument("--p-5xx", type=float, default=0.0)
    p.add_argument("--p-reset", type=float, default=0.0)
    args = p.parse_args()
    server = VTServer(latency=args.latency, per_minute=args.per_minute, p_5xx=args.p_5xx, p_reset=args.p_reset)
    print(server.start(args.port), flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
