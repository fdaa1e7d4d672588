"""`make bench`: the figures the issues name, next to their references, from one run.

Not a test: the machines are shared and noisy, so each figure is one run's,
printed with its ratio to the reference measured in the same run.

    python bench/run.py --peers bench/.venv-peers/bin/python [--only detect|lookup|stages] [--size-mb 100] [--quick]
"""

from __future__ import annotations

import argparse
import hashlib
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

    Peak RSS is the child's own high-water mark (VmHWM in /proc/PID/status), read
    until it exits: ru_maxrss from wait4 would report this (large) parent's size,
    since on Linux it survives the fork and exec. Output goes to a real file:
    GNU grep stops at its first match when it sees its output is /dev/null.
    """
    DATA.mkdir(exist_ok=True)
    peak = 0
    with open(stdin or os.devnull, "rb") as f, open(DATA / "output.tmp", "wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=f, stdout=out, env=env)
        status = Path(f"/proc/{proc.pid}/status")
        while proc.poll() is None:
            try:
                for line in status.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]))
            except (OSError, ValueError):
                pass
            time.sleep(0.02)
        seconds = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        raise SystemExit(f"bench: {cmd[0]} exited {proc.returncode}")
    return seconds, peak


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


def run_lookup(env: dict, args: list[str], data: bytes) -> tuple[float, list[dict], int]:
    """Wall seconds, output records and exit status of one vex-lookup run fed ``data``."""
    start = time.perf_counter()
    p = subprocess.run([str(BIN / "vex-lookup"), "-q", "--fail-on", "none", *args], input=data,
                       capture_output=True, env=env, check=False)
    seconds = time.perf_counter() - start
    if p.returncode not in (0, 3):
        raise SystemExit(f"bench: vex-lookup exited {p.returncode}: {p.stderr.decode()[-500:]}")
    import orjson

    return seconds, [orjson.loads(line) for line in p.stdout.splitlines()], p.returncode


def bench_lookup(args: argparse.Namespace) -> None:
    import shutil

    sys.path.insert(0, str(HERE.parent / "tests"))
    from vtserver import VTServer

    work = DATA / "lookup"
    shutil.rmtree(work, ignore_errors=True)
    server = VTServer(latency=0.05)
    base = server.start()
    env = {**os.environ, "XDG_CACHE_HOME": str(work / "cache"), "XDG_CONFIG_HOME": str(work / "config"),
           "VT_API_KEY": "test-key-premium", "VEXPIPE_BASE_URL": base, "VEXPIPE_BACKOFF": "0.2"}
    kinds = [lambda i: f"clean-bench-{i}.com", lambda i: f"203.0.{i % 200}.{i // 200 + 1}".replace("203.0", "45.83"),
             lambda i: f"http://clean-bench-{i}.net/path?q={i}", lambda i: hashlib.md5(str(i).encode()).hexdigest()]
    iocs = [kinds[i % 4](i) for i in range(1000)]
    data = "".join(f"{x}\n" for x in iocs).encode()
    jobs, latency = 16, server.latency
    bound = jobs / latency
    print(f"\n== vex-lookup: VirusTotal-compatible server on 127.0.0.1, {latency * 1000:.0f} ms latency ==")

    secs, recs, _ = run_lookup(env, ["-j", str(jobs), "--tier", "premium"], data)
    sent = len(server.requests())
    enriched = sum(1 for r in recs if "verdict" in r)
    print(f"cold   1,000 distinct IOCs, -j {jobs}: {secs:6.2f} s, {sent} requests, {sent / secs:6.1f} req/s "
          f"= {sent / secs / bound:.0%} of the concurrency bound ({bound:.0f} req/s = j / latency); "
          f"{enriched}/1000 enriched   [target >= 80%]")
    server.log.clear()
    secs, recs, _ = run_lookup(env, ["-j", str(jobs), "--tier", "premium"], data)
    print(f"warm   1,000 distinct IOCs: {secs:6.2f} s ({1000 / secs:,.0f} records/s with start-up), "
          f"{len(server.requests())} requests, {sum(1 for r in recs if r.get('vt', {}).get('cached'))} cache hits")
    import orjson

    records = b"".join(orjson.dumps({"ioc": iocs[i % 1000], "type": t, "seen": {"source": "bench", "line": i}}) + b"\n"
                       for i, t in ((i, ["domain", "ipv4", "url", "md5"][i % 1000 % 4]) for i in range(100_000)))
    secs, recs, _ = run_lookup(env, ["--tier", "premium"], records)
    print(f"warm   100,000 IOC records (those 1,000 IOCs repeated), all from the cache: {secs:6.2f} s = "
          f"{len(recs) / secs:,.0f} records/s   [target >= 50,000]")

    if args.quick:
        server.stop()
        return
    # The free tier: 4 requests in any 60 s window, enforced by the server too.
    server.reset()
    server.latency, server.per_minute = latency, 4
    free_env = {**env, "VT_API_KEY": "test-key-free", "XDG_CACHE_HOME": str(work / "cache-free")}
    eight = "".join(f"clean-rate-{i}.org\n" for i in range(8)).encode()
    secs, recs, _ = run_lookup(free_env, ["--tier", "free", "-j", "4"], eight)
    times = sorted(r.t for r in server.requests())
    print(f"free tier, 8 IOCs at 4/min: {secs:5.1f} s, {len(server.requests())} requests, "
          f"{[r.status for r in server.requests()].count(429)} answered 429, first four within "
          f"{times[3] - times[0]:.2f} s, fifth {times[4] - times[0]:.1f} s after the first, "
          f"max {server.max_in_window(60)} in any 60 s   [target < 65 s, zero 429s]")

    server.reset()
    server.latency, server.p_5xx, server.p_reset = latency, 0.10, 0.05
    secs, recs, code = run_lookup({**env, "XDG_CACHE_HOME": str(work / "cache-faults")},
                                  ["-j", str(jobs), "--tier", "premium"], data)
    statuses = [r.status for r in server.requests()]
    faults = sum(1 for s in statuses if s >= 500 or s == -1)
    errors = sum(1 for r in recs if "errors" in r)
    print(f"faults: 10% 5xx + 5% resets on 1,000 IOCs: {faults} injected in {len(statuses)} requests, "
          f"{len(recs)}/1000 records out, {sum(1 for r in recs if 'verdict' in r)} enriched, {errors} with an "
          f"error, exit {code}   [target: all enriched, none missing]")
    server.stop()


def enriched_corpus(n: int) -> Path:
    """``n`` enriched records (NDJSON): 500 IOCs investigated by vex-lookup against the test
    server, repeated with their own ``seen`` as a log's IOCs repeat."""
    import shutil

    path = DATA / f"enriched-{n}.ndjson"
    if path.exists():
        return path
    sys.path.insert(0, str(HERE.parent / "tests"))
    from vtserver import VTServer

    server = VTServer()
    work = DATA / "enrich-work"
    shutil.rmtree(work, ignore_errors=True)
    env = {**os.environ, "XDG_CACHE_HOME": str(work), "VT_API_KEY": "test-key-premium",
           "VEXPIPE_BASE_URL": server.start()}
    iocs = [f"{'malicious' if i % 3 == 0 else 'clean'}-{i}.com" for i in range(200)] + [
        hashlib.sha256(str(i).encode()).hexdigest() for i in range(200)] + [f"45.83.{i // 250}.{i % 250 + 1}"
                                                                             for i in range(100)]
    for h in iocs[200:400:2]:
        server.profiles[h] = "malicious"
    base = subprocess.run([str(BIN / "vex-lookup"), "-q", "--investigate", "--tier", "premium", "-j", "16",
                           "--fail-on", "none"], input="".join(f"{x}\n" for x in iocs).encode(),
                          capture_output=True, env=env, check=True).stdout.splitlines()
    server.stop()
    import orjson

    records = [orjson.loads(line) for line in base]
    with open(path, "wb") as out:
        for i in range(n):
            rec = dict(records[i % len(records)])
            rec["seen"] = {"source": "bench.log", "line": i + 1, "col": 1, "match": rec["ioc"]}
            out.write(orjson.dumps(rec) + b"\n")
    return path


def bench_stages(args: argparse.Namespace) -> None:
    n = 500_000
    path = enriched_corpus(n)
    small = enriched_corpus(n // 10)
    size = path.stat().st_size / 1e6
    print(f"\n== vex-mitre, vex-timeline, vex-stix: {n:,} enriched records ({size:.0f} MB, 500 distinct IOCs) ==")
    jq_secs, jq_rss = measure(["jq", "-c", ". + {mitre: []}", str(path)])
    print(f"{'':30s}{'records/s':>12s}{'peak RSS':>11s}{'vs jq':>9s}")
    jq_name = "jq -c '. + {mitre: []}'"
    print(f"{jq_name:30s}{n / jq_secs:12,.0f}{jq_rss / 1024:8.1f} MB{'1.00x':>9s}")
    stages = [("vex-mitre", ["vex-mitre"]), ("vex-mitre --layer", ["vex-mitre", "--layer", str(DATA / "layer.json")]),
              ("vex-timeline", ["vex-timeline"]), ("vex-stix", ["vex-stix"]), ("vex-stix --ndjson", ["vex-stix", "--ndjson"])]
    peaks = {}
    for name, cmd in stages:
        secs, rss = measure([str(BIN / cmd[0]), *cmd[1:], str(path)])
        peaks[name] = rss
        print(f"{name:30s}{n / secs:12,.0f}{rss / 1024:8.1f} MB{jq_secs / secs:8.2f}x")
    print("target: vex-mitre >= 3x jq")
    for name in ("vex-timeline", "vex-stix"):
        _, rss_small = measure([str(BIN / name), str(small)])
        print(f"{name}: peak RSS {rss_small / 1024:.1f} MB on {n // 10:,} records, {peaks[name] / 1024:.1f} MB on "
              f"{n:,} (10x): {peaks[name] / rss_small:.2f}x   [target: flat]")


SECTIONS = {"detect": bench_detect, "lookup": bench_lookup, "stages": bench_stages}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--peers", help="python of the venv holding the peer tools (ioc-finder)")
    p.add_argument("--only", choices=sorted(SECTIONS), action="append", help="run only these sections")
    p.add_argument("--size-mb", type=float, default=100, help="detect corpus size (default 100)")
    p.add_argument("--peer-slice-mb", type=float, default=5, help="ioc-finder's slice of it (default 5)")
    p.add_argument("--quick", action="store_true", help="skip the slow scenarios (the 60 s rate-limit one)")
    args = p.parse_args()
    for name in args.only or SECTIONS:
        SECTIONS[name](args)


if __name__ == "__main__":
    main()
