"""The pieces under vex-lookup: sliding-window limiter, verdict policy, VirusTotal ids, proxies."""

from __future__ import annotations

import base64
import calendar
import multiprocessing

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vexpipe import http, privacy, vtmodel
from vexpipe.ratelimit import SLACK, WINDOW, Limits, QuotaExhausted, RateLimiter
from vexpipe.store import Store
from vexpipe.verdict import Policy


def test_window_allows_n_in_any_minute(tmp_path):
    limiter = RateLimiter(Store(tmp_path / "c.sqlite3"), "k", Limits(per_minute=4))
    t0 = 1_800_000_000.0
    assert [limiter.try_acquire(t0 + i) for i in range(4)] == [0, 0, 0, 0]
    # A bucket refilling one token every 15 s would allow this one: the window does not.
    wait = limiter.try_acquire(t0 + 20)
    assert wait == pytest.approx(t0 + WINDOW + SLACK - (t0 + 20))
    assert limiter.try_acquire(t0 + WINDOW + SLACK + 0.01) == 0  # the first one left the window
    assert limiter.try_acquire(t0 + WINDOW + SLACK + 0.02) > 0  # the next three are still in it


def test_day_and_month_quotas(tmp_path):
    limiter = RateLimiter(Store(tmp_path / "c.sqlite3"), "k", Limits(per_day=3, per_month=5))
    day = calendar.timegm((2026, 12, 3, 10, 0, 0))
    for i in range(3):
        assert limiter.try_acquire(day + i) == 0
    with pytest.raises(QuotaExhausted) as e:
        limiter.try_acquire(day + 10)
    assert e.value.period == "day" and e.value.resets_at == calendar.timegm((2026, 12, 4, 0, 0, 0))
    next_day = calendar.timegm((2026, 12, 4, 0, 0, 1))
    assert limiter.try_acquire(next_day) == 0 and limiter.try_acquire(next_day + 1) == 0
    with pytest.raises(QuotaExhausted) as e:
        limiter.try_acquire(next_day + 2)
    assert e.value.period == "month" and e.value.resets_at == calendar.timegm((2027, 1, 1, 0, 0, 0))


def test_penalty_is_shared(tmp_path):
    store = Store(tmp_path / "c.sqlite3")
    a, b = RateLimiter(store, "k", Limits()), RateLimiter(Store(tmp_path / "c.sqlite3"), "k", Limits())
    a.penalize(5)
    assert b.try_acquire() == pytest.approx(5, abs=0.5)
    assert RateLimiter(store, "other-key", Limits()).try_acquire() == 0


def _grab(path: str, n: int, out) -> None:
    limiter = RateLimiter(Store(path), "k", Limits(per_minute=10))
    granted = 0
    for _ in range(n):
        if limiter.try_acquire() == 0:
            granted += 1
    out.put(granted)


def test_limiter_is_atomic_across_processes(tmp_path):
    """Eight processes race for a 10-per-minute window: exactly 10 requests are granted."""
    path = str(tmp_path / "c.sqlite3")
    Store(path)
    out = multiprocessing.get_context("spawn").Queue()
    procs = [multiprocessing.get_context("spawn").Process(target=_grab, args=(path, 5, out)) for _ in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert sum(out.get(timeout=5) for _ in procs) == 10


@pytest.mark.parametrize("stats, found, verdict", [
    ({"malicious": 3, "undetected": 60}, True, "MALICIOUS"),
    ({"malicious": 2, "undetected": 60}, True, "SUSPICIOUS"),
    ({"suspicious": 1, "undetected": 60}, True, "SUSPICIOUS"),
    ({"harmless": 50, "undetected": 20, "timeout": 5}, True, "CLEAN"),
    ({"undetected": 5, "timeout": 40, "type-unsupported": 20}, True, "UNKNOWN"),
    (None, True, "UNKNOWN"),
    ({"malicious": 30}, False, "UNKNOWN"),
])
def test_verdict_policy(stats, found, verdict):
    assert Policy().judge(stats, found)[0] == verdict


def test_verdict_thresholds_are_configurable():
    assert Policy(malicious=10).judge({"malicious": 5, "undetected": 60})[0] == "SUSPICIOUS"
    assert Policy(min_engines=100).judge({"harmless": 70})[0] == "UNKNOWN"
    assert "5/65 engines" in Policy().judge({"malicious": 5, "undetected": 60})[1]


@given(st.text(min_size=1))
def test_url_id_is_unpadded_urlsafe_base64(url):
    oid = vtmodel.object_id("url", url)
    assert "=" not in oid and "/" not in oid and "+" not in oid
    assert base64.urlsafe_b64decode(oid + "=" * (-len(oid) % 4)).decode() == url


def test_iso_timestamps():
    assert vtmodel.iso(0) is None and vtmodel.iso("x") is None and vtmodel.iso(True) is None
    assert vtmodel.iso(1764547200) == "2025-12-01T00:00:00Z"


def test_summaries_survive_garbage():
    assert vtmodel.summarize({"found": True, "object": {"attributes": "nope"}})["found"] is True
    assert vtmodel.summarize_relationship("x", None) == {"items": [], "count": 0}
    assert vtmodel.summarize_behaviour({"data": [1]}) == {}
    assert vtmodel.summarize_mitre_trees({"data": {"a": None, "b": {"tactics": [5]}}}) == {"b": []}


def test_proxy_from_environment(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,.internal.corp")
    assert http.proxy_for("https", "www.virustotal.com") == "http://proxy.corp:3128"
    assert http.proxy_for("https", "vt.internal.corp") is None
    assert http.proxy_for("https", "localhost") is None
    monkeypatch.delenv("HTTPS_PROXY")
    assert http.proxy_for("https", "www.virustotal.com") is None


def test_base_url_rules():
    assert http.check_base_url("https://www.virustotal.com/api/v3/") == "https://www.virustotal.com/api/v3"
    assert http.check_base_url("http://127.0.0.1:8080/api/v3")
    assert http.check_base_url("http://[::1]:8080/api/v3")
    for bad in ("http://example.com/api", "ftp://x/", "nonsense"):
        with pytest.raises(http.BaseURLError):
            http.check_base_url(bad)


def test_allowlist_matching():
    allow = privacy.Allowlist(["Partner.example.com", "93.184.216.0/24", "d41d8cd98f00b204e9800998ecf8427e",
                               "2001:db8::/32"])
    assert allow.matches("domain", "partner.example.com") and allow.matches("domain", "a.partner.example.com")
    assert not allow.matches("domain", "notpartner.example.com")
    assert allow.matches("url", "https://cdn.partner.example.com/x") and allow.matches("email", "x@partner.example.com")
    assert allow.matches("ipv4", "93.184.216.34") and allow.matches("url", "http://93.184.216.1/")
    assert allow.matches("md5", "d41d8cd98f00b204e9800998ecf8427e") and allow.matches("ipv6", "2001:db8::5")
    assert not allow.matches("ipv4", "8.8.8.8")
