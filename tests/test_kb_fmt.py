"""vex-kb, vex-fmt, the demo and the README's quickstart, as a user runs them."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess

import orjson

from conftest import BIN, ROOT, run, run_on_terminal


def lines(out: bytes) -> list:
    return [orjson.loads(line) for line in out.splitlines()]


# --- vex-kb ---------------------------------------------------------------------------------

def test_kb_stores_refanged_and_annotates(isolated_env):
    env = isolated_env
    assert lines(run("vex-kb", "tag", "evil[.]com", "--add", "c2", env=env).stdout) == [
        {"ioc": "evil.com", "type": "domain", "tags": ["c2"]}]
    assert lines(run("vex-kb", "tag", "EVIL.COM", "--add", "case-42", env=env).stdout)[0]["tags"] == ["c2", "case-42"]
    note = lines(run("vex-kb", "note", "hxxp://evil[.]com/x", "--add", "phishing landing page", env=env).stdout)[0]
    assert note["ioc"] == "http://evil.com/x" and note["notes"][0]["text"] == "phishing landing page"
    run("vex-kb", "watchlist", "prio", "--add", "evil.com", "--add", "8.8.8.8", env=env)
    shown = lines(run("vex-kb", "show", "evil.com", env=env).stdout)[0]
    assert shown["tags"] == ["c2", "case-42"] and shown["watchlists"] == ["prio"] and shown["allowlisted"] is False
    stream = b'{"ioc":"evil.com","type":"domain","vt":{"x":1}}\n{"ioc":"other.com","type":"domain"}\n' \
             b'{"event":"e","iocs":[{"ioc":"8.8.8.8","type":"ipv4"}]}\n'
    out = lines(run("vex-kb", "annotate", input=stream, env=env).stdout)
    assert out[0]["kb"]["tags"] == ["c2", "case-42"] and out[0]["vt"] == {"x": 1}
    assert "kb" not in out[1]
    assert out[2]["iocs"][0]["kb"]["watchlists"] == ["prio"]
    note_id = note["notes"][0]["id"]
    assert lines(run("vex-kb", "note", "http://evil.com/x", "--delete", str(note_id), env=env).stdout)[0]["notes"] == []
    assert run("vex-kb", "tag", "not an ioc", "--add", "x", env=env).returncode == 64
    assert run("vex-kb", "bogus", env=env).returncode == 64


def test_kb_export_import_is_idempotent(isolated_env, tmp_path):
    env = isolated_env
    run("vex-kb", "tag", "evil.com", "--add", "c2", env=env)
    run("vex-kb", "note", "evil.com", "--add", "n1", env=env)
    run("vex-kb", "allow", "corp.example.com", env=env)
    run("vex-kb", "watchlist", "w", "--add", "1.1.1.1", env=env)
    exported = run("vex-kb", "export", env=env).stdout
    assert {e["kind"] for e in lines(exported)} == {"tag", "note", "allow", "watchlist"}
    other = {**env, "VEXPIPE_KB": str(tmp_path / "other.sqlite3")}
    assert b"imported 4 new" in run("vex-kb", "import", input=exported, env=other).stderr
    assert b"imported 0 new" in run("vex-kb", "import", input=exported, env=other).stderr
    assert run("vex-kb", "export", env=other).stdout == exported


def test_watchlist_recheck_reports_changes(env, vt):
    run("vex-kb", "watchlist", "prio", "--add", "flip-a.com", "--add", "flip-b.com", env=env)
    vt.profiles.update({"flip-a.com": "clean", "flip-b.com": "suspicious"})

    def recheck():
        emitted = run("vex-kb", "watchlist", "prio", "--emit", env=env).stdout
        looked = run("vex-lookup", "--refresh", "--fail-on", "none", input=emitted, env=env).stdout
        return run("vex-kb", "changed", input=looked, env=env)

    first = recheck()
    assert first.returncode == 0 and first.stdout == b""  # a baseline, nothing changed yet
    vt.profiles.update({"flip-a.com": "malicious", "flip-b.com": "clean"})
    second = recheck()
    changes = {r["ioc"]: r["kb_change"] for r in lines(second.stdout)}
    assert changes == {"flip-a.com": {"from": "CLEAN", "to": "MALICIOUS", "worse": True},
                       "flip-b.com": {"from": "SUSPICIOUS", "to": "CLEAN", "worse": False}}
    assert second.returncode == 1
    history = lines(run("vex-kb", "show", "flip-a.com", env=env).stdout)[0]["verdicts"]
    assert [h["verdict"] for h in history] == ["CLEAN", "MALICIOUS"]  # both checks kept, even within a second
    assert all(h["checked"].endswith("Z") and "." in h["checked"] for h in history)


def test_kb_allowlist_is_honoured_by_lookup(env, vt):
    run("vex-kb", "allow", "partner-clean.com", env=env)
    run("vex-kb", "allow", "93.184.216.0/24", env=env)
    recs = lines(run("vex-lookup", input="www.partner-clean.com\n93.184.216.34\nclean-z.com\n", env=env).stdout)
    assert [r["vt"].get("skipped") for r in recs] == ["allowlisted", "allowlisted", None]
    assert [r.path for r in vt.requests()] == ["/api/v3/domains/clean-z.com"]


# --- vex-fmt --------------------------------------------------------------------------------

def test_fmt_console_shows_the_key_facts_of_an_investigation(env, vt):
    sha = "8f3a1c2b4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8"
    vt.profiles.update({"malicious-drop.com": "malicious", sha: "malicious"})
    looked = run("vex-lookup", "--investigate", "--fail-on", "none", input=f"malicious-drop.com\n45.83.193.150\n{sha}\n",
                 env={**env, "VT_API_KEY": "test-key-premium", "VEXPIPE_TIER": "premium"})
    assert looked.returncode == 0, looked.stderr
    text = run("vex-fmt", "--format", "console", input=looked.stdout).stdout.decode()
    blocks = {b.split("  ")[1]: b for b in text.strip().split("\n\n")}
    domain, ip, file = blocks["malicious-drop.com"], blocks["45.83.193.150"], blocks[sha]
    assert re.search(r"registered +NameCheap, Inc\., created 20\d\d-\d\d-\d\d, expires", domain)
    assert re.search(r"resolutions +3: 203\.0\.113\.\d+ \(20", domain)  # the other side, with its date
    assert re.search(r"dns +A 203\.0\.113\.77", domain) and "subdomains" in domain
    assert re.search(r"resolutions +\d+: \S+\.\S+ \(20", ip) and re.search(r"network +45\.83\.193\.0/24 AS\d+", ip)
    assert re.search(r"sandbox +Zenbox: malicious \(Emotet\)", file) and re.search(r"yara +Emotet_Loader_2025", file)
    assert re.search(r"commands +cmd\.exe /c schtasks", file) and re.search(r"contacted ips +2: ", file)
    assert "registered" not in file  # files have a creation date, not a registration


HOSTILE = {"ioc": "http://evil.com/\u001b[2J\u001b]0;pwned\u0007", "type": "url", "verdict": "MALICIOUS",
           "vt": {"title": "\u001b[31mFAKE\u001b[0m\r\nnext line\u202etxt.exe", "stats": {"malicious": 5, "undetected": 60},
                  "meaningful_name": "=HYPERLINK(\"http://x\")"}}


def test_fmt_never_prints_control_characters():
    for fmt in ("table", "console", "markdown", "csv", "timeline"):
        p = run("vex-fmt", "--format", fmt, input=orjson.dumps(HOSTILE) + b"\n")
        assert p.returncode == 0, p.stderr
        text = p.stdout.decode()
        assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text and "\r" not in text, fmt
        assert "\\x1b" in text or fmt == "timeline"


def test_fmt_csv_neutralises_formulas():
    recs = [{"ioc": v, "type": "domain", "verdict": "CLEAN", "vt": {"meaningful_name": v}}
            for v in ("=1+2", "+cmd", "-2", "@SUM(A1)", "\tx", "plain")]
    p = run("vex-fmt", "--format", "csv", input=b"".join(orjson.dumps(r) + b"\n" for r in recs))
    rows = list(csv.reader(io.StringIO(p.stdout.decode())))
    assert rows[0][:3] == ["verdict", "type", "ioc"]
    for row in rows[1:]:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), row
    assert rows[1][2] == "'=1+2" and rows[-1][2] == "plain"


def test_fmt_defang_and_colour_rules():
    rec = {"ioc": "http://evil.com/a", "type": "url", "verdict": "MALICIOUS",
           "vt": {"relationships": {"contacted_domains": {"items": [{"id": "c2.evil.net"}]}},
                  "sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
           "seen": {"match": "user bob@evil.com at 1.2.3.4"}}
    out = lines(run("vex-fmt", "--format", "ndjson", "--defang", input=orjson.dumps(rec)).stdout)[0]
    assert out["ioc"] == "hxxp[://]evil[.]com/a"
    assert out["vt"]["relationships"]["contacted_domains"]["items"][0]["id"] == "c2[.]evil[.]net"
    assert out["vt"]["sha256"] == rec["vt"]["sha256"]
    assert out["seen"]["match"] == "user bob[@]evil[.]com at 1[.]2[.]3[.]4"
    # Not a terminal here: no colour, whatever is asked.
    assert b"\x1b[" not in run("vex-fmt", input=orjson.dumps(rec)).stdout


def test_fmt_colour_only_on_a_terminal_and_never_with_no_color():
    rec = orjson.dumps({"ioc": "evil.com", "type": "domain", "verdict": "MALICIOUS"}) + b"\n"

    def through_pty(extra_env, *args):
        return run_on_terminal("vex-fmt", *args, stream="stdout", input=rec, env={**os.environ, **extra_env})

    assert b"\x1b[1;31m" in through_pty({})
    assert b"\x1b[" not in through_pty({"NO_COLOR": "1"})
    assert b"\x1b[" not in through_pty({}, "--no-color")


def test_fmt_summary_and_timeline_view():
    recs = b'{"ioc":"a.com","type":"domain","verdict":"CLEAN"}\n{"ioc":"1.1.1.1","type":"ipv4","verdict":"MALICIOUS"}\n'
    p = run("vex-fmt", "--summary", input=recs)
    assert b"verdicts: CLEAN 1, MALICIOUS 1" in p.stdout or b"verdicts: MALICIOUS 1, CLEAN 1" in p.stdout
    p = run("vex-fmt", "--format", "ndjson", "--summary", input=recs)
    assert len(p.stdout.splitlines()) == 2 and b"types:" in p.stderr
    event = b'{"time":"2026-01-02T03:04:05Z","ioc":"a.com","type":"domain","event":"whois_created","source":"virustotal","detail":"x"}\n'
    assert run("vex-fmt", "--format", "timeline", input=event).stdout.startswith(b"2026-01-02 03:04:05Z  a.com  whois_created")


# --- the demo and the README ----------------------------------------------------------------

def test_demo_runs_offline(tmp_path, isolated_env):
    env = {**isolated_env, "PATH": f"{BIN}:{os.environ['PATH']}", "OUT": str(tmp_path / "out")}
    env.pop("VT_API_KEY", None)
    p = subprocess.run(["bash", str(ROOT / "examples" / "demo.sh")], capture_output=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    assert b"MALICIOUS" in p.stdout and b"update-checker.xyz" in p.stdout
    out = tmp_path / "out"
    bundle = json.loads((out / "bundle.json").read_text())
    assert any(o["type"] == "report" for o in bundle["objects"])
    assert json.loads((out / "navigator-layer.json").read_text())["techniques"]
    enriched = [json.loads(line) for line in (out / "enriched.ndjson").read_text().splitlines()]
    assert any(r.get("kb", {}).get("tags") == ["case-42", "stage-1"] for r in enriched)


def quickstart_commands() -> list[str]:
    """The commands of the README's quickstart block (between its markers)."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- quickstart -->\s*```sh\n(.*?)```", text, re.S).group(1)
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


def test_readme_quickstart_runs(tmp_path, isolated_env):
    commands = quickstart_commands()
    assert 3 <= len(commands) <= 6
    env = {**isolated_env, "PATH": f"{BIN}:{os.environ['PATH']}"}
    for command in commands:
        if command.startswith(("make ", ". ", "git clone", "cd ")):
            continue  # set-up steps: the suite already runs inside that venv
        p = subprocess.run(["bash", "-c", command], cwd=ROOT, capture_output=True, env=env, timeout=120)
        assert p.returncode == 0, (command, p.stderr)
        assert p.stdout or p.stderr, command
