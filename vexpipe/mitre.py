"""Map a VirusTotal summary to MITRE ATT&CK techniques, evidence first.

Pure. The order of trust:

1. VirusTotal's own ATT&CK data: ``behaviour.mitre_attack_techniques`` (sandbox
   signatures with a severity) and ``behaviour_mitre_trees``;
2. a keyword map over VT tags, sandbox tags (``LONG_SLEEPS`` -> ``long-sleeps``),
   crowdsourced YARA and Sigma rule names and popular threat categories and
   names, matched as **whole tokens** (so ``storage.googleapis.com`` is not
   "tor" and ``Win32.Generator`` is not "rat");
3. precise patterns over behaviour strings: command lines, processes,
   registry keys, files written.

Each technique appears once per IOC, with its strongest evidence.
"""

from __future__ import annotations

import re
from typing import Any, Iterator, NamedTuple

from vexpipe.attack import AttackTable
from vexpipe.records import as_list

EVIDENCE_MAX = 200
SEVERITY_CONFIDENCE = {"HIGH": 90, "MEDIUM": 80, "LOW": 70, "INFO": 60, "UNKNOWN": 60}
SOURCE_CONFIDENCE = {"vt-sandbox-tree": 85, "yara": 70, "sigma": 75, "sandbox-tag": 65, "tag": 60,
                     "threat-category": 50, "behaviour": 75}


class Hit(NamedTuple):
    id: str
    source: str
    evidence: str
    confidence: int


# Whole-token phrases (lowercase tokens of letters and digits) -> technique.
PHRASES: dict[str, str] = {
    "long sleeps": "T1497.003", "direct cpu clock access": "T1497.003", "time based evasion": "T1497.003",
    "detect debug environment": "T1622", "anti debug": "T1622", "anti debugging": "T1622",
    "anti analysis": "T1497", "sandbox evasion": "T1497", "detect sandbox": "T1497", "evasive": "T1497",
    "checks user input": "T1497.002", "anti vm": "T1497.001", "detect vm": "T1497.001",
    "vm detection": "T1497.001", "checks bios": "T1497.001", "checks disk space": "T1497.001",
    "checks cpu name": "T1497.001", "checks network adapters": "T1497.001", "checks hostname": "T1082",
    "self delete": "T1070.004", "calls wmi": "T1047", "runtime modules": "T1129",
    "obfuscated": "T1027", "obfuscation": "T1027", "packed": "T1027.002", "upx": "T1027.002",
    "steganography": "T1027.003", "reflective loading": "T1620", "reflective dll": "T1620",
    "macros": "T1059.005", "macro": "T1059.005", "vba": "T1059.005", "vbscript": "T1059.005",
    "powershell": "T1059.001", "javascript": "T1059.007", "jscript": "T1059.007", "python": "T1059.006",
    "shell script": "T1059.004", "exploit": "T1203", "log4shell": "T1190", "log4j": "T1190",
    "sql injection": "T1190", "webshell": "T1505.003", "web shell": "T1505.003",
    "keylogger": "T1056.001", "keylogging": "T1056.001", "ransomware": "T1486", "ransom": "T1486",
    "rat": "T1219", "remote access": "T1219", "tor": "T1090.003", "proxy": "T1090",
    "miner": "T1496", "coinminer": "T1496", "cryptominer": "T1496", "xmrig": "T1496",
    "stealer": "T1555", "infostealer": "T1555", "password stealer": "T1555",
    "browser credentials": "T1555.003", "keychain": "T1555.001", "cookie stealer": "T1539",
    "banker": "T1185", "downloader": "T1105", "dropper": "T1105", "backdoor": "T1071",
    "worm": "T1210", "rootkit": "T1014", "bootkit": "T1542.003", "phishing": "T1566",
    "spearphishing": "T1566.001", "credential dumping": "T1003", "mimikatz": "T1003.001",
    "lsass": "T1003.001", "process injection": "T1055", "injector": "T1055", "injection": "T1055",
    "hollowing": "T1055.012", "process hollowing": "T1055.012", "dll sideloading": "T1574.002",
    "sideloading": "T1574.002", "uac bypass": "T1548.002", "dga": "T1568.002", "fast flux": "T1568.001",
    "dns tunneling": "T1071.004", "cobalt strike": "T1071.001", "cobaltstrike": "T1071.001",
    "beacon": "T1071.001", "c2": "T1071", "ddos": "T1498", "wiper": "T1561", "screenshot": "T1113",
    "screen capture": "T1113", "clipboard": "T1115", "webcam": "T1125", "audio capture": "T1123",
    "brute force": "T1110", "bruteforce": "T1110", "password spraying": "T1110.003",
    "port scan": "T1046", "scanner": "T1046", "rdp": "T1021.001", "remote desktop": "T1021.001",
    "psexec": "T1569.002", "lateral movement": "T1021", "exfiltration": "T1041",
    "timestomp": "T1070.006", "clear logs": "T1070.001", "log clearing": "T1070.001",
    "disable defender": "T1562.001", "disable antivirus": "T1562.001", "av killer": "T1562.001",
    "shadow copy": "T1490", "shadow copies": "T1490", "scheduled task": "T1053.005", "cron": "T1053.003",
    "create service": "T1543.003", "service creation": "T1543.003", "run key": "T1547.001",
    "startup folder": "T1547.001", "wmi persistence": "T1546.003", "mshta": "T1218.005",
    "rundll32": "T1218.011", "regsvr32": "T1218.010", "msiexec": "T1218.007", "certutil": "T1140",
    "lolbin": "T1218", "lolbas": "T1218", "hidden files": "T1564.001", "code signing": "T1553.002",
    "masquerading": "T1036", "masquerade": "T1036", "double extension": "T1036.007",
    "email collection": "T1114", "network share discovery": "T1135", "account discovery": "T1087",
    "system information discovery": "T1082", "persistence": "T1547", "botnet": "T1583.005",
}
_PHRASES = sorted(((tuple(k.split()), v) for k, v in PHRASES.items()), key=lambda kv: -len(kv[0]))
_TOKEN = re.compile(r"[a-z0-9]+")

# Precise patterns over behaviour strings (command lines, processes, registry keys, files).
BEHAVIOURS: list[tuple[str, str]] = [
    (r"\bschtasks(?:\.exe)?\b.*\s/create\b", "T1053.005"),
    (r"\bat(?:\.exe)?\s+\d{1,2}:\d{2}\b", "T1053.002"),
    (r"\\currentversion\\(?:run|runonce)\b", "T1547.001"),
    (r"\\start menu\\programs\\startup\\", "T1547.001"),
    (r"\\winlogon\\(?:shell|userinit)\b", "T1547.004"),
    (r"\\image file execution options\\", "T1546.012"),
    (r"\\appinit_dlls\b", "T1546.010"),
    (r"\\software\\classes\\ms-settings\\shell\\open\\command", "T1548.002"),
    (r"\b(?:fodhelper|eventvwr|computerdefaults)(?:\.exe)?\b", "T1548.002"),
    (r"\\currentcontrolset\\services\\", "T1543.003"),
    (r"\bsc(?:\.exe)?\s+create\b", "T1543.003"),
    (r"\bpowershell(?:\.exe)?\b|\bpwsh\b", "T1059.001"),
    (r"\s-(?:e|ec|enc|encodedcommand)\s+[a-z0-9+/=]{8,}", "T1027"),
    (r"\b(?:invoke-expression|iex)\b", "T1059.001"),
    (r"\b(?:downloadstring|downloadfile|invoke-webrequest|start-bitstransfer)\b", "T1105"),
    (r"\bfrombase64string\b|\bbase64\s+-d\b", "T1140"),
    (r"\bcmd(?:\.exe)?\s+/[ck]\b", "T1059.003"),
    (r"\b(?:wscript|cscript)(?:\.exe)?\b", "T1059.005"),
    (r"\bmshta(?:\.exe)?\b", "T1218.005"),
    (r"\brundll32(?:\.exe)?\b", "T1218.011"),
    (r"\bregsvr32(?:\.exe)?\b", "T1218.010"),
    (r"\bmsiexec(?:\.exe)?\b.*\s/(?:i|q)", "T1218.007"),
    (r"\bcmstp(?:\.exe)?\b", "T1218.003"),
    (r"\binstallutil(?:\.exe)?\b", "T1218.004"),
    (r"\b(?:regasm|regsvcs)(?:\.exe)?\b", "T1218.009"),
    (r"\bodbcconf(?:\.exe)?\b", "T1218.008"),
    (r"\bforfiles(?:\.exe)?\b", "T1202"),
    (r"\bcertutil(?:\.exe)?\b.*-urlcache", "T1105"),
    (r"\bcertutil(?:\.exe)?\b.*-decode", "T1140"),
    (r"\bbitsadmin(?:\.exe)?\b.*/transfer", "T1197"),
    (r"\bvssadmin(?:\.exe)?\b.*(?:delete\s+shadows|resize\s+shadowstorage)", "T1490"),
    (r"\bwmic(?:\.exe)?\b.*shadowcopy\s+delete", "T1490"),
    (r"\bbcdedit(?:\.exe)?\b.*(?:recoveryenabled\s+no|bootstatuspolicy)", "T1490"),
    (r"\bwbadmin(?:\.exe)?\b.*delete", "T1490"),
    (r"\bwevtutil(?:\.exe)?\s+(?:cl|clear-log)\b", "T1070.001"),
    (r"\bnet1?(?:\.exe)?\s+user\b.*\s/add\b", "T1136.001"),
    (r"\bnet1?(?:\.exe)?\s+localgroup\s+administrators\b", "T1098"),
    (r"\bnet1?(?:\.exe)?\s+group\s+\"?domain admins", "T1069.002"),
    (r"\bnet1?(?:\.exe)?\s+(?:view|share)\b", "T1135"),
    (r"\bnet1?(?:\.exe)?\s+stop\b|\btaskkill(?:\.exe)?\b", "T1489"),
    (r"\battrib(?:\.exe)?\s+\+h\b", "T1564.001"),
    (r"\bwhoami(?:\.exe)?\b|\bquser\b|\bquery\s+user\b", "T1033"),
    (r"\bsysteminfo(?:\.exe)?\b|\buname\s+-a\b", "T1082"),
    (r"\bipconfig(?:\.exe)?\b|\bifconfig\b", "T1016"),
    (r"\bnetstat(?:\.exe)?\b", "T1049"),
    (r"\btasklist(?:\.exe)?\b|\bps\s+aux\b", "T1057"),
    (r"\bnltest(?:\.exe)?\b", "T1482"),
    (r"\b(?:adfind|bloodhound|sharphound)\b", "T1087.002"),
    (r"\bmimikatz\b|sekurlsa::", "T1003.001"),
    (r"comsvcs(?:\.dll)?.*minidump|\bprocdump(?:64)?(?:\.exe)?\b.*lsass", "T1003.001"),
    (r"\bntdsutil(?:\.exe)?\b|\bntds\.dit\b", "T1003.003"),
    (r"\breg(?:\.exe)?\s+save\s+hklm\\(?:sam|system|security)\b", "T1003.002"),
    (r"\bpsexec(?:64)?(?:\.exe)?\b", "T1569.002"),
    (r"\bwmic(?:\.exe)?\b.*\bprocess\s+call\s+create\b", "T1047"),
    (r"\b(?:curl|wget)\b.*\|\s*(?:ba)?sh\b", "T1059.004"),
    (r"\b(?:curl|wget)\b[^|]*\bhttps?://", "T1105"),
    (r"\bcrontab\b|/etc/cron", "T1053.003"),
    (r"/etc/rc\.local\b|/etc/init\.d/", "T1037.004"),
    (r"\.bash_history\b|\bhistory\s+-c\b", "T1070.003"),
    (r"\bchmod\s+\+x\b", "T1222.002"),
    (r"/tmp/\.[^/\s]+", "T1564.001"),
    (r"\bssh-keygen\b|\bauthorized_keys\b", "T1098.004"),
    (r"\biptables\b.*\s-f\b|\bufw\s+disable\b|\bnetsh\b.*firewall.*\boff\b", "T1562.004"),
    (r"\bset-mppreference\b.*-disable|\bdisableantispyware\b|\bdisablerealtimemonitoring\b", "T1562.001"),
    (r"\bcipher(?:\.exe)?\s+/w\b", "T1485"),
    (r"\bsdelete(?:64)?(?:\.exe)?\b|\bdel\s+/[fqs]\b|\brm\s+-rf?\b|\bshred\b", "T1070.004"),
    (r"\brclone(?:\.exe)?\b|\bmegacmd\b|\bmega\.nz\b", "T1567.002"),
    (r"\bngrok(?:\.exe)?\b|\bplink(?:\.exe)?\b.*\s-r\b", "T1572"),
    (r"\b(?:anydesk|teamviewer|screenconnect|atera)\b", "T1219"),
    (r"/dev/tcp/|\bnc(?:at)?(?:\.exe)?\b.*\s-e\s", "T1059.004"),
    (r"\bpython[23]?\s+-c\b", "T1059.006"),
    (r"\bvssadmin(?:\.exe)?\b", "T1490"),
]
_BEHAVIOURS = [(re.compile(p, re.IGNORECASE), t) for p, t in BEHAVIOURS]
BEHAVIOUR_FIELDS = ("command_executions", "processes_created", "registry_keys_opened", "files_written",
                    "files_deleted", "modules_loaded", "mutexes_created")


def tokens(text: str) -> list[str]:
    """Lowercase word tokens; ``LONG_SLEEPS``, ``long-sleeps`` and ``Long Sleeps`` all give the same."""
    return _TOKEN.findall(text.lower())


def phrase_hits(text: str) -> Iterator[str]:
    """Techniques whose phrase occurs in ``text`` as whole tokens."""
    toks = tokens(text)
    if not toks:
        return
    for phrase, technique in _PHRASES:
        n = len(phrase)
        for i in range(len(toks) - n + 1):
            if tuple(toks[i:i + n]) == phrase:
                yield technique
                break


def _short(text: str) -> str:
    return text if len(text) <= EVIDENCE_MAX else text[: EVIDENCE_MAX - 1] + "…"


def evidence(vt: dict) -> Iterator[Hit]:
    """Every piece of ATT&CK evidence in a ``vt`` summary, strongest kinds first."""
    behaviour = vt.get("behaviour") if isinstance(vt.get("behaviour"), dict) else {}
    for t in as_list(behaviour.get("mitre_attack_techniques")):
        if isinstance(t, dict) and isinstance(t.get("id"), str):
            severity = str(t.get("severity") or "").upper().replace("IMPACT_SEVERITY_", "")
            yield Hit(t["id"], "vt-sandbox", _short(str(t.get("description") or t["id"])),
                      SEVERITY_CONFIDENCE.get(severity, 70))
    trees = vt.get("behaviour_mitre_trees")
    if isinstance(trees, dict):
        for sandbox, tactics in trees.items():
            for tactic in as_list(tactics):
                for t in as_list(tactic.get("techniques")) if isinstance(tactic, dict) else []:
                    if isinstance(t, dict) and isinstance(t.get("id"), str):
                        sig = next((s.get("description") for s in as_list(t.get("signatures")) if isinstance(s, dict)), "")
                        yield Hit(t["id"], "vt-sandbox-tree", _short(f"{sandbox}: {sig or t.get('name', '')}"),
                                  SOURCE_CONFIDENCE["vt-sandbox-tree"])
    texts: list[tuple[str, str]] = [("tag", t) for t in as_list(vt.get("tags")) if isinstance(t, str)]
    texts += [("sandbox-tag", t.lower().replace("_", "-")) for t in as_list(behaviour.get("tags")) if isinstance(t, str)]
    for rule in as_list(vt.get("crowdsourced_yara")):
        if isinstance(rule, dict):
            texts += [("yara", str(rule[k])) for k in ("rule_name", "ruleset_name") if rule.get(k)]
    texts += [("sigma", str(s)) for s in as_list(vt.get("sigma_rules"))]
    ptc = vt.get("popular_threat_classification")
    if isinstance(ptc, dict):
        texts += [("threat-category", str(v)) for key in ("label", "categories", "names")
                  for v in (ptc.get(key) if isinstance(ptc.get(key), list) else [ptc.get(key)]) if v]
    for source, text in texts:
        for technique in phrase_hits(text):
            yield Hit(technique, source, _short(text), SOURCE_CONFIDENCE[source])
    strings = [s for f in BEHAVIOUR_FIELDS for s in as_list(behaviour.get(f)) if isinstance(s, str)]
    strings += [str(r.get("key", "")) for r in as_list(behaviour.get("registry_keys_set")) if isinstance(r, dict)]
    for text in strings:
        for pattern, technique in _BEHAVIOURS:
            if pattern.search(text):
                yield Hit(technique, "behaviour", _short(text), SOURCE_CONFIDENCE["behaviour"])


def map_techniques(vt: dict, table: AttackTable) -> list[dict]:
    """The ``mitre`` list for one IOC: each technique once, with its strongest evidence."""
    best: dict[str, dict] = {}
    for hit in evidence(vt):
        technique = table.lookup(hit.id)
        if technique is None:
            continue
        current = best.get(technique.id)
        if current is not None and current["confidence"] >= hit.confidence:
            continue
        item: dict[str, Any] = {
            "id": technique.id, "name": technique.name, "tactics": list(technique.tactics),
            "source": hit.source, "evidence": hit.evidence, "confidence": hit.confidence, "url": technique.url,
        }
        if technique.reported_as:
            item["reported_as"] = technique.reported_as
        if technique.status == "deprecated":
            item["deprecated"] = True
        best[technique.id] = item
    return sorted(best.values(), key=lambda t: (-t["confidence"], t["id"]))
