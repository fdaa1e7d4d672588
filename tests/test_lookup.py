"""vex-lookup against a VirusTotal-compatible server on 127.0.0.1, through real sockets,
real pipes and a real sqlite file."""

from __future__ import annotations

import os
import select
import signal
import socket
import sqlite3
import subprocess
import textwrap
import time

import orjson
import pytest

from conftest import FREE_KEY, exe, run, run_on_terminal
from vtserver import Fault

def lookup(env, *args, input="", timeout=120):
    return run("vex-lookup", *args, input=input, env=env, timeout=timeout)


def out(p) -> list[dict]:
    return [orjson.loads(line) for line in p.stdout.splitlines()]


# --- records -------------------------------------------------------------------------------

def test_triage_every_type(env, vt):
    iocs = ["evil-c2.com", "8.8.8.8", "2a00:1450:4001:81b::200e", "suspicious-login.net", "clean-shop.org",
            "notfound-nothing.com", "http://malicious-site.com/gate.php",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"]
    vt.profiles.update({"8.8.8.8": "clean", "2a00:1450:4001:81b::200e": "fewengines",
                        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855": "malicious"})
    p = lookup(env, input="\n".join(iocs) + "\n")
    recs = out(p)
    assert [r["ioc"] for r in recs] == iocs
    assert [r["verdict"] for r in recs] == ["MALICIOUS", "CLEAN", "UNKNOWN", "SUSPICIOUS", "CLEAN", "UNKNOWN",
                                            "MALICIOUS", "MALICIOUS"]
    assert p.returncode == 2
    evil = recs[0]["vt"]
    assert evil["stats"]["malicious"] == 12
    assert evil["link"] == "https://www.virustotal.com/gui/domain/evil-c2.com"
    assert evil["registrar"] == "NameCheap, Inc." and evil["creation_date"].endswith("Z")
    assert evil["verdict_reason"] == "12/70 engines flag it malicious"
    assert evil["requests"] == 1 and evil["cached"] is False
    assert recs[1]["vt"]["asn"] and recs[1]["vt"]["as_owner"] == "EXAMPLE-HOSTING-AS"
    assert recs[2]["vt"]["verdict_reason"].startswith("only 5 engines answered")
    assert recs[5]["vt"] == {**recs[5]["vt"], "found": False}
    url = recs[6]["vt"]
    assert url["title"] and url["link"].startswith("https://www.virustotal.com/gui/url/")
    f = recs[7]["vt"]
    assert f["popular_threat_classification"]["label"] == "trojan.emotet/heodo"
    assert f["pe_compile_time"].endswith("Z") and f["sandbox_verdicts"][0]["sandbox"] == "Zenbox"
    assert f["crowdsourced_yara"][0]["rule_name"] == "Emotet_Loader_2025"
    # The URL travelled as unpadded URL-safe base64.
    url_req, = vt.requests(path="/urls/")
    assert "=" not in url_req.path and url_req.path.endswith("aHR0cDovL21hbGljaW91cy1zaXRlLmNvbS9nYXRlLnBocA")


def test_events_are_enriched_in_place(env, vt):
    event = {"ts": "2026-11-28T02:18:11Z", "host": "DC01", "iocs": [
        {"ioc": "evil-c2.com", "type": "domain", "seen": {"line": 3}}, {"ioc": "10.1.2.3", "type": "ipv4"}]}
    p = lookup(env, input=orjson.dumps(event) + b"\n")
    got, = out(p)
    assert got["ts"] == event["ts"] and got["host"] == "DC01"
    assert got["iocs"][0]["verdict"] == "MALICIOUS" and got["iocs"][0]["seen"] == {"line": 3}
    assert got["iocs"][1]["vt"] == {"skipped": "private"}


def test_every_record_comes_out_even_bad_lines(env, vt):
    p = lookup(env, input='clean-a.com\n{"broken\nnot an ioc at all\n{"no":"iocs"}\n[1,2]\nclean-b.com\n')
    recs = out(p)
    assert len(recs) == 6
    assert recs[0]["ioc"] == "clean-a.com" and recs[5]["ioc"] == "clean-b.com"
    assert recs[1]["errors"][0]["code"] == "bad_json" and recs[1]["raw"] == '{"broken'
    assert recs[2]["errors"][0]["code"] == "not_an_ioc"
    assert recs[3] == {"no": "iocs"} and recs[4] == [1, 2]
    assert b"<stdin>:2: invalid JSON" in p.stderr
    strict = lookup(env, "--strict", input='clean-a.com\n{"broken\n')
    assert strict.returncode == 65


# --- what goes over the wire ------------------------------------------------------------------

def test_privacy_guard_never_sends(env, vt):
    private = ["10.0.0.1", "192.168.1.10", "127.0.0.1", "fe80::1", "dc01.corp.local", "printer.home.arpa",
               "http://10.1.1.1/admin", "http://intranet.internal/x", "169.254.169.254", "203.0.113.9"]
    cfg = os.path.join(env["XDG_CONFIG_HOME"], "vexpipe")
    os.makedirs(cfg)
    with open(os.path.join(cfg, "config.toml"), "w") as f:
        f.write('[privacy]\nallowlist = ["partner.example.com", "93.184.216.0/24"]\n')
    allowed = ["api.partner.example.com", "93.184.216.34"]
    p = lookup(env, input="\n".join(private + allowed + ["clean-x.com"]) + "\n")
    recs = out(p)
    assert [r["vt"].get("skipped") for r in recs[:-1]] == ["private", "private", "loopback", "link-local",
                                                          "reserved-name", "reserved-name", "private",
                                                          "reserved-name", "link-local", "private",
                                                          "allowlisted", "allowlisted"]
    assert "verdict" not in recs[0]
    sent = [r.path for r in vt.requests()]
    assert sent == ["/api/v3/domains/clean-x.com"]


def test_key_only_in_header(env, vt):
    lookup(env, input="clean-a.com\nhttp://clean-b.com/?q=1\n8.8.4.4\n")
    assert vt.requests()
    for r in vt.requests():
        assert r.key == FREE_KEY
        assert FREE_KEY not in r.path and FREE_KEY not in orjson.dumps(r.query).decode()


def test_duplicates_in_a_run_are_looked_up_once(env, vt):
    p = lookup(env, input="clean-a.com\nclean-a.com\nCLEAN-A.COM\nclean-a[.]com\n")
    recs = out(p)
    assert len(recs) == 4 and len(vt.requests()) == 1
    assert [r["vt"]["requests"] for r in recs] == [1, 0, 0, 0]


def test_once_a_run_even_past_the_memory_bound_and_with_refresh(env, vt):
    from vexpipe.cli.lookup import MEMO

    lookup(env, input="clean-0.com\n")  # an answer from before the run: --refresh must not use it
    vt.log.clear()
    names = [f"clean-{i}.com" for i in range(MEMO + 1)] + ["clean-0.com", "clean-1.com"]
    p = lookup({**env, "VT_API_KEY": "test-key-premium"}, "--refresh", "--tier", "premium", "-j", "16",
               input="".join(n + "\n" for n in names), timeout=300)
    recs = out(p)
    assert p.returncode == 0 and [r["ioc"] for r in recs] == names
    # clean-0.com and clean-1.com left the in-memory bound: answered by what this run cached.
    assert len(vt.requests()) == MEMO + 1
    assert recs[-2]["vt"]["requests"] == 0 and recs[-2]["vt"]["cached"]


def test_cache_is_shared_and_honoured(env, vt):
    lookup(env, input="evil-a.com\n8.8.8.8\n")
    assert len(vt.requests()) == 2
    again = out(lookup(env, input="evil-a.com\n8.8.8.8\n"))
    assert len(vt.requests()) == 2  # no second request for a cached IOC
    assert [r["vt"]["cached"] for r in again] == [True, True]
    assert again[0]["verdict"] == "MALICIOUS" and again[0]["vt"]["requests"] == 0
    lookup(env, "--no-cache", input="evil-a.com\n")
    assert len(vt.requests()) == 3
    vt.profiles["evil-a.com"] = "clean"
    fresh = out(lookup(env, "--refresh", input="evil-a.com\n"))
    assert fresh[0]["verdict"] == "CLEAN" and len(vt.requests()) == 4
    assert out(lookup(env, input="evil-a.com\n"))[0]["verdict"] == "CLEAN"  # refresh wrote the cache


def test_offline_never_touches_the_network(env, vt):
    lookup(env, input="evil-a.com\n")
    env = {**env, "VEXPIPE_BASE_URL": "http://127.0.0.1:9/api/v3"}  # nothing listens there
    env.pop("VT_API_KEY")
    p = lookup(env, "--offline", input="evil-a.com\nnever-seen.com\n")
    recs = out(p)
    assert recs[0]["verdict"] == "MALICIOUS" and recs[0]["vt"]["cached"] is True
    assert recs[1]["errors"] == [{"stage": "lookup", "code": "offline_miss",
                                  "message": "not in the cache and --offline forbids asking"}]
    assert p.returncode == 2  # MALICIOUS outranks incomplete
    p = lookup(env, "--offline", input="never-seen.com\n")
    assert p.returncode == 3


def test_expired_entries_are_refetched_but_serve_offline(env, vt):
    lookup(env, input="clean-a.com\n")
    db = os.path.join(env["XDG_CACHE_HOME"], "vexpipe", "cache.sqlite3")
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE cache SET expires_at = 1")
    stale = out(lookup(env, "--offline", input="clean-a.com\n"))[0]
    assert stale["vt"]["stale"] is True and stale["verdict"] == "CLEAN"
    lookup(env, input="clean-a.com\n")
    assert len(vt.requests()) == 2


def test_no_submission_without_submit(env, vt):
    p = lookup(env, input="http://notfound-new.com/landing\n")
    assert out(p)[0]["vt"]["found"] is False and out(p)[0]["verdict"] == "UNKNOWN"
    assert vt.requests(method="POST") == []
    p = lookup(env, "--submit", "--refresh", input="http://notfound-new.com/landing\n")
    rec = out(p)[0]
    posts = vt.requests(method="POST")
    assert len(posts) == 1 and posts[0].path == "/api/v3/urls"
    assert len(vt.requests(path="/analyses/")) == 2
    assert rec["vt"]["submitted"]["status"] == "completed"
    assert rec["verdict"] == "CLEAN" and rec["vt"]["found"] is True


# --- failures ------------------------------------------------------------------------------

@pytest.mark.parametrize("fault", [
    Fault("status", count=2, status=503), Fault("status", count=1, status=500), Fault("reset", count=2),
    Fault("truncate"), Fault("nonjson"), Fault("garbage"), Fault("429", count=2, retry_after=0.2), Fault("429"),
    Fault("hang", seconds=3),
])
def test_transient_faults_are_retried(env, vt, fault):
    vt.faults.append(fault)
    p = lookup(env, "--timeout", "1", input="evil-a.com\n")
    rec, = out(p)
    assert rec["verdict"] == "MALICIOUS", (rec, p.stderr)
    assert "errors" not in rec
    assert p.returncode == 2


def test_retry_after_is_honoured_across_requests(env, vt):
    vt.faults.append(Fault("429", retry_after=1.5))
    start = time.monotonic()
    p = lookup(env, input="clean-a.com\n")
    assert out(p)[0]["verdict"] == "CLEAN"
    first, second = vt.requests()
    assert second.t - first.t >= 1.4
    assert time.monotonic() - start < 20


@pytest.mark.parametrize("fault, code", [(Fault("status", count=99, status=503), "http_5xx"),
                                         (Fault("reset", count=99), "network"),
                                         (Fault("nonjson", count=99), "bad_response"),
                                         (Fault("hang", count=99, seconds=2), "timeout")])
def test_persistent_failure_is_a_record_with_an_error(env, vt, fault, code):
    vt.faults.append(fault)
    vt.profiles["clean-b.com"] = "clean"
    p = lookup(env, "--timeout", "0.5", input="clean-a.com\nclean-b.com\n", timeout=180)
    recs = out(p)
    assert [r["ioc"] for r in recs] == ["clean-a.com", "clean-b.com"]
    assert recs[0]["errors"][0]["code"] == code and recs[0]["errors"][0]["stage"] == "lookup"
    assert "verdict" not in recs[0]
    assert p.returncode == (69 if code in ("network", "timeout") else 3)
    assert b"Traceback" not in p.stderr


def test_a_provider_that_is_down_costs_one_attempt_per_ioc(env, vt):
    from vexpipe.config import Config
    from vexpipe.vtprovider import DOWN_AFTER

    attempts = Config().retries + 1
    vt.faults.append(Fault("status", count=999, status=503))
    iocs = [f"clean-{i}.com" for i in range(DOWN_AFTER + 3)]
    p = lookup(env, "-j", "1", input="".join(i + "\n" for i in iocs))
    recs = out(p)
    assert [r["errors"][0]["code"] for r in recs] == ["http_5xx"] * len(iocs) and p.returncode == 3
    # The first ones get every retry; once they failed in a row, the rest are tried once.
    assert len(vt.requests()) == DOWN_AFTER * attempts + 3
    vt.faults.clear()
    p = lookup(env, "-j", "1", input="clean-ok.com\n")
    assert out(p)[0]["verdict"] == "CLEAN"


def test_incomplete_is_not_clean(env, vt):
    vt.faults.append(Fault("status", count=99, status=503, match="broken-one"))
    p = lookup(env, input="clean-a.com\nclean-broken-one.com\n")
    assert p.returncode == 3
    p = lookup(env, "--fail-on", "none", input="clean-broken-one.com\n")
    assert p.returncode == 0


def test_unreachable_provider_exits_69(env):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens
    p = lookup({**env, "VEXPIPE_BASE_URL": f"http://127.0.0.1:{port}/api/v3"}, input="clean-a.com\n")
    assert p.returncode == 69
    assert out(p)[0]["errors"][0]["code"] == "network"


def test_ctrl_c_still_writes_every_record_read(env, vt):
    lookup(env, input="clean-known.com\n")  # cached: answered at once in the next run
    vt.latency = 5
    proc = subprocess.Popen([exe("vex-lookup")], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    proc.stdin.write(b"clean-slow-1.com\nclean-known.com\nclean-slow-2.com\n")
    proc.stdin.flush()
    deadline = time.monotonic() + 10
    while len(vt.requests()) < 3 and time.monotonic() < deadline:  # both slow lookups are under way
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, err = proc.communicate(timeout=10)
    assert proc.returncode == 130 and b"Traceback" not in err and b"interrupted" in err
    recs = [orjson.loads(line) for line in stdout.splitlines()]
    assert [r["ioc"] for r in recs] == ["clean-slow-1.com", "clean-known.com", "clean-slow-2.com"]
    assert recs[1]["verdict"] == "CLEAN" and recs[1]["vt"]["cached"]
    for r in (recs[0], recs[2]):
        assert r["errors"][0]["code"] == "interrupted" and "verdict" not in r


def test_refused_key_stops_with_77(env, vt):
    p = lookup({**env, "VT_API_KEY": "not-a-valid-key"}, input="clean-a.com\nclean-b.com\n")
    assert p.returncode == 77
    assert b"refused the API key" in p.stderr and b"Traceback" not in p.stderr
    assert b"not-a-valid-key" not in p.stderr + p.stdout
    assert len(vt.requests()) <= 4


def test_missing_key_exits_77(env):
    env = dict(env)
    env.pop("VT_API_KEY")
    p = lookup(env, input="clean-a.com\n")
    assert p.returncode == 77 and b"VT_API_KEY" in p.stderr


def test_daily_quota_marks_the_rest(env, vt):
    p = lookup(env, "--per-day", "2", input="clean-a.com\nclean-b.com\nclean-c.com\nclean-d.com\n")
    recs = out(p)
    assert len(recs) == 4
    assert [r.get("verdict") for r in recs].count("CLEAN") == 2  # which two is a race between workers
    failed = [r["errors"][0] for r in recs if "errors" in r]
    assert [e["code"] for e in failed] == ["quota_exceeded", "quota_exceeded"]
    assert "resets at" in failed[0]["message"]
    assert p.returncode == 3 and len(vt.requests()) == 2


def test_wait_quota_waits_for_the_day_instead_of_failing(env, vt):
    proc = subprocess.Popen([exe("vex-lookup"), "--per-day", "1", "--wait-quota"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    proc.stdin.write(b"clean-a.com\nclean-b.com\n")
    proc.stdin.close()
    first = orjson.loads(proc.stdout.readline())  # the first goes at once and is written at once
    assert first["ioc"] == "clean-a.com" and first["verdict"] == "CLEAN"
    time.sleep(2)
    assert proc.poll() is None and len(vt.requests()) == 1  # the second waits for 00:00 UTC
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=10) == 130
    assert orjson.loads(proc.stdout.read())["errors"][0]["code"] == "interrupted"


class ForwardProxy:
    """A plain HTTP forward proxy on 127.0.0.1 (absolute-URI requests), logging what it relays."""

    def __init__(self):
        import http.client
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import urlsplit

        seen = self.seen = []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                seen.append((self.path, dict(self.headers)))
                target = urlsplit(self.path)
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=10)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("proxy-connection", "host")}
                conn.request("GET", target.path + (f"?{target.query}" if target.query else ""), headers=headers)
                answer = conn.getresponse()
                body = answer.read()
                self.send_response(answer.status)
                for k, v in answer.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_http_proxy_from_the_environment_is_used_and_no_proxy_honoured(env, vt):
    proxy = ForwardProxy()
    try:
        clean = {k: v for k, v in env.items() if k.lower() not in ("http_proxy", "https_proxy", "no_proxy", "all_proxy")}
        p = lookup({**clean, "HTTP_PROXY": proxy.url}, input="clean-a.com\n")
        assert p.returncode == 0 and out(p)[0]["verdict"] == "CLEAN", p.stderr
        [(path, headers)] = proxy.seen
        assert path.startswith(vt.base_url + "/domains/clean-a.com") and FREE_KEY not in path
        assert headers.get("x-apikey") == FREE_KEY  # in its header only
        p = lookup({**clean, "HTTP_PROXY": proxy.url, "NO_PROXY": "127.0.0.1"}, "--refresh", input="clean-a.com\n")
        assert p.returncode == 0 and len(proxy.seen) == 1 and len(vt.requests()) == 2  # straight to the server
    finally:
        proxy.stop()


def test_usage_and_config_errors(env):
    assert lookup(env, "--jobs", "0").returncode == 64
    assert lookup(env, "--offline", "--refresh").returncode == 64
    assert lookup(env, "--provider", "nope", input="a.com\n").returncode == 64
    bad = lookup({**env, "VEXPIPE_BASE_URL": "http://example.com/api/v3"}, input="clean-a.com\n")
    assert bad.returncode == 78 and b"loopback" in bad.stderr
    assert lookup({**env, "VEXPIPE_TIER": "gold"}, input="clean-a.com\n").returncode == 78


# --- configuration and the key ---------------------------------------------------------------

def test_precedence_flag_over_env_over_file(env, vt):
    cfg = os.path.join(env["XDG_CONFIG_HOME"], "vexpipe")
    os.makedirs(cfg)
    with open(os.path.join(cfg, "config.toml"), "w") as f:
        f.write('[virustotal]\nbase_url = "http://127.0.0.1:9/api/v3"\n')
    os.chmod(os.path.join(cfg, "config.toml"), 0o644)
    assert lookup(env, input="clean-a.com\n").returncode == 0  # environment beats file
    no_env = {k: v for k, v in env.items() if k != "VEXPIPE_BASE_URL"}
    assert lookup(no_env, "--base-url", vt.base_url, input="clean-a.com\n").returncode == 0  # flag beats file
    assert lookup(no_env, "--refresh", input="clean-a.com\n").returncode == 69  # the file is used


def test_set_key_writes_0600_and_is_used(env, vt):
    no_key = {k: v for k, v in env.items() if k != "VT_API_KEY"}
    p = run("vex-lookup", "--set-key", input=FREE_KEY + "\n", env=no_key)
    assert p.returncode == 0, p.stderr
    path = os.path.join(env["XDG_CONFIG_HOME"], "vexpipe", "credentials.toml")
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert FREE_KEY.encode() not in p.stderr + p.stdout
    assert lookup(no_key, input="clean-a.com\n").returncode == 0
    os.chmod(path, 0o644)
    p = lookup(no_key, input="clean-a.com\n")
    assert b"readable by others" in p.stderr and b"chmod 600" in p.stderr


def test_key_flag_warns_about_ps(env, vt):
    p = lookup({k: v for k, v in env.items() if k != "VT_API_KEY"}, "-k", FREE_KEY, input="clean-a.com\n")
    assert p.returncode == 0 and b"shows in ps" in p.stderr
    assert FREE_KEY.encode() not in p.stderr


def test_key_never_in_cache_file(env, vt):
    lookup(env, input="evil-a.com\n")
    db = os.path.join(env["XDG_CACHE_HOME"], "vexpipe", "cache.sqlite3")
    for suffix in ("", "-wal"):
        if os.path.exists(db + suffix):
            assert FREE_KEY.encode() not in open(db + suffix, "rb").read()


# --- cache file ------------------------------------------------------------------------------

def test_corrupt_cache_is_moved_aside(env, vt):
    d = os.path.join(env["XDG_CACHE_HOME"], "vexpipe")
    os.makedirs(d)
    with open(os.path.join(d, "cache.sqlite3"), "wb") as f:
        f.write(b"this is not a database" * 100)
    p = lookup(env, input="evil-a.com\n")
    assert out(p)[0]["verdict"] == "MALICIOUS"
    assert b"unreadable" in p.stderr and b"moved to" in p.stderr
    assert any(n.startswith("cache.sqlite3.corrupt-") for n in os.listdir(d))
    again = lookup(env, input="evil-a.com\n")
    assert out(again)[0]["vt"]["cached"] is True and again.stderr == b""


def test_vex_cache_stats_export_import_prune_clear(env, vt):
    lookup(env, input="evil-a.com\nclean-b.com\n")
    stats = orjson.loads(run("vex-cache", "stats", env=env).stdout)
    assert stats["entries"] == 2 and stats["keys"][0]["today"] == 2
    assert FREE_KEY not in orjson.dumps(stats).decode()
    exported = run("vex-cache", "export", env=env).stdout
    assert len(exported.splitlines()) == 2
    other = {**env, "XDG_CACHE_HOME": env["XDG_CACHE_HOME"] + "-airgap"}
    p = run("vex-cache", "import", input=exported, env=other)
    assert b"imported 2" in p.stderr
    assert b"imported 0" in run("vex-cache", "import", input=exported, env=other).stderr
    offline = out(lookup({k: v for k, v in other.items() if k != "VT_API_KEY"}, "--offline",
                         input="evil-a.com\nclean-b.com\n"))
    assert [r["verdict"] for r in offline] == ["MALICIOUS", "CLEAN"]
    assert offline[0]["vt"]["stats"]["malicious"] == 12
    assert "raw" not in offline[0]["vt"]  # re-derived from the raw answer, which stays out without --raw
    assert b"removed 0" in run("vex-cache", "prune", env=env).stderr
    assert b"removed 2" in run("vex-cache", "clear", env=env).stderr
    assert orjson.loads(run("vex-cache", "stats", env=env).stdout)["entries"] == 0


# --- output order, streaming, filters --------------------------------------------------------

def test_order_is_kept_with_concurrency(env, vt):
    vt.latency = 0.05
    iocs = [f"clean-{i}.com" for i in range(40)]
    vt.faults.append(Fault("hang", count=1, seconds=0.5, match="clean-0.com"))
    p = lookup(env, "-j", "8", input="\n".join(iocs) + "\n")
    assert [r["ioc"] for r in out(p)] == iocs
    p = lookup(env, "-j", "8", "--unordered", "--refresh", input="\n".join(iocs) + "\n")
    assert sorted(r["ioc"] for r in out(p)) == sorted(iocs)


def test_records_stream_before_input_ends(env, vt):
    proc = subprocess.Popen([exe("vex-lookup")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    try:
        for name in ("clean-a.com", "evil-b.com"):
            proc.stdin.write(name.encode() + b"\n")
            proc.stdin.flush()
            ready, _, _ = select.select([proc.stdout], [], [], 10)
            assert ready, "no record while the input stays open"
            assert orjson.loads(proc.stdout.readline())["ioc"] == name
    finally:
        proc.stdin.close()
        proc.wait(timeout=20)


def test_head_sends_only_a_handful(env, vt, tmp_path):
    vt.latency = 0.05
    path = tmp_path / "many"
    path.write_text("".join(f"clean-{i}.com\n" for i in range(10_000)))
    p = subprocess.run(["bash", "-c", f'{exe("vex-lookup")} "$1" | head -1', "_", str(path)],
                       capture_output=True, env=env, timeout=60)
    assert orjson.loads(p.stdout)["ioc"] == "clean-0.com"
    time.sleep(0.3)
    assert len(vt.requests()) <= 16


def test_alert_and_summary(env, vt):
    p = lookup(env, "--alert", "SUSPICIOUS", "--summary",
               input="clean-a.com\nevil-b.com\nsuspicious-c.com\n10.0.0.1\n{bad\n")
    recs = out(p)
    assert [r.get("ioc") for r in recs] == ["evil-b.com", "suspicious-c.com", None]
    assert b"5 IOCs" not in p.stderr
    assert b"1 MALICIOUS, 1 SUSPICIOUS, 1 CLEAN, 1 skipped" in p.stderr


# --- investigate -----------------------------------------------------------------------------

def test_investigate_domain_file_url(env, vt):
    sha = "8f3a1c2b4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8"
    vt.profiles[sha] = "malicious"
    p = lookup(env, "--investigate", input=f"evil-a.com\n{sha}\nhttp://evil-b.com/x\n8.8.8.8\n")
    dom, f, url, ip = out(p)
    rels = dom["vt"]["relationships"]
    assert rels["resolutions"]["items"][0]["date"].endswith("Z") and rels["resolutions"]["items"][0]["ip_address"]
    assert rels["historical_whois"]["items"][0]["registrar"] == "NameCheap, Inc."
    assert rels["subdomains"]["count"] == 2 and "communicating_files" in rels
    assert dom["vt"]["requests"] == 3
    assert set(f["vt"]["relationships"]) >= {"contacted_domains", "contacted_ips", "contacted_urls",
                                             "dropped_files", "execution_parents"}
    assert f["vt"]["relationships"]["contacted_urls"]["items"][0]["url"] == "http://update-checker.xyz/i.sh"
    ids = [t["id"] for t in f["vt"]["behaviour"]["mitre_attack_techniques"]]
    assert "T1055" in ids and f["vt"]["behaviour"]["tags"][0] == "LONG_SLEEPS"
    assert f["vt"]["behaviour_mitre_trees"]["Zenbox"][0]["techniques"][0]["id"] == "T1053.005"
    # Sandbox reports: when and where each ran, without the full report.
    sandboxes = f["vt"]["relationships"]["behaviours"]["items"]
    assert [(b["sandbox_name"], b["analysis_date"]) for b in sandboxes] == [
        ("Zenbox", "2025-11-28T00:00:00Z"), ("CAPE Sandbox", "2025-11-25T00:00:00Z")]
    db = os.path.join(env["XDG_CACHE_HOME"], "vexpipe", "cache.sqlite3")
    with sqlite3.connect(db) as conn:
        raw, = conn.execute("SELECT raw FROM cache WHERE ioc = ?", (sha,)).fetchone()
    assert b"Zenbox" in raw and b"processes_tree" not in raw  # reports trimmed before caching
    assert f["vt"]["requests"] == 4
    assert url["vt"]["relationships"]["last_serving_ip_address"]["items"][0]["id"] == "203.0.113.77"
    assert url["vt"]["requests"] == 1 and ip["vt"]["requests"] == 2
    query = vt.requests(path="/domains/evil-a.com")[0].query
    assert query["relationships"] == "communicating_files,subdomains"
    # Triage is served from an investigate answer in the cache.
    assert out(lookup(env, input="evil-a.com\n"))[0]["vt"]["cached"] is True


def test_premium_relationships_degrade_on_403(env, vt):
    p = lookup(env, "--investigate", "--tier", "premium", input="evil-a.com\n")
    rec, = out(p)
    assert rec["verdict"] == "MALICIOUS"
    assert rec["vt"]["relationships"]["urls"] == {"available": False,
                                                  "reason": "not available with this API key (premium)"}
    assert "urls" not in vt.requests(path="/domains/evil-a.com")[-1].query.get("relationships", "")
    free = lookup(env, "--investigate", "--refresh", input="evil-a.com\n")
    assert "urls" not in vt.requests(path="/domains/evil-a.com")[-1].query.get("relationships", "")
    assert "urls" not in out(free)[0]["vt"]["relationships"]


def test_premium_key_gets_premium_relationships(env, vt):
    p = lookup({**env, "VT_API_KEY": "test-key-premium"}, "--investigate", "--tier", "premium",
               input="evil-a.com\n")
    rels = out(p)[0]["vt"]["relationships"]
    assert "count" in rels["urls"] and "downloaded_files" in rels


def test_raw_adds_the_api_answer(env, vt):
    rec = out(lookup(env, "--raw", input="evil-a.com\n"))[0]
    assert rec["vt"]["raw"]["object"]["attributes"]["last_analysis_results"]
    cached = out(lookup(env, "--raw", input="evil-a.com\n"))[0]
    assert cached["vt"]["cached"] and cached["vt"]["raw"]["object"]["id"] == "evil-a.com"


# --- providers -------------------------------------------------------------------------------

def test_third_party_provider_through_entry_point(env, vt, tmp_path):
    (tmp_path / "tinyprov.py").write_text(textwrap.dedent('''
        from vexpipe.providers import Fetched

        class Tiny:
            name = "tiny"
            record_key = "tiny"
            summary_version = 1
            types = frozenset({"domain", "ipv4"})

            def __init__(self, config, ctx):
                self.ctx = ctx

            def fetch(self, ioc_type, ioc, mode):
                return Fetched({"score": len(ioc)}, True, 0)

            def summarize(self, raw, found):
                return {"score": raw["score"]}

            def verdict(self, summary):
                return ("SUSPICIOUS" if summary["score"] > 10 else "CLEAN"), "by length"
    '''))
    dist = tmp_path / "tinyprov-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: tinyprov\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[vexpipe.providers]\ntiny = tinyprov:Tiny\n")
    penv = {**env, "PYTHONPATH": str(tmp_path)}
    penv.pop("VT_API_KEY")
    p = lookup(penv, "--provider", "tiny", input="short.io\nmuch-longer-name.com\n8.8.8.8\nbob@x.com\n")
    recs = out(p)
    assert [r.get("verdict") for r in recs] == ["CLEAN", "SUSPICIOUS", "CLEAN", None]
    assert recs[1]["tiny"]["score"] == 20 and recs[3]["tiny"]["skipped"].startswith("unsupported-type")
    assert p.returncode == 1 and vt.requests() == []


# --- the shared rate limit, across processes ----------------------------------------------------

def test_parallel_processes_share_one_minute_quota(env, vt):
    """Four vex-lookup processes on one key, 4 requests per minute: together they never
    put more than 4 requests in any 60 s window, and every record comes out."""
    env = {**env, "VEXPIPE_PER_MINUTE": "4"}
    vt.per_minute = 4  # the server enforces it too: a 429 would show
    procs = [subprocess.Popen([exe("vex-lookup"), "-q"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=env) for _ in range(4)]
    for i, proc in enumerate(procs):
        proc.stdin.write(f"clean-p{i}-a.com\nclean-p{i}-b.com\n".encode())
        proc.stdin.close()
    results = [(proc.stdout.read(), proc.stderr.read(), proc.wait(timeout=200)) for proc in procs]
    recs = [orjson.loads(line) for stdout, _, _ in results for line in stdout.splitlines()]
    assert len(recs) == 8 and all(r.get("verdict") == "CLEAN" for r in recs), results
    assert [r.status for r in vt.requests()].count(429) == 0
    assert vt.max_in_window(60) <= 4
    assert len(vt.requests()) == 8


def test_progress_only_on_a_terminal(env, vt):
    vt.latency = 0.3
    err = run_on_terminal("vex-lookup", "-j", "1", stream="stderr", input=b"clean-a.com\nclean-b.com\nclean-c.com\n",
                          env={**env, "VEXPIPE_PER_MINUTE": "4"})
    assert b"in flight" in err and b"requests left this minute" in err and b"cache hits" in err
    assert err.endswith(b"\r\x1b[K")  # the line is cleared at the end
    piped = lookup(env, "--refresh", input="clean-a.com\n")
    assert piped.stderr == b""  # not a terminal: silent
