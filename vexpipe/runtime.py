"""The filter runtime every vexpipe executable runs on.

One class, :class:`Filter`, holds what the executables share (DESIGN.md): the
common flags, reading input in chunks from files or stdin, writing NDJSON
records, diagnostics on stderr, bad input lines, the exit status and what
happens on a closed pipe or Ctrl-C. An executable subclasses it, adds its own
arguments in :meth:`Filter.add_arguments` and its own loop in :meth:`Filter.run`.

Streaming: input is read with ``os.read`` in blocks of up to 1 MiB, which on a
pipe returns as soon as anything is there; records emitted while a block is
processed are written and flushed before the next read blocks. So ``tail -F log
| vex-detect`` shows each record as soon as its line arrives, while a file
streams at full speed in big blocks, and memory stays flat.

Decoding policy: input is UTF-8. Bytes that are not valid UTF-8 are replaced by
U+FFFD (one warning per input source; ``--strict`` stops with exit 65 instead),
so the rest of the line is still scanned. NUL bytes are ordinary characters.
"""

from __future__ import annotations

import argparse
import os
import sys
from enum import IntEnum
from typing import Any, ClassVar, Iterator, NamedTuple, NoReturn

import orjson

from vexpipe import __version__, records

BLOCK = 1 << 20
# A line longer than this with no newline is scanned in pieces (text stages)...
SEGMENT = 1 << 20
# ...and refused as a record (JSON stages): a JSON value has to be held whole.
MAX_JSON_LINE = 64 << 20


class Exit(IntEnum):
    """Exit statuses shared by every executable (DESIGN.md, Exit status)."""

    OK = 0
    SUSPICIOUS = 1
    MALICIOUS = 2
    INCOMPLETE = 3
    USAGE = 64
    DATA = 65
    UNAVAILABLE = 69
    SOFTWARE = 70
    IOERR = 74
    NOPERM = 77
    CONFIG = 78
    INTERRUPTED = 130
    PIPE = 141


class StageError(Exception):
    """A failure that ends the run: printed as ``prog: message``, exits with ``code``."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error exits 64: argparse's own 2 would read as MALICIOUS."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(Exit.USAGE, f"{self.prog}: error: {message}\n")


def verdict_exit(worst: int, incomplete: bool, fail_on: str | None) -> int:
    """The exit status for the verdicts that passed through: 2 > 3 > 1 > 0.

    ``worst`` is the highest :data:`records.SEVERITY` seen (-1 for none);
    ``incomplete`` whether some IOC could not be enriched. Incomplete never reads
    as clean, but MALICIOUS outranks it.
    """
    if fail_on is None:
        return Exit.OK
    if worst >= records.SEVERITY["MALICIOUS"]:
        return Exit.MALICIOUS
    if incomplete:
        return Exit.INCOMPLETE
    if worst >= records.SEVERITY[fail_on]:
        return Exit.SUSPICIOUS
    return Exit.OK


class Segment(NamedTuple):
    """A piece of decoded text input: whole lines, or part of one very long line.

    ``line`` is the 1-based number of its first line; ``col`` the 1-based column
    (in characters) where it starts on that line (1 unless a long line was cut).
    """

    source: str
    text: str
    line: int
    col: int


def _fail_on(value: str) -> str | None:
    level = value.upper()
    if level == "NONE":
        return None
    if level not in ("MALICIOUS", "SUSPICIOUS"):
        raise argparse.ArgumentTypeError("choose MALICIOUS, SUSPICIOUS or none")
    return level


class Filter:
    """Base of every vexpipe executable. Subclasses set the class attributes and :meth:`run`."""

    prog: ClassVar[str] = "vex"
    stage: ClassVar[str] = "vex"  # the ``stage`` of the error entries it writes
    summary: ClassVar[str] = ""  # one line, for the man page's NAME section
    description: ClassVar[str] = ""
    epilog: ClassVar[str | None] = None
    default_fail_on: ClassVar[str | None] = None
    takes_files: ClassVar[bool] = True  # False: the executable adds FILE to its subcommands itself

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.quiet: bool = args.quiet
        self.fail_on: str | None = args.fail_on
        self.status = Exit.OK  # set to 74 when an input could not be read
        self.worst = -1
        self.incomplete = False
        self._out: list[bytes] = []
        self._warned: set[tuple[str, str]] = set()

    # --- arguments ---------------------------------------------------------

    @classmethod
    def parser(cls) -> ArgumentParser:
        """The full argument parser (also what the man page is generated from)."""
        p = ArgumentParser(
            prog=cls.prog,
            description=cls.description,
            epilog=cls.epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        cls.add_arguments(p)
        if cls.takes_files:
            add_file_arguments(p)
        else:
            p.set_defaults(files=[], more_files=[])
        common = p.add_argument_group("common options")
        common.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
        common.add_argument("-q", "--quiet", action="store_true",
                            help="no diagnostics on stderr except errors")
        common.add_argument("--strict", action="store_true",
                            help="stop with exit 65 at the first bad input line")
        default = cls.default_fail_on or "none"
        common.add_argument(
            "--fail-on", type=_fail_on, default=cls.default_fail_on, metavar="LEVEL",
            help="exit by the verdicts that pass through: 2 if a MALICIOUS record was seen, "
            "3 if some IOC could not be enriched, 1 if a record at or above LEVEL "
            f"(MALICIOUS, SUSPICIOUS or none; default: {default})",
        )
        return p

    @classmethod
    def add_arguments(cls, parser: ArgumentParser) -> None:
        """Add the executable's own arguments."""

    def run(self) -> None:
        raise NotImplementedError

    # --- entry point -------------------------------------------------------

    @classmethod
    def main(cls, argv: list[str] | None = None) -> NoReturn:
        """Parse arguments, run, and exit with the documented status; never a traceback."""
        code: int = Exit.OK
        try:
            args = cls.parser().parse_args(argv)
            stage = cls(args)
            try:
                stage.run()
            finally:
                stage.flush()
            code = stage.exit_code()
        except StageError as e:
            sys.stderr.write(f"{cls.prog}: {e}\n")
            code = e.code
        except KeyboardInterrupt:
            sys.stderr.write(f"{cls.prog}: interrupted\n")
            code = Exit.INTERRUPTED
        except BrokenPipeError:
            # The reader went away (| head): stop quietly, as grep does on SIGPIPE.
            _silence_stdout()
            code = Exit.PIPE
        except Exception as e:  # a bug: one line, not a traceback (VEXPIPE_DEBUG=1 shows it)
            if os.environ.get("VEXPIPE_DEBUG"):
                raise
            sys.stderr.write(f"{cls.prog}: internal error: {type(e).__name__}: {e} "
                             "(set VEXPIPE_DEBUG=1 for details)\n")
            code = Exit.SOFTWARE
        sys.stderr.flush()
        sys.exit(code)

    def exit_code(self) -> int:
        if self.status:
            return self.status
        return verdict_exit(self.worst, self.incomplete, self.fail_on)

    # --- diagnostics -------------------------------------------------------

    def warn(self, message: str) -> None:
        """A diagnostic on stderr, unless --quiet."""
        if not self.quiet:
            sys.stderr.write(f"{self.prog}: {message}\n")

    def error(self, message: str) -> None:
        """A diagnostic on stderr even with --quiet."""
        sys.stderr.write(f"{self.prog}: {message}\n")

    def warn_once(self, key: tuple[str, str], message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self.warn(message)

    def bad_line(self, source: str, line: int, raw: str, code: str, message: str) -> None:
        """An input line the stage cannot use: exit 65 under --strict, else say so and
        write an error record that keeps the raw line (nothing vanishes)."""
        if self.args.strict:
            raise StageError(f"{source}:{line}: {message}", Exit.DATA)
        self.warn(f"{source}:{line}: {message}")
        self.pass_on(records.error_record(raw, self.stage, code, message))

    def pass_on(self, record: Any) -> None:
        """Write a record the stage did not process (an error record). A stage that keeps
        records in flight (vex-lookup) queues it instead, so input order holds."""
        self.emit(record)

    # --- output ------------------------------------------------------------

    def emit(self, record: Any) -> None:
        """Write one record; it reaches the reader at the next flush (before the next read)."""
        out = self._out
        out.append(orjson.dumps(record))
        if self.fail_on is not None:
            self.track(record)
        # Hand small batches to the buffered stdout: keeping a whole block's worth
        # of serialised records alive until the flush is ten times slower.
        if len(out) >= 512:
            self._write()

    def emit_raw(self, line: bytes) -> None:
        """Write one already-serialised NDJSON line (no newline)."""
        self._out.append(line)
        if len(self._out) >= 512:
            self._write()

    def track(self, record: Any) -> None:
        """Note the verdicts and missing enrichments in a record, for the exit status."""
        for r in records.ioc_records(record):
            sev = records.SEVERITY.get(records.verdict(r), -1)
            if sev > self.worst:
                self.worst = sev
            if not self.incomplete and records.is_incomplete(r):
                self.incomplete = True

    def _write(self) -> None:
        out = self._out
        self._out = []
        sys.stdout.buffer.write(b"\n".join(out) + b"\n")

    def flush(self) -> None:
        if self._out:
            self._write()
        sys.stdout.buffer.flush()

    # --- input -------------------------------------------------------------

    def input_names(self) -> list[str]:
        return (self.args.files + self.args.more_files) or ["-"]

    def sources(self) -> Iterator[tuple[str, int]]:
        """``(name, fd)`` for each input; an unreadable file is reported and exits 74 at the end."""
        for name in self.input_names():
            if name == "-":
                yield "<stdin>", sys.stdin.fileno()
                continue
            try:
                fd = os.open(name, os.O_RDONLY)
            except OSError as e:
                self.error(f"{name}: {e.strerror}")
                self.status = Exit.IOERR
                continue
            try:
                yield name, fd
            finally:
                os.close(fd)

    def blocks(self, name: str, fd: int) -> Iterator[bytes]:
        """Raw blocks of one input; output is flushed before every read that may block."""
        while True:
            self.flush()
            self.wait_readable(fd)
            try:
                block = os.read(fd, BLOCK)
            except OSError as e:
                self.error(f"{name}: {e.strerror}")
                self.status = Exit.IOERR
                return
            if not block:
                return
            yield block

    def wait_readable(self, fd: int) -> None:
        """Called before each read that may block. A stage with work in flight (vex-lookup)
        overrides it to keep writing finished records while the input is quiet."""

    def decode(self, data: bytes, source: str, line: int) -> str:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as e:
            where = line + data.count(b"\n", 0, e.start)
            if self.args.strict:
                raise StageError(f"{source}:{where}: invalid UTF-8", Exit.DATA) from None
            self.warn_once((source, "utf8"), f"{source}:{where}: invalid UTF-8 replaced by U+FFFD")
            return data.decode("utf-8", "replace")

    def text_segments(self) -> Iterator[Segment]:
        """Decoded text in pieces of whole lines; a line longer than 1 MiB comes in pieces
        cut at white space where possible (an IOC is never cut across a space)."""
        for source, fd in self.sources():
            line, col, buf = 1, 1, b""
            for block in self.blocks(source, fd):
                buf = buf + block if buf else block
                while True:
                    nl = buf.rfind(b"\n")
                    if nl >= 0:
                        cut = nl + 1
                    elif len(buf) >= SEGMENT:
                        cut = _cut_point(buf)
                    else:
                        break
                    seg, buf = buf[:cut], buf[cut:]
                    text = self.decode(seg, source, line)
                    yield Segment(source, text, line, col)
                    line, col = _advance(text, line, col)
            if buf:
                yield Segment(source, self.decode(buf, source, line), line, col)

    def lines(self) -> Iterator[tuple[str, int, bytes]]:
        """``(source, line number, line)`` for every input line, without its newline."""
        for source, fd in self.sources():
            lineno, parts, size, too_long = 0, [], 0, False
            for block in self.blocks(source, fd):
                pieces = block.split(b"\n")
                for piece in pieces[:-1]:
                    lineno += 1
                    if too_long:
                        too_long = False
                        self._too_long(source, lineno, parts)
                    elif parts:
                        parts.append(piece)
                        yield source, lineno, b"".join(parts)
                    else:
                        yield source, lineno, piece
                    parts, size = [], 0
                last = pieces[-1]
                if last and not too_long:
                    parts.append(last)
                    size += len(last)
                    if size > MAX_JSON_LINE:
                        too_long, parts = True, parts[:1]
            if too_long:
                self._too_long(source, lineno + 1, parts)
            elif parts:
                yield source, lineno + 1, b"".join(parts)

    def _too_long(self, source: str, lineno: int, parts: list[bytes]) -> None:
        head = parts[0][:1024].decode("utf-8", "replace") if parts else ""
        self.bad_line(source, lineno, head, "line_too_long",
                      f"line longer than {MAX_JSON_LINE >> 20} MiB (raw keeps its first 1 KiB)")

    def json_values(self, bare_values: bool = True) -> Iterator[tuple[str, int, Any]]:
        """Parsed input lines, for stages that read records.

        A JSON line gives its value. A line that is not JSON is, with
        ``bare_values``, a bare IOC value and becomes an IOC record. Broken JSON
        and lines that are neither go through :meth:`bad_line`. Blank lines are
        skipped.
        """
        for source, lineno, line in self.lines():
            stripped = line.strip()
            if not stripped:
                continue
            first = stripped[:1]
            if first in b'{["' or not bare_values:
                try:
                    value = orjson.loads(stripped)
                except orjson.JSONDecodeError as e:
                    value = self._loads_lossy(stripped, line, source, lineno, e)
                    if value is BAD:
                        continue
                if isinstance(value, str) and bare_values:
                    stripped, value = value.encode(), None
                else:
                    yield source, lineno, value
                    continue
            record = records.from_bare_value(stripped.decode("utf-8", "replace"))
            if record is None:
                self.bad_line(source, lineno, line.decode("utf-8", "replace"), "not_an_ioc",
                              "neither a JSON record nor an IOC value")
                continue
            yield source, lineno, record

    def _loads_lossy(self, data: bytes, raw: bytes, source: str, lineno: int, err: Exception) -> Any:
        """Retry a line that failed to parse only because of invalid UTF-8 in it;
        :data:`BAD` (after :meth:`bad_line`) if it really is broken."""
        if not data.isascii():
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                try:
                    return orjson.loads(self.decode(data, source, lineno))
                except orjson.JSONDecodeError as e:
                    err = e
        self.bad_line(source, lineno, raw.decode("utf-8", "replace"), "bad_json",
                      f"invalid JSON: {err}")
        return BAD


BAD = object()


def add_file_arguments(p: argparse.ArgumentParser) -> None:
    """FILE arguments and -f FILE, as every filter takes them."""
    p.add_argument("files", nargs="*", metavar="FILE", help="input files; none or - reads standard input")
    p.add_argument("-f", "--file", dest="more_files", action="append", default=[],
                   metavar="FILE", help="an input file (repeatable; same as a FILE argument)")


def _cut_point(buf: bytes) -> int:
    """Where to cut a long line: after its last space or tab in the second half, else
    at a UTF-8 character boundary near the end."""
    half = len(buf) // 2
    space = max(buf.rfind(b" ", half), buf.rfind(b"\t", half))
    if space >= 0:
        return space + 1
    cut = len(buf) - 4
    while cut > 0 and buf[cut] & 0xC0 == 0x80:
        cut -= 1
    return cut


def _advance(text: str, line: int, col: int) -> tuple[int, int]:
    """Line and column right after ``text``, which started at ``line``/``col``."""
    newlines = text.count("\n")
    if newlines:
        return line + newlines, len(text) - text.rfind("\n")
    return line, col + len(text)


def _silence_stdout() -> None:
    """Point fd 1 at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except OSError:
        pass
