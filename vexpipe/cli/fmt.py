"""vex-fmt: the view at the end of the pipe."""

from __future__ import annotations

import argparse
import collections
import csv
import io
import os
import shutil
import sys
from typing import Any


from vexpipe import records, render
from vexpipe.runtime import ArgumentParser, Filter

EPILOG = """\
examples:
  vex-detect case.log | vex-lookup | vex-mitre | vex-kb annotate | vex-fmt
  vex-fmt --format console < enriched.ndjson        one block per IOC
  vex-fmt --format csv --defang < enriched.ndjson > iocs.csv
  vex-timeline < enriched.ndjson | vex-fmt --format timeline
  vex-fmt --format ndjson --defang < enriched.ndjson     records, safe to paste

formats: table (default), console, csv, markdown, timeline, ndjson
safety: control characters and terminal escape sequences in any value are shown
  as \\xNN, never sent to the terminal; CSV cells starting with = + - @, tab or
  CR get a leading apostrophe so spreadsheets do not run them as formulas.
colour: only on a terminal, never with NO_COLOR set or --no-color.
"""

COLOURS = {"MALICIOUS": "\x1b[1;31m", "SUSPICIOUS": "\x1b[33m", "CLEAN": "\x1b[32m", "UNKNOWN": "\x1b[2m",
           "ERROR": "\x1b[35m", "SKIPPED": "\x1b[2m"}
RESET = "\x1b[0m"
COLUMNS = ("verdict", "type", "ioc", "detections", "details")


class Fmt(Filter):
    prog = "vex-fmt"
    stage = "fmt"
    summary = "show records as tables, blocks, CSV, Markdown or a timeline"
    description = ("Show vexpipe records (IOC records, events with iocs, timeline events) for people: "
                   "aligned tables with verdict colours, one block per IOC, CSV, Markdown, a readable "
                   "timeline, or NDJSON (with --defang).")
    epilog = EPILOG

    @classmethod
    def add_arguments(cls, p: ArgumentParser) -> None:
        p.add_argument("--format", choices=("table", "console", "csv", "markdown", "timeline", "ndjson"),
                       default="table", help="output format (default table)")
        p.add_argument("--defang", action="store_true",
                       help="write every IOC defanged (hxxp, [.], [@]); hashes unchanged")
        p.add_argument("--no-color", action="store_true", help="no colours even on a terminal")
        p.add_argument("--width", type=int, metavar="N", help="table width (default: the terminal's, or 120)")
        p.add_argument("--summary", action="store_true",
                       help="counts per verdict and per type at the end (on stderr with --format ndjson)")

    def __init__(self, args: argparse.Namespace):
        super().__init__(args)
        self.colour = (not args.no_color and "NO_COLOR" not in os.environ and sys.stdout.isatty()
                       and args.format in ("table", "console", "timeline"))
        self.width = args.width or shutil.get_terminal_size((120, 24)).columns
        self.verdicts: collections.Counter = collections.Counter()
        self.types: collections.Counter = collections.Counter()
        self.rows = 0

    def text(self, line: str) -> None:
        self.emit_raw(line.encode("utf-8", "replace"))

    def paint(self, verdict: str, text: str) -> str:
        return f"{COLOURS.get(verdict, '')}{text}{RESET}" if self.colour and verdict in COLOURS else text

    def run(self) -> None:
        fmt = self.args.format
        if fmt == "csv":
            self.text(self.csv_line(COLUMNS + ("link", "mitre", "tags")))
        elif fmt == "markdown":
            self.text("| Verdict | Type | IOC | Detections | Details |")
            self.text("|---|---|---|---|---|")
        elif fmt == "table":
            self.text(self.table_line({"verdict": "VERDICT", "type": "TYPE", "ioc": "IOC", "detections": "ENGINES",
                                       "details": "DETAILS"}, header=True))
        for _source, _line, value in self.json_values():
            if self.args.defang:
                value = render.defang_value(value)
            if fmt == "ndjson":
                self.emit(value)
                self.count_of(value)
                continue
            if isinstance(value, dict) and "time" in value and "event" in value:
                self.timeline_line(value)
                continue
            recs = list(records.ioc_records(value))
            if not recs and isinstance(value, dict) and "raw" in value:
                recs = [{"ioc": value.get("raw", ""), "type": "raw", "errors": value.get("errors")}]
            for rec in recs:
                self.show(rec)
        if self.args.summary:
            self.print_summary()

    def count_of(self, value: Any) -> None:
        for rec in records.ioc_records(value):
            self.verdicts[render.verdict_of(rec)] += 1
            self.types[str(rec.get("type"))] += 1

    def show(self, rec: dict) -> None:
        verdict = render.verdict_of(rec)
        self.verdicts[verdict] += 1
        self.types[str(rec.get("type"))] += 1
        vt = records.field(rec, "vt")
        row = {"verdict": verdict, "type": str(rec.get("type", "")), "ioc": str(rec.get("ioc", "")),
               "detections": render.detections(vt), "details": render.details(rec)}
        fmt = self.args.format
        if fmt == "table":
            self.text(self.table_line(row))
        elif fmt == "markdown":
            cells = [render.safe(row[c]).replace("|", "\\|") for c in COLUMNS]
            self.text("| " + " | ".join(cells) + " |")
        elif fmt == "csv":
            mitre = " ".join(str(t.get("id", "")) for t in records.field(rec, "mitre", list) if isinstance(t, dict))
            tags = " ".join(str(t) for t in records.field(records.field(rec, "kb"), "tags", list))
            self.text(self.csv_line([row[c] for c in COLUMNS] + [vt.get("link", ""), mitre, tags]))
        elif fmt == "timeline":
            self.text(f"{'':20s}  {render.safe(row['ioc'])}  {self.paint(verdict, verdict)}  {render.safe(row['details'])}")
        else:
            self.console_block(rec, row)

    def table_line(self, row: dict, header: bool = False) -> str:
        fixed = {"verdict": 10, "type": 6, "detections": 7}
        rest = max(self.width - sum(fixed.values()) - 8, 30)
        widths = {**fixed, "ioc": max(rest * 11 // 20, 20)}
        widths["details"] = max(rest - widths["ioc"], 10)
        cells = [render.fit(render.safe(row[c]), widths[c]) for c in COLUMNS]
        if not header:
            cells[0] = self.paint(row["verdict"], cells[0])
        return "  ".join(cells).rstrip()

    def csv_line(self, cells) -> str:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="").writerow([render.csv_cell(c) for c in cells])
        return buf.getvalue()

    def timeline_line(self, event: dict) -> None:
        when = str(event.get("time", "")).replace("T", " ")
        self.text(f"{render.safe(when):20s}  {render.safe(event.get('ioc'))}  "
                  f"{render.safe(event.get('event'))}  {render.safe(event.get('detail'))}".rstrip())

    def console_block(self, rec: dict, row: dict) -> None:
        self.text(f"{self.paint(row['verdict'], row['verdict'])}  {render.safe(row['ioc'])}  ({render.safe(row['type'])})")
        facts = render.facts(rec)
        width = max((len(name) for name, _ in facts), default=0)
        for name, value in facts:
            self.text(f"    {render.safe(name):{width}s}  {render.safe(value)}")
        self.text("")

    def print_summary(self) -> None:
        lines = ["verdicts: " + ", ".join(f"{k} {v}" for k, v in self.verdicts.most_common()),
                 "types: " + ", ".join(f"{k} {v}" for k, v in self.types.most_common())]
        for line in lines:
            if self.args.format == "ndjson":
                self.error(line)
            else:
                self.text(line)
