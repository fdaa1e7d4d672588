"""The IOC grammar: each type, each defang style, what must not match, and properties."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vexpipe import grammar, psl
from vexpipe.grammar import classify, defang, find_iocs, refang


def found(text: str, types=None) -> list[tuple[str, str]]:
    return [(f.type, f.ioc) for f in find_iocs(text, types)]


# --- positives, one per type and form --------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("d41d8cd98f00b204e9800998ecf8427e", ("md5", "d41d8cd98f00b204e9800998ecf8427e")),
    ("D41D8CD98F00B204E9800998ECF8427E", ("md5", "d41d8cd98f00b204e9800998ecf8427e")),
    ("da39a3ee5e6b4b0d3255bfef95601890afd80709", ("sha1", "da39a3ee5e6b4b0d3255bfef95601890afd80709")),
    ("SHA256=E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855,",
     ("sha256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")),
    ("sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
     ("sha256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")),
    ("VirusShare_d41d8cd98f00b204e9800998ecf8427e", ("md5", "d41d8cd98f00b204e9800998ecf8427e")),
    ("from 185.220.101.4 port 22", ("ipv4", "185.220.101.4")),
    ("SRC=010.001.002.003", ("ipv4", "10.1.2.3")),
    ("(8.8.8.8)", ("ipv4", "8.8.8.8")),
    ("ends with 8.8.4.4.", ("ipv4", "8.8.4.4")),
    ("1.2.3.4:8080", ("ipv4", "1.2.3.4")),
    ("2001:db8::1", ("ipv6", "2001:db8::1")),
    ("2001:0DB8:0000:0000:0000:0000:0000:0001", ("ipv6", "2001:db8::1")),
    ("::1", ("ipv6", "::1")),
    ("fe80::1%eth0", ("ipv6", "fe80::1%eth0")),
    ("[2001:db8::2]:443", ("ipv6", "2001:db8::2")),
    ("::ffff:192.0.2.1", ("ipv6", "::ffff:192.0.2.1")),
    ("::FFFF:c000:0201", ("ipv6", "::ffff:192.0.2.1")),
    ("64:ff9b::192.0.2.33", ("ipv6", "64:ff9b::c000:221")),
    ("1:0:0:2:0:0:0:3", ("ipv6", "1:0:0:2::3")),
    ("Visit Evil-Updates.COM today", ("domain", "evil-updates.com")),
    ("host evil.com.", ("domain", "evil.com")),
    ("mail.phish-bank.co.uk", ("domain", "mail.phish-bank.co.uk")),
    ("dc01.corp.local", ("domain", "dc01.corp.local")),
    ("münchen.de", ("domain", "xn--mnchen-3ya.de")),
    ("xn--mnchen-3ya.de", ("domain", "xn--mnchen-3ya.de")),
    ("пример.рф", ("domain", "xn--e1afmkfd.xn--p1ai")),
    ("https://Evil.COM/Path?Q=1#Frag", ("url", "https://evil.com/Path?Q=1#Frag")),
    ("ftp://files.bad.ru/x.zip", ("url", "ftp://files.bad.ru/x.zip")),
    ("http://1.2.3.4:8080/a", ("url", "http://1.2.3.4:8080/a")),
    ("http://[2001:DB8::1]:8080/a", ("url", "http://[2001:db8::1]:8080/a")),
    ("https://en.wikipedia.org/wiki/Foo_(bar)", ("url", "https://en.wikipedia.org/wiki/Foo_(bar)")),
    ("(see https://evil.com/path).", ("url", "https://evil.com/path")),
    ('"http://quoted.com/a"', ("url", "http://quoted.com/a")),
    ("<http://angle.com/b>", ("url", "http://angle.com/b")),
    ("Bob.Smith+tag@Example.COM", ("email", "bob.smith+tag@example.com")),
    ("from=<alice@phish-bank.co.uk>", ("email", "alice@phish-bank.co.uk")),
])
def test_each_type(text, expected):
    assert found(text) == [expected]


# --- defang styles ---------------------------------------------------------

@pytest.mark.parametrize("text", [
    "evil[.]com", "evil(.)com", "evil{.}com", "evil[dot]com", "evil(dot)com", "evil{dot}com",
    "evil[DOT]com", "evil . com", "evil [.] com", "evil[ . ]com", "evil．com", "evil。com",
    "e\u200bvil.com", "evil\u200b.com", "evil.\u200dcom", "\ufeffevil.com",
])
def test_defanged_domains(text):
    assert found(text) == [("domain", "evil.com")]
    assert [f.match for f in find_iocs(text)] == [text.lstrip("\ufeff")] or text.startswith("\ufeff")


@pytest.mark.parametrize("text", [
    "hxxp://evil[.]com/a", "hXXp://evil.com/a", "hxxps://evil.com/a", "HXXPS://evil.com/a",
    "http[:]//evil.com/a", "https[:]//evil.com/a", "http[://]evil.com/a", "hxxp[://]evil[.]com/a",
    "http:\\/\\/evil.com/a", "http://evil.com[/]a", "http：／／evil．com/a", "http(:)//evil.com/a",
])
def test_defanged_urls(text):
    (kind, value), = found(text)
    assert kind == "url"
    assert value.split("://")[1] == "evil.com/a"


def test_defanged_ftp():
    assert found("fxp://evil[.]com/x") == [("url", "ftp://evil.com/x")]


@pytest.mark.parametrize("text", [
    "bob[@]evil.com", "bob[at]evil[.]com", "bob(at)evil.com", "bob{at}evil.com", "bob[AT]evil.com",
    "bob＠evil．com", "bob [at] evil [dot] com",
])
def test_defanged_emails(text):
    assert found(text) == [("email", "bob@evil.com")]


@pytest.mark.parametrize("text", ["1.2.3[.]4", "1[.]2[.]3[.]4", "1(.)2(.)3(.)4", "1[dot]2[dot]3[dot]4"])
def test_defanged_ipv4(text):
    assert found(text) == [("ipv4", "1.2.3.4")]


def test_match_keeps_text_as_written():
    f, = find_iocs("see hxxp://evil[.]com/x.")
    assert f.match == "hxxp://evil[.]com/x"
    assert (f.start, f.end) == (4, 4 + len(f.match))


def test_refang_and_defang_round_trip():
    assert refang("hxxps[://]evil[.]com/a") == "https://evil.com/a"
    assert defang("https://evil.com/a.b", "url") == "hxxps[://]evil[.]com/a.b"
    assert defang("bob@evil.com", "email") == "bob[@]evil[.]com"
    assert defang("1.2.3.4", "ipv4") == "1[.]2[.]3[.]4"
    assert defang("d41d8cd98f00b204e9800998ecf8427e", "md5") == "d41d8cd98f00b204e9800998ecf8427e"


# --- negatives: what fools naive tools --------------------------------------

@pytest.mark.parametrize("text", [
    "report.pdf", "invoice.docx", "script.ps1", "config.yaml", "main.go", "setup.py", "README.md",
    "libc.so", "archive.zip", "System.Net.Http.dll", "file.tar.gz", "co.uk", "a.b", "localhost",
    "version 1.2.3.4.5", "v1.2.3.4", "version 2.17.1.4", "Version: 10.0.19041.1", "ver=1.0.0.1", "OID 1.3.6.1.4.1.311.21.7", "256.1.1.1", "1.2.3", "999.999.999.999",
    "12:00:00", "2026-11-01T00:00:00.000Z", "MAC=00:16:3e:05:4f:aa", "00:16:3e:05:4f:aa:00:1c",
    "Foo::Bar", "std::string",
    "550e8400-e29b-41d4-a716-446655440000", "{53693a24-e482-2938-4b14-4842bc06b31c}",
    "d41d8cd98f00b204e9800998ecf8427e0", "xd41d8cd98f00b204e9800998ecf8427e", "0xd41d8cd98f00b204e9800998ecf8427e",
    "12345678901234567890123456789012", "abcdefabcdefabcdefabcdefabcdefab",
    "http://intranet/path", "evil[.]", "user@", "http://", "hxxp[://]",
    "\u0661.\u0662.\u0663.\u0664", "ü \u0661.\u0662.\u0663.\u0664",  # Arabic-Indic digits: no IPv4
])
def test_not_iocs(text):
    assert found(text) == []


def test_file_extension_tld_only_when_defanged_or_in_url():
    assert found("setup.py") == []
    assert found("setup[.]py") == [("domain", "setup.py")]
    assert found("http://setup.py/x") == [("url", "http://setup.py/x")]
    assert found("www.setup.py") == [("domain", "www.setup.py")]


def test_url_ends_at_a_control_character():
    for c in "\x00\x01\x1b\x1c\x7f":
        assert found(f"GET http://evil.com/a{c}b") == [("url", "http://evil.com/a")], repr(c)


def test_trailing_punctuation_stripped():
    for tail in ".,;:!?)]}>'\"":
        assert found(f"evil.com{tail}") == [("domain", "evil.com")]
        assert found(f"http://evil.com/a{tail}") == [("url", "http://evil.com/a")]


def test_url_and_email_are_one_finding_each():
    assert found("http://evil.com/a bob@evil.com") == [("url", "http://evil.com/a"), ("email", "bob@evil.com")]


def test_types_filter_gives_host_of_url_and_email():
    text = "http://evil.com/a bob@phish.net http://9.9.9.9/x 8.8.8.8"
    assert found(text, frozenset({"domain"})) == [("domain", "evil.com"), ("domain", "phish.net")]
    assert found(text, frozenset({"ipv4"})) == [("ipv4", "9.9.9.9"), ("ipv4", "8.8.8.8")]


def test_classify_whole_value_only():
    assert classify(" evil[.]com ") == ("domain", "evil.com")
    assert classify("8.8.8.8") == ("ipv4", "8.8.8.8")
    assert classify("see evil.com") is None
    assert classify("evil.com and more") is None
    assert classify("") is None


def test_public_suffix_rules():
    rules = psl.default()
    assert rules.version.startswith("20")
    assert rules.is_registrable("bbc.co.uk")
    assert not rules.is_registrable("co.uk")
    assert not rules.is_registrable("example.notatld")
    # wildcard and exception rules: *.ck, !www.ck
    assert not rules.is_registrable("foo.ck")
    assert rules.is_registrable("bar.foo.ck")
    assert rules.is_registrable("www.ck")


# --- hostile input stays linear ----------------------------------------------

@pytest.mark.parametrize("unit", [
    ".", "a.", "1.", "1", "f", "a", ":", "a:", "1:", "[.]", "a[.]", "(", "[", "@", "a@", " . ", "a . ",
    "http://", "-", "a-", "a_", "_a", "a-b_", "%", "\u200b", "::", "ff:", "1.1.", "a.b@",
])
def test_adversarial_runs_finish_fast(unit):
    text = unit * (200_000 // len(unit))
    start = time.perf_counter()
    list(find_iocs(text))
    # Quadratic behaviour on 200 KB would take minutes; linear takes milliseconds.
    assert time.perf_counter() - start < 5


# --- properties ----------------------------------------------------------------

TLDS = sorted(t for t in psl.default().tlds if t.isascii() and t.isalpha() and t not in grammar.FILE_EXTENSION_TLDS)
label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
domains = st.builds(lambda labels, tld: ".".join(labels + [tld]),
                    st.lists(label, min_size=1, max_size=3), st.sampled_from(TLDS)).filter(
    psl.default().is_registrable)
ipv4s = st.builds(lambda n: ".".join(str(n >> s & 255) for s in (24, 16, 8, 0)), st.integers(0, 2**32 - 1))
ipv6s = st.integers(0, 2**128 - 1).map(
    lambda n: grammar._compress([n >> (112 - 16 * i) & 0xFFFF for i in range(8)])).filter(
    lambda s: grammar.canonical_ipv6(s) == s)
hashes = st.sampled_from([32, 40, 64]).flatmap(
    lambda n: st.from_regex(rf"[0-9a-f]{{{n}}}", fullmatch=True)).filter(
    lambda h: not h.isdigit() and not h.isalpha())
paths = st.from_regex(r"(/[A-Za-z0-9_~%=&-]{0,12}){0,3}(\?[a-z]{1,5}=[A-Za-z0-9]{0,8})?", fullmatch=True)
urls = st.builds(lambda scheme, host, path: f"{scheme}://{host}{path}",
                 st.sampled_from(["http", "https", "ftp"]), domains, paths)
emails = st.builds(lambda local, d: f"{local}@{d}",
                   st.from_regex(r"[a-z0-9]([a-z0-9._+-]{0,10}[a-z0-9])?", fullmatch=True).filter(
                       lambda s: ".." not in s), domains)
iocs = st.one_of(
    domains.map(lambda d: ("domain", d)), ipv4s.map(lambda i: ("ipv4", i)), ipv6s.map(lambda i: ("ipv6", i)),
    hashes.map(lambda h: (grammar.HASH_TYPES[len(h)], h)), urls.map(lambda u: ("url", u)),
    emails.map(lambda e: ("email", e)))
DEFANGS = [
    lambda s: s,
    lambda s: s.replace(".", "[.]"),
    lambda s: s.replace(".", "(dot)"),
    lambda s: s.replace(".", "{.}").replace("@", "[at]"),
    lambda s: s.replace("http", "hxxp").replace("://", "[://]").replace(".", "[.]"),
    lambda s: s.replace(".", "．").replace("@", "＠"),
    lambda s: s.replace("://", "[:]//").replace("@", "(at)"),
]


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(iocs, st.sampled_from(range(len(DEFANGS))), st.sampled_from(["", " ", "see ", "(", "x=", '"']))
def test_detect_finds_every_defanged_ioc(ioc, style, before):
    kind, value = ioc
    written = DEFANGS[style](value) if kind not in ("ipv6",) and not kind.startswith(("md5", "sha")) else value
    text = f"{before}{written} end"
    assert (kind, value) in found(text), text


@given(iocs)
def test_classify_round_trips_canonical_values(ioc):
    kind, value = ioc
    assert classify(value) == (kind, value)
    assert classify(defang(value, kind)) == (kind, value)


@settings(max_examples=300)
@given(st.text())
def test_never_raises_on_any_text(text):
    for f in find_iocs(text):
        assert f.type in grammar.TYPES
        assert text[f.start:f.end] == f.match


@settings(max_examples=200)
@given(st.text(alphabet=st.sampled_from(list(".:[]()@-/1af ._xn\u200b．0hpt")), max_size=200))
def test_never_raises_on_ioc_shaped_noise(text):
    list(find_iocs(text))
