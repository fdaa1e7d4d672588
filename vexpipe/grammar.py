"""The IOC grammar: find indicators in text, refang them, give their canonical form.

Pure functions over strings, no I/O. ``find_iocs(text)`` is what vex-detect runs;
``classify(value)`` is what later stages use for a bare IOC value on a line.

How the scan stays linear on hostile text (long runs of dots, digits, hex or
brackets): there is one compiled pattern; every alternative starts with a
look-behind that only lets it start at the beginning of a token, and the
repeated parts are possessive (``++``/``*+``), so the engine never re-scans a
run from inside it nor backtracks into it. Whatever the pattern finds is then
checked in Python (octets, hash lengths, public suffix, IPv6 syntax).

Canonical forms (the ``ioc`` key), per DESIGN.md:
- hashes lowercase; IPv4 dotted decimal without leading zeros;
- IPv6 compressed (RFC 5952), IPv4-mapped addresses in mixed notation
  (``::ffff:192.0.2.1``), a zone id kept after ``%``;
- domains lowercase, no trailing dot, Unicode labels encoded to punycode
  (``xn--``) with Python's IDNA codec; ``seen.match`` keeps what was written;
- URLs refanged, scheme and host lowercase (host as for domains), port, path,
  query and fragment as written;
- e-mail addresses lowercase, domain part as for domains.
"""

from __future__ import annotations

import functools
import re
from typing import Iterator, NamedTuple

from vexpipe import privacy, psl

TYPES = ("md5", "sha1", "sha256", "ipv4", "ipv6", "domain", "url", "email")
HASH_TYPES = {32: "md5", 40: "sha1", 64: "sha256"}

# Zero-width characters people paste into IOCs to break auto-linking.
_ZW = "\u200b-\u200d\u2060\ufeff"
_ZW_RE = re.compile(f"[{_ZW}]")

# Two-label names whose "TLD" is far more often a file extension (setup.py,
# README.md, libc.so, archive.zip). Reported only when written defanged or as
# the host of a URL or the domain of an e-mail address.
FILE_EXTENSION_TLDS = frozenset(
    "zip mov py md sh pl rs so cc cs ps pm mk am ml ws".split()
)

# --- the pattern -----------------------------------------------------------


def _build_pattern(wide: bool) -> re.Pattern:
    """The scanning pattern; ``wide`` adds Unicode: IDN labels, fullwidth and zero-width forms.

    Pure-ASCII text (most logs) is scanned with the narrow pattern compiled
    with re.ASCII, which is about 30% faster; both come from this one grammar.
    """
    zw = _ZW if wide else ""
    fw_dot = "．。｡" if wide else ""
    # Under re.ASCII a class spelled as ranges compiles to one bitmap test per
    # character, where \w and \s stay category tests: 10% of the scan. Unicode
    # text needs the categories. Digits are [0-9] in both: "١.٢.٣.٤"
    # (Arabic-Indic digits) is no address.
    w = r"\w" if wide else "0-9A-Za-z_"
    letter, boundary = (r"[^\W\d_]", r"[\W_]") if wide else ("[A-Za-z]", "[^0-9A-Za-z]")
    space = r"\s" if wide else r" \t\n\r\f\v"
    # A dot: ".", "[.]", "(dot)", "{ . }", " . ", " [.] "... Each branch opens
    # with a literal or a class (SRE's fast path), the spaced ones behind one " ".
    bracket_dot = r"[\[({] ?(?:\.|[dD][oO][tT]) ?[\])}] ?"
    dot = rf"(?:[.{fw_dot}]|{bracket_dot}| (?:\. |{bracket_dot}))"
    if wide:
        dot = rf"[{zw}]*{dot}[{zw}]*"
    bracket_at = r"[\[({] ?(?:@|[aA][tT]) ?[\])}] ?"
    at = rf"(?:@{'|＠' if wide else ''}|{bracket_at}| {bracket_at})"
    label = rf"[{w}{zw}-]++"
    hostname = rf"{label}(?:{dot}{label})*+"
    # Domains and e-mail addresses share one alternative: both open with a
    # label, then "@host" makes an address, or dots and labels ending in a
    # label that starts with a letter (a TLD, also punycode or Unicode) make a
    # domain, so "5.0" and "6099.128" never reach Python. Nothing that could
    # belong to the name may stand right before it (checked from its first
    # character, hence the trailing "."): a word character, hyphen, "+", "%",
    # or a dot of any spelling (a "." is allowed after a non-word character).
    # After the first look-behind (which keeps the scan linear: no name starts
    # inside a run of word characters and hyphens), a look-ahead turns away the
    # common case, a plain word, before the other look-behinds run: a name goes
    # on with a dot, "@", "+", "%" or a bracket.
    name = (
        rf"[{w}{zw}-](?<![{w}{zw}\-+%{fw_dot}\])}}].)"
        rf"(?=[{w}{zw}-]*+(?:[.{fw_dot}+%@{'＠' if wide else ''}\[({{]| [.\[({{]))"
        rf"(?<![{w}]\..)(?<![\])}}] .)(?<! \. .)"
        rf"[{w}{zw}-]*+(?:"
        rf"(?:(?:[.{fw_dot}+%]|{bracket_dot})[{w}{zw}+%-]*+)*+{at}{hostname}(?P<at>)"
        rf"|{dot}(?:{label}{dot}(?=[{w}{zw}]))*+{letter}[{w}{zw}-]*+)"
    )
    # The bodies below are what follows a token's first character.
    octet = r"[0-9]{1,3}+"
    ipv4_rest = rf"[0-9]{{0,2}}+{dot}{octet}{dot}{octet}{dot}{octet}"
    # As for names: a number that no dot follows is turned away before the look-behinds.
    ipv4_ahead = rf"(?=[0-9]{{0,2}}+(?:[.{fw_dot}{zw}\[({{]| [.\[({{]))"
    # "version 2.17.1.4", "ver=1.0.0.1": four-part version numbers, not addresses.
    not_version = r"(?<![vV]ersion[ =:].)(?<![vV]ersion: .)(?<![vV]er[ =:.].)"
    h16 = r"[0-9A-Fa-f]{1,4}"
    # A colon within four characters (a bounded check, so it may come first), then
    # "::" somewhere ahead or eight groups, what tells IPv6 from 12:00:00 (after the
    # look-behind, which keeps the scan linear: this look-ahead scans a run).
    ipv6_guard = r"(?=[0-9A-Fa-f]{0,3}+:)"
    ipv6_rest = (
        rf"(?=(?<=:):|[0-9A-Fa-f]{{0,3}}+:(?:{h16}+:)*+:|[0-9A-Fa-f]{{0,3}}+:(?:{h16}+:){{5}})"
        rf"[0-9A-Fa-f:]{{1,38}}(?:(?<=:)[0-9]{{1,3}}(?:\.[0-9]{{1,3}}){{3}})?"
        r"(?:%[0-9A-Za-z_.\-]{1,32})?"
    )
    scheme = r"(?:(?<=[hH])[tTxX]{2}[pP][sS]?|(?<=[fF])[tTxX][pP])"
    colon, slashes = ("(?::|：)", r"(?://|\\/\\/|／／|\[/\]\[/\]|\[//\])") if wide else (
        ":", r"(?://|\\/\\/|\[/\]\[/\]|\[//\])")
    sep = rf"(?:\[:?//\]|[\[(]?{colon}[\])]?{slashes})"
    url_host = rf"(?:\[[0-9A-Fa-f:.]+(?:%25[{w}.\-]+)?\]|{hostname})"
    port = r"(?:(?::|\[:\])[0-9]{1,5}+)?"
    # A path ends at white space, a control character (no URL holds one) or a
    # character that quotes or delimits it in text.
    path = rf"(?:(?:[/?#]|\[/\])[^{space}\x00-\x1f\x7f<>\"'`|\\]*+)?"
    # Every match begins with the separator character in front of the token
    # (``boundary``, [\W_]): SRE then skips runs of word characters in C
    # instead of trying each alternative at every position. Each alternative
    # opens with a character class, so SRE's branch fast path rejects it on its
    # first character; the look-behinds after it (one character wider) check
    # what came before the token. The named groups that say which kind matched
    # are empty markers at the end of each alternative: a group around it would
    # open it with a MARK and lose that fast path (15% of the scan). Scanned
    # text gets a leading newline so that a token at the very start has a
    # separator too.
    return re.compile(
        rf"{boundary}(?:"
        rf"[hHfF](?<!_.){scheme}{sep}{url_host}{port}{path}(?P<url>)"
        r"|[0-9A-Fa-f][0-9A-Fa-f]{31,}+(?P<hash>)(?![0-9A-Za-z])"
        rf"|[0-9A-Fa-f:]{ipv6_guard}(?<![:._].){ipv6_rest}(?P<ipv6>)(?![{w}:])(?!\.[0-9])"
        rf"|[0-9]{ipv4_ahead}(?<![._].){not_version}{ipv4_rest}(?P<ipv4>)(?![{w}])(?!{dot}[0-9])"
        rf"|{name}(?P<name>)"
        ")",
        0 if wide else re.ASCII,
    )


_WIDE = _build_pattern(wide=True)
_NARROW = _build_pattern(wide=False)

# --- refanging -------------------------------------------------------------

_REFANG = re.compile(
    rf"[{_ZW}]"
    r"|[．。｡]|＠|：|／"
    r"| ?[\[({] ?(?:\.|(?i:dot)) ?[\])}] ?"
    r"| ?[\[({] ?(?:@|(?i:at)) ?[\])}] ?"
    r"| \. "
    r"|\[:?//\]|\[:\]|\(:\)|\[/\]|\\/"
    r"|^(?:[hH][tTxX]{2}[pP]|[fF][tTxX][pP])(?=[sS]?(?:\[?:|：))"
)


def _refang_piece(m: re.Match) -> str:
    s = m.group()
    if _ZW_RE.fullmatch(s):
        return ""
    first = s.strip()[:1]
    if s in "．。｡":
        return "."
    if s == "＠":
        return "@"
    if s == "：":
        return ":"
    if s in ("／", "[/]", "\\/"):
        return "/"
    if s in ("[:]", "(:)"):
        return ":"
    if s in ("[://]", "[//]"):
        return s[1:-1]
    if first in "[({":
        inner = s.strip()[1:-1].strip().lower()
        return "." if inner in (".", "dot") else "@"
    if s == " . ":
        return "."
    # A defanged scheme: hxxp, hXXp, fxp...
    return "ftp" if s[0] in "fF" else "http"


def refang(text: str) -> str:
    """Undo the common defang styles (``hxxp``, ``[.]``, ``(dot)``, ``[@]``, fullwidth, zero-width)."""
    return _REFANG.sub(_refang_piece, text)


def defang(ioc: str, type_: str) -> str:
    """The safe-to-paste spelling of a canonical IOC (``hxxp[://]evil[.]com``).

    Hashes and IPv6 addresses are returned unchanged: nothing turns them into links.
    """
    if type_ in HASH_TYPES.values():
        return ioc
    if type_ == "url":
        scheme, sep, rest = ioc.partition("://")
        scheme = scheme.replace("http", "hxxp").replace("ftp", "fxp")
        host_end = len(rest)
        for c in "/?#":
            i = rest.find(c)
            if i != -1:
                host_end = min(host_end, i)
        return f"{scheme}[://]{rest[:host_end].replace('.', '[.]')}{rest[host_end:]}"
    if type_ == "email":
        local, _, domain = ioc.rpartition("@")
        return f"{local}[@]{domain.replace('.', '[.]')}"
    if type_ == "ipv6":
        return ioc  # not auto-linked by mail or chat clients; no common defang style
    return ioc.replace(".", "[.]")


# --- canonical forms -------------------------------------------------------


def canonical_ipv4(text: str) -> str | None:
    parts = text.split(".")
    if len(parts) != 4:
        return None
    try:
        octets = [int(p) for p in parts]
    except ValueError:
        return None
    if any(o > 255 for o in octets) or any(len(p) > 3 for p in parts):
        return None
    return ".".join(map(str, octets))


def canonical_ipv6(text: str) -> str | None:
    """RFC 5952 text form of an IPv6 address (``%zone`` kept), or None if it is not one.

    Written out rather than via ipaddress (5x slower), and it also gives
    IPv4-mapped addresses their mixed notation, ``::ffff:192.0.2.1``.
    """
    addr, pct, zone = text.partition("%")
    if (pct and not zone) or not any(c not in ":." for c in addr):
        return None
    tail_v4: list[int] = []
    if "." in addr:
        addr, _, v4 = addr.rpartition(":")
        v4c = canonical_ipv4(v4)
        if v4c is None or not addr:
            return None
        a, b, c, d = (int(x) for x in v4c.split("."))
        tail_v4 = [a << 8 | b, c << 8 | d]
        if addr.endswith(":"):  # "::1.2.3.4" left ":", "1::1.2.3.4" left "1:"
            addr += ":"
    head, double, rest = addr.partition("::")
    if "::" in rest:
        return None
    parts = (head.split(":") if head else []) + (rest.split(":") if rest else [])
    want = 8 - len(tail_v4)
    # The scanner only lets hex digits and colons through: length is what to check.
    if not all(0 < len(p) <= 4 for p in parts):
        return None
    if double:
        missing = want - len(parts)
        if missing < 1:
            return None
        n_head = len(head.split(":")) if head else 0
        groups = [int(p, 16) for p in parts[:n_head]] + [0] * missing + [int(p, 16) for p in parts[n_head:]]
    elif len(parts) == want:
        # Eight two-digit groups is how MAC/EUI-64 addresses look, not IPv6.
        if not tail_v4 and all(len(p) == 2 for p in parts):
            return None
        groups = [int(p, 16) for p in parts]
    else:
        return None
    groups += tail_v4
    if groups[:6] == [0, 0, 0, 0, 0, 0xFFFF]:
        out = "::ffff:%d.%d.%d.%d" % (groups[6] >> 8, groups[6] & 255, groups[7] >> 8, groups[7] & 255)
    else:
        out = _compress(groups)
    return f"{out}%{zone}" if pct else out


def _compress(groups: list[int]) -> str:
    """Eight 16-bit groups as RFC 5952 text: longest run (>= 2) of zeros as "::"."""
    best_at, best_len, run_at, run_len = -1, 1, -1, 0
    for i, g in enumerate(groups):
        if g == 0:
            if run_len == 0:
                run_at = i
            run_len += 1
            if run_len > best_len:
                best_at, best_len = run_at, run_len
        else:
            run_len = 0
    hexes = ["%x" % g for g in groups]
    if best_at < 0:
        return ":".join(hexes)
    return ":".join(hexes[:best_at]) + "::" + ":".join(hexes[best_at + best_len:])


def _ascii_label(label: str) -> str | None:
    if label.isascii():
        return label
    try:
        return label.encode("idna").decode("ascii")
    except UnicodeError:
        return None


def canonical_hostname(text: str) -> str | None:
    """Lowercase punycode form of a refanged domain name, or None if it is not one."""
    name = text.lower().rstrip(".")
    labels = name.split(".")
    if len(labels) < 2:
        return None
    # Most candidates in logs end in no TLD at all (session-12.scope): say so first.
    tld = labels[-1]
    if tld.isascii() and tld not in psl.default().tlds and tld not in privacy.LOCAL_TLDS:
        return None
    out = []
    for label in labels:
        if not label or len(label) > 63 or label[0] == "-" or label[-1] == "-":
            return None
        a = _ascii_label(label)
        if a is None:
            return None
        out.append(a)
    name = ".".join(out)
    if len(name) > 253 or "_" in out[-1] or "_" in out[-2]:
        return None
    if out[-1] not in privacy.LOCAL_TLDS and not psl.default().is_registrable(name):
        return None
    return name


def canonical_url(text: str) -> str | None:
    scheme, sep, rest = text.partition("://")
    if not sep:
        return None
    scheme = scheme.lower()
    if scheme not in ("http", "https", "ftp"):
        return None
    end = len(rest)
    for c in "/?#":
        i = rest.find(c)
        if i != -1:
            end = min(end, i)
    netloc, tail = rest[:end], rest[end:]
    if netloc.startswith("["):
        close = netloc.find("]")
        host, port = netloc[1:close], netloc[close + 1:]
        h = canonical_ipv6(host.replace("%25", "%"))
        if h is None:
            return None
        host = f"[{h}]".replace("%", "%25")
    else:
        host, _, port = netloc.partition(":")
        port = ":" + port if _ else ""
        h = canonical_ipv4(host) if host[:1].isdigit() else None
        if h is None:
            h = canonical_hostname(host)
        if h is None:
            return None
        host = h
    if port and not (port[:1] == ":" and port[1:].isdigit() and int(port[1:]) <= 65535):
        return None
    return f"{scheme}://{host}{port}{tail}"


def canonical_email(text: str) -> str | None:
    local, at, domain = text.rpartition("@")
    if not at or not local or local[0] == "." or local[-1] == "." or ".." in local:
        return None
    d = canonical_hostname(domain)
    return None if d is None else f"{local.lower()}@{d}"


# Characters that trail a URL in prose but are not part of it.
_TRAILING = ".,;:!?'\"*"
_PAIRS = {")": "(", "]": "[", "}": "{", ">": "<"}


def _trim_url(s: str) -> str:
    while s:
        c = s[-1]
        if c in _TRAILING:
            s = s[:-1]
        elif c in _PAIRS and s.count(c) > s.count(_PAIRS[c]):
            s = s[:-1]
        else:
            break
    return s


# --- scanning --------------------------------------------------------------


class Finding(NamedTuple):
    """One IOC found in a text: its type, canonical value and where it stood."""

    type: str
    ioc: str
    start: int
    end: int
    match: str


def _url_host_finding(f: Finding) -> Finding:
    host = privacy.url_host(f.ioc)
    kind = "ipv6" if ":" in host else "ipv4" if canonical_ipv4(host) == host else "domain"
    return Finding(kind, host, f.start, f.end, f.match)


_PLAIN_IPV4 = re.compile(r"(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)", re.ASCII)


@functools.lru_cache(maxsize=65536)
def _classify_text(kind: str, raw: str) -> tuple[str, str, int] | None:
    """``(type, canonical, length of the match as written)`` for one pattern hit.

    Cached: logs repeat the same names and URLs; the cache is bounded, so
    memory stays flat.
    """
    if kind == "url":
        raw = _trim_url(raw)
        value = canonical_url(refang(raw))
    elif kind == "ipv4":
        value = canonical_ipv4(refang(raw))
    elif kind == "ipv6":
        value = canonical_ipv6(raw)
    elif kind == "email":
        value = canonical_email(refang(raw))
    else:
        plain = refang(raw)
        value = canonical_hostname(plain)
        # setup.py, README.md: a file name unless written defanged.
        if value is not None and plain == raw and value.count(".") == 1:
            if value.rsplit(".", 1)[1] in FILE_EXTENSION_TLDS:
                value = None
    return None if value is None else (kind, value, len(raw))


def find_iocs(text: str, types: frozenset[str] | None = None) -> Iterator[Finding]:
    """Yield every IOC in ``text`` in order of position.

    Each span of text gives one finding: the domain inside a URL or an e-mail
    address is not reported a second time. When ``types`` is given and leaves
    out url or email but asks for domain/IP, a URL or address found yields its
    host part instead, so ``--types domain`` still sees the domain of a URL.
    """
    pattern = _NARROW if text.isascii() else _WIDE
    plain_ipv4 = _PLAIN_IPV4.fullmatch
    new = tuple.__new__  # Finding(...) without the generated __new__'s extra call
    # The hot loop of vex-detect: the cheap kinds are settled inline.
    for m in pattern.finditer("\n" + text):
        group = m.lastgroup
        raw = m.group()[1:]
        if group == "ipv4" and plain_ipv4(raw):
            kind, value, length = "ipv4", raw, len(raw)
        elif group == "hash":
            length = len(raw)
            kind = HASH_TYPES.get(length)
            # All-digit or all-letter runs of hash length are numbers and words, not hashes.
            if kind is None or raw.isdigit() or raw.isalpha():
                continue
            value = raw.lower()
        else:
            if group == "name":
                group = "domain" if m.start("at") == -1 else "email"
            hit = _classify_text(group, raw)
            if hit is None:
                continue
            kind, value, length = hit
            raw = raw[:length]
        # The match opens with one separator character, and the text was given a
        # leading newline: in the caller's text the token starts at m.start().
        start = m.start()
        f = new(Finding, (kind, value, start, start + length, raw))
        if types is not None and kind not in types:
            if kind == "url":
                f = _url_host_finding(f)
            elif kind == "email":
                f = Finding("domain", value.rsplit("@", 1)[1], f.start, f.end, f.match)
            if f.type not in types:
                continue
        yield f


def classify(value: str) -> tuple[str, str] | None:
    """``(type, canonical)`` when the whole of ``value`` is one IOC, else None.

    This is how a bare value on a line (``echo 8.8.8.8 | vex-lookup``) becomes a record.
    """
    value = value.strip()
    for f in find_iocs(value):
        if f.start == 0 and f.end == len(value):
            return f.type, f.ioc
        break
    return None
