"""`make bench`: the figures the issues name, next to their references, from one run.

Not a test: the machines are shared and noisy, so each figure is one run's,
printed with its ratio to the reference measured in the same run.

    python bench/run.py --peers bench/.venv-peers/bin/python [--only detect] [--size-mb 100]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / ".data"
BIN = Path(sys.executable).parent
sys.path.insert(0, str(HERE))


def measure(cmd: list[str], stdin: Path | None = None, env: dict | None = None) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one child process.

    Output goes to a real file: GNU grep stops at its first match when it sees
    that its output is /dev/null.
    """
    DATA.mkdir(exist_ok=True)
    with open(stdin or os.devnull, "rb") as f, open(DATA / "output.tmp", "wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=f, stdout=out, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"bench: {cmd[0]} exited {proc.returncode}")
    return seconds, usage.ru_maxrss


def corpus(size_mb: float) -> Path:
    """The deterministic mixed log corpus (bench/corpus.py), generated once and kept."""
    DATA.mkdir(exist_ok=True)
    path = DATA / f"corpus-{size_mb:g}MB.log"
    if not path.exists():
        print(f"generating {path.name}...", file=sys.stderr)
        with open(path, "w") as out:
            subprocess.run([sys.executable, str(HERE / "corpus.py"), str(size_mb)], stdout=out, check=True)
    return path


def score(expected: list[set], got: list[set]) -> tuple[int, int, int]:
    tp = sum(len(e & g) for e, g in zip(expected, got))
    fp = sum(len(g - e) for e, g in zip(expected, got))
    fn = sum(len(e - g) for e, g in zip(expected, got))
    return tp, fp, fn


def lenient(found: set, expected: set) -> set:
    """Drop a peer's domains/IPs that are only the host of a URL or address it also found
    (it reports both; vex-detect reports the URL once): not counted as false positives."""
    from vexpipe import privacy

    hosts = {privacy.url_host(v) for t, v in found if t == "url"}
    hosts |= {v.rsplit("@", 1)[1] for t, v in found if t == "email"}
    return {(t, v) for t, v in found if (t, v) in expected or v not in hosts}


def bench_detect(args: argparse.Namespace) -> None:
    from vexpipe import grammar

    path = corpus(args.size_mb)
    size = path.stat().st_size
    with open(path, "rb") as f:
        lines = sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 20), b""))
    mb = size / 1e6
    print(f"\n== vex-detect: {mb:.1f} MB mixed log corpus, {lines:,} lines ==")
    secs, rss = measure([str(BIN / "vex-detect"), str(path)])
    rows = [("vex-detect", mb / secs, lines / secs, rss, "")]
    grep_re = (r"https?://[^ \"<>]+|[0-9]{1,3}(\.[0-9]{1,3}){3}|[A-Fa-f0-9]{32,64}|"
               r"[A-Za-z0-9.-]+\.[A-Za-z]{2,}|[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+")
    gsecs, grss = measure(["grep", "-E", "-o", grep_re, str(path)], env={**os.environ, "LC_ALL": "C"})
    peer = None
    if args.peers:
        # ioc-finder holds the whole text in memory and takes minutes on 100 MB: a slice.
        slice_path = DATA / "corpus-slice.log"
        with open(path, "rb") as f, open(slice_path, "wb") as out:
            chunk = f.read(int(args.peer_slice_mb * 1e6))
            out.write(chunk[: chunk.rfind(b"\n") + 1])
        slice_lines = slice_path.read_bytes().count(b"\n")
        res = json.loads(subprocess.run([args.peers, str(HERE / "peer_iocfinder.py"), "speed", str(slice_path)],
                                        capture_output=True, check=True, text=True).stdout)
        peer = res["bytes"] / 1e6 / res["seconds"]
        rows.append(("ioc-finder", peer, slice_lines / res["seconds"], res["maxrss_kb"],
                     f"on a {args.peer_slice_mb:g} MB slice (it loads the whole text)"))
    rows.append(("grep -E -o", mb / gsecs, lines / gsecs, grss, "simple pattern, no validation, C locale"))
    print(f"{'':14s}{'MB/s':>8s}{'lines/s':>12s}{'peak RSS':>11s}{'vex-detect is':>16s}")
    ours = rows[0][1]
    for name, mbs, lps, kb, note in rows:
        ratio = "" if name == "vex-detect" else f"{ours / mbs:.2f}x it"
        print(f"{name:14s}{mbs:8.2f}{lps:12,.0f}{kb / 1024:9.1f} MB{ratio:>16s}  {note}")
    print(f"targets: >= 10 MB/s on one core ({ours:.1f}); >= 15x ioc-finder "
          f"({ours / peer:.1f}x)" if peer else f"targets: >= 10 MB/s on one core ({ours:.1f})")

    cases = [json.loads(line) for line in open(HERE / "labelled.ndjson", encoding="utf-8")]
    expected = [{tuple(x) for x in c["iocs"]} for c in cases]
    ours_found = [{(f.type, f.ioc) for f in grammar.find_iocs(c["text"])} for c in cases]
    results = [("vex-detect", score(expected, ours_found))]
    if args.peers:
        raw = json.loads(subprocess.run([args.peers, str(HERE / "peer_iocfinder.py"), "labelled",
                                         str(HERE / "labelled.ndjson")],
                                        capture_output=True, check=True, text=True).stdout)
        theirs = []
        for found, exp in zip(raw, expected):
            canon = set()
            for t, v in found:
                c = grammar.classify(v)
                canon.add((t, c[1] if c and c[0] == t else v.lower()))
            theirs.append(lenient(canon, exp))
        results.append(("ioc-finder", score(expected, theirs)))
    print(f"precision / recall on {len(cases)} labelled cases (bench/labelled.ndjson):")
    for name, (tp, fp, fn) in results:
        p = tp / (tp + fp) if tp + fp else 1.0
        r = tp / (tp + fn) if tp + fn else 1.0
        print(f"  {name:12s} precision {p:.3f}  recall {r:.3f}   (TP {tp}, FP {fp}, FN {fn})")


SECTIONS = {"detect": bench_detect}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--peers", help="python of the venv holding the peer tools (ioc-finder)")
    p.add_argument("--only", choices=sorted(SECTIONS), action="append", help="run only these sections")
    p.add_argument("--size-mb", type=float, default=100, help="detect corpus size (default 100)")
    p.add_argument("--peer-slice-mb", type=float, default=5, help="ioc-finder's slice of it (default 5)")
    args = p.parse_args()
    for name in args.only or SECTIONS:
        SECTIONS[name](args)


if __name__ == "__main__":
    main()
