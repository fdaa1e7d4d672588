"""The Public Suffix List: which names end in a real public suffix.

vex-detect only reports a dotted name as a domain when it ends in a suffix that
the Public Suffix List knows (its ICANN section: real TLDs and the second-level
registries under them) and has at least one label in front of that suffix.
That is what keeps ``report.pdf`` and ``co.uk`` out of the results.

The list ships as package data (``vexpipe/data/public_suffix_list.dat``, MPL
2.0, snapshot dated by its own ``VERSION`` line, exposed as :data:`VERSION`).
Unicode rules are stored in their punycode (``xn--``) form, because that is the
canonical form vexpipe reports domains in.
"""

from __future__ import annotations

import functools
from importlib import resources

_FILE = "public_suffix_list.dat"


class SuffixList:
    """ICANN public-suffix rules: exact, wildcard (``*.ck``) and exception (``!www.ck``)."""

    def __init__(self, text: str):
        self.version = "unknown"
        self.rules: set[str] = set()
        self.wildcards: set[str] = set()
        self.exceptions: set[str] = set()
        for raw in text.splitlines():
            line = raw.strip()
            if line.startswith("// VERSION:"):
                self.version = line.split(":", 1)[1].strip()
            if line.startswith("// ===END ICANN DOMAINS==="):
                break
            if not line or line.startswith("//"):
                continue
            rule = _ascii(line.split()[0])
            if rule is None:
                continue
            if rule.startswith("!"):
                self.exceptions.add(rule[1:])
            elif rule.startswith("*."):
                self.wildcards.add(rule[2:])
            else:
                self.rules.add(rule)
        self.tlds = {r for r in self.rules | self.wildcards if "." not in r}

    def suffix_length(self, labels: list[str]) -> int:
        """How many trailing labels of ``labels`` form the public suffix (0: unknown TLD)."""
        if labels[-1] not in self.tlds:
            return 0
        best = 1
        for n in range(2, len(labels) + 1):
            name = ".".join(labels[-n:])
            if name in self.exceptions:
                return n - 1
            if name in self.rules:
                best = n
            elif ".".join(labels[-n + 1:]) in self.wildcards:
                best = n
        return best

    def is_registrable(self, name: str) -> bool:
        """True when ``name`` (lowercase ASCII) ends in a known suffix and has a label before it."""
        labels = name.split(".")
        n = self.suffix_length(labels)
        return 0 < n < len(labels)


def _ascii(rule: str) -> str | None:
    try:
        rule.encode("ascii")
        return rule.lower()
    except UnicodeEncodeError:
        pass
    prefix = "!" if rule.startswith("!") else "*." if rule.startswith("*.") else ""
    try:
        body = rule[len(prefix):].encode("idna").decode("ascii")
    except UnicodeError:
        return None
    return prefix + body


@functools.cache
def default() -> SuffixList:
    """The bundled snapshot, parsed once per process."""
    text = resources.files("vexpipe.data").joinpath(_FILE).read_text(encoding="utf-8")
    return SuffixList(text)
