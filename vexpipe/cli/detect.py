"""vex-detect: text in, IOC records out."""

from __future__ import annotations

import argparse
from typing import Any, Iterator

from vexpipe import grammar, privacy, records
from vexpipe.runtime import ArgumentParser, Exit, Filter, StageError

EPILOG = """\
examples:
  vex-detect auth.log                         one IOC record per finding
  vex-detect --unique --types domain,url report.txt
  tail -F proxy.log | vex-detect --no-private | vex-lookup
  vex-detect --json --field query --annotate < dns.ndjson

record: {"ioc", "type", "seen": {"source", "line", "col", "match"}}
  (with --json, seen also has "field", and col counts within that field)
types: md5 sha1 sha256 ipv4 ipv6 domain url email
exit status: 0 done, 64 usage, 65 bad input with --strict, 74 unreadable file,
  130 interrupted, 141 output pipe closed
"""


def _types(value: str) -> frozenset[str]:
    wanted = frozenset(t.strip().lower() for t in value.split(",") if t.strip())
    unknown = wanted - set(grammar.TYPES)
    if unknown or not wanted:
        raise argparse.ArgumentTypeError(
            f"unknown type {', '.join(sorted(unknown)) or '(none)'}; choose from {','.join(grammar.TYPES)}")
    return wanted


class Detect(Filter):
    prog = "vex-detect"
    stage = "detect"
    summary = "find indicators of compromise in text"
    description = (
        "Find indicators of compromise (hashes, IP addresses, domains, URLs, e-mail "
        "addresses) in any text, defanged or not, and write one NDJSON IOC record per "
        "finding, in input order."
    )
    epilog = EPILOG

    @classmethod
    def add_arguments(cls, p: ArgumentParser) -> None:
        p.add_argument("--types", type=_types, metavar="LIST",
                       help="only these types, comma-separated (a URL or e-mail address found "
                       "when its type is left out gives its domain or IP instead)")
        p.add_argument("--unique", action="store_true",
                       help="write each IOC once per run (memory grows with distinct IOCs)")
        p.add_argument("--no-private", action="store_true",
                       help="drop non-global IP addresses and local or reserved names")
        p.add_argument("--json", action="store_true",
                       help="input is NDJSON events: scan every string value (not keys)")
        p.add_argument("--field", action="append", default=[], metavar="PATH",
                       help="with --json, scan only this dotted path (repeatable)")
        p.add_argument("--annotate", action="store_true",
                       help="with --json, write each event once with an iocs array "
                       "instead of one record per IOC")

    def __init__(self, args: argparse.Namespace):
        super().__init__(args)
        if (args.annotate or args.field) and not args.json:
            raise StageError("--annotate and --field need --json", Exit.USAGE)
        self.types: frozenset[str] | None = args.types
        self.seen: set[tuple[str, str]] | None = set() if args.unique else None

    def run(self) -> None:
        if self.args.json:
            self.run_events()
        else:
            self.run_text()

    def keep(self, type_: str, ioc: str) -> bool:
        if self.args.no_private and privacy.private_reason(type_, ioc):
            return False
        if self.seen is not None:
            key = (type_, ioc)
            if key in self.seen:
                return False
            self.seen.add(key)
        return True

    def run_text(self) -> None:
        emit, types, keep = self.emit, self.types, self.keep
        filtering = self.args.no_private or self.seen is not None
        for seg in self.text_segments():
            text, source = seg.text, seg.source
            line, line_start, last, col_base = seg.line, 0, 0, seg.col - 1
            # Findings unpacked as tuples: attribute access is the slower part of the hot loop.
            for type_, ioc, start, _, match in grammar.find_iocs(text, types):
                if filtering and not keep(type_, ioc):
                    continue
                newlines = text.count("\n", last, start)
                if newlines:
                    line += newlines
                    line_start = text.rfind("\n", last, start) + 1
                    col_base = 0
                last = start
                emit({"ioc": ioc, "type": type_,
                      "seen": {"source": source, "line": line,
                               "col": start - line_start + 1 + col_base, "match": match}})

    def run_events(self) -> None:
        for source, lineno, event in self.json_values(bare_values=False):
            found = list(self.findings(event, source, lineno))
            if not self.args.annotate:
                for record in found:
                    self.emit(record)
            elif isinstance(event, dict):
                self.emit(annotate(event, found))
            else:
                self.emit(event)

    def findings(self, event: Any, source: str, lineno: int) -> Iterator[dict]:
        for path, text in self.strings(event):
            for f in grammar.find_iocs(text, self.types):
                if self.keep(f.type, f.ioc):
                    yield {"ioc": f.ioc, "type": f.type,
                           "seen": {"source": source, "line": lineno, "field": path,
                                    "col": f.start + 1, "match": f.match}}

    def strings(self, event: Any) -> Iterator[tuple[str, str]]:
        if not self.args.field:
            # Our own iocs list is not input text: do not find its IOCs twice.
            if isinstance(event, dict) and "iocs" in event:
                event = {k: v for k, v in event.items() if k != "iocs"}
            yield from records.iter_strings(event)
            return
        for path in self.args.field:
            for value in records.get_path(event, path):
                yield from records.iter_strings(value, path)


def annotate(event: dict, found: list[dict]) -> dict:
    """The event with the IOC records found in it added to its ``iocs`` list (no repeats)."""
    existing = event.get("iocs")
    iocs = list(existing) if isinstance(existing, list) else []
    have = {(r.get("type"), r.get("ioc")) for r in iocs if isinstance(r, dict)}
    for record in found:
        key = (record["type"], record["ioc"])
        if key not in have:
            have.add(key)
            iocs.append(record)
    return {**event, "iocs": iocs}
