"""vex-timeline: enriched records in, time-ordered events out."""

from __future__ import annotations

import argparse
import heapq
import tempfile
from typing import IO, Iterator

import orjson

from vexpipe import timeline
from vexpipe.runtime import ArgumentParser, Exit, Filter, StageError

EPILOG = """\
examples:
  vex-detect case.log | vex-lookup --investigate | vex-timeline > timeline.ndjson
  vex-timeline --since 2026-01-01 --event dns_resolution --ioc evil.com < enriched.ndjson
  vex-timeline < enriched.ndjson | vex-fmt --format timeline

event: {"time", "ioc", "type", "event", "source", "detail"}, time ISO 8601 UTC.
events: last_analysis, first_submission, last_submission, last_modification,
  file_created, first_seen_in_the_wild, pe_compiled, signed, whois_created,
  whois_updated, whois_expires, whois_fetched, whois_record_seen, dns_resolution,
  dns_records_seen, certificate_valid_from, certificate_valid_until,
  certificate_seen, kb_note

Sorting holds at most --buffer events in memory; more are sorted in runs
spilled to temporary files ($TMPDIR) and merged, so memory stays flat.
Events with equal times keep their input order.
"""


def _time(value: str) -> str:
    iso = timeline.normalize_time(value)
    if iso is None:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date or time (2026-01-31, 2026-01-31T12:00:00Z)")
    return iso


class Timeline(Filter):
    prog = "vex-timeline"
    stage = "timeline"
    summary = "turn enriched records into a sorted timeline"
    description = ("Turn enriched IOC records into timeline events, one NDJSON line each, sorted by time "
                   "(submissions, analyses, compile and signing times, whois, DNS resolutions, "
                   "certificates, knowledge-base notes).")
    epilog = EPILOG

    @classmethod
    def add_arguments(cls, p: ArgumentParser) -> None:
        p.add_argument("--since", type=_time, metavar="TIME", help="only events at or after TIME")
        p.add_argument("--until", type=_time, metavar="TIME", help="only events before TIME")
        p.add_argument("--ioc", action="append", default=[], metavar="IOC", help="only this IOC (repeatable)")
        p.add_argument("--event", action="append", default=[], metavar="NAME", help="only this event (repeatable)")
        p.add_argument("--buffer", type=int, default=100_000, metavar="N",
                       help="events sorted in memory before spilling to disk (default 100000)")

    def __init__(self, args: argparse.Namespace):
        super().__init__(args)
        if args.buffer < 1:
            raise StageError("--buffer must be at least 1", Exit.USAGE)
        self.iocs = set(args.ioc)
        self.kinds = set(args.event)

    def keep(self, event: dict) -> bool:
        a = self.args
        return ((a.since is None or event["time"] >= a.since) and (a.until is None or event["time"] < a.until)
                and (not self.iocs or event["ioc"] in self.iocs) and (not self.kinds or event["event"] in self.kinds))

    def run(self) -> None:
        runs: list[IO[bytes]] = []
        # (time, seq, event): events are serialised only when written, since
        # holding many serialised buffers costs several times their size.
        buffer: list[tuple[str, int, dict]] = []
        seq = 0
        try:
            for _source, _line, value in self.json_values():
                for event in timeline.events(value):
                    if not self.keep(event):
                        continue
                    buffer.append((event["time"], seq, event))
                    seq += 1
                    if len(buffer) >= self.args.buffer:
                        runs.append(self.spill(buffer))
                        buffer = []
            buffer.sort(key=_order)
            streams = [self.read_run(f) for f in runs] + [((t, n, orjson.dumps(e)) for t, n, e in buffer)]
            for _time, _seq, line in heapq.merge(*streams):
                self.emit_raw(line)
        finally:
            for f in runs:
                f.close()

    @staticmethod
    def spill(buffer: list[tuple[str, int, dict]]) -> IO[bytes]:
        """One sorted run in an anonymous temporary file (gone when closed)."""
        buffer.sort(key=_order)
        f = tempfile.TemporaryFile()
        f.writelines(b"%s\t%d\t%s\n" % (time.encode(), seq, orjson.dumps(event)) for time, seq, event in buffer)
        f.seek(0)
        return f

    @staticmethod
    def read_run(f: IO[bytes]) -> Iterator[tuple[str, int, bytes]]:
        for raw in f:
            time, seq, line = raw.rstrip(b"\n").split(b"\t", 2)
            yield time.decode(), int(seq), line


def _order(item: tuple[str, int, dict]) -> tuple[str, int]:
    return item[0], item[1]
