"""Regenerate examples/vt-cache.sample.ndjson: SAMPLE DATA, not real VirusTotal answers.

The answers are made by the test suite's VirusTotal-compatible server
(tests/vtserver.py) for the IOCs vex-detect finds in examples/sample.log, looked
up with --investigate, and exported with vex-cache export. Run from the
repository root with the project's venv:  .venv/bin/python examples/make_sample_cache.py
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from vtserver import VTServer  # noqa: E402

BAD = ["update-checker.xyz", "cdn-static-files.top", "login-microsoftonline.support", "45.83.193.150",
       "194.26.29.112", "185.220.101.47", "45.155.205.233", "89.248.165.52",
       "http://update-checker.xyz/i.sh", "https://cdn-static-files.top/payload.bin",
       "http://45.83.193.150:1389/Exploit", "https://login-microsoftonline.support/common/oauth2",
       "8f3a1c2b4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8", "5b8e8a54c3c0d9e1a4f1c2b3d4e5f607",
       "3f786850e387550fdab836ed7e6dc881de23001b", "api.telegram-sync.info", "secure-payrolls.co.uk",
       "mail.secure-payrolls.co.uk"]
SUSPICIOUS = ["91.92.251.103", "tg-sync.pages.dev", "172.67.143.21"]
CLEAN = ["fonts.googleapis.com", "142.250.74.138", "ns1.xn--80ak6aa92e.com", "2a06:98c1:3121::3", "example.com"]


def main() -> None:
    server = VTServer()
    server.profiles.update({**{i: "malicious" for i in BAD}, **{i: "suspicious" for i in SUSPICIOUS},
                            **{i: "clean" for i in CLEAN}})
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "XDG_CACHE_HOME": tmp, "XDG_CONFIG_HOME": tmp, "XDG_DATA_HOME": tmp,
               "VT_API_KEY": "test-key-premium", "VEXPIPE_BASE_URL": server.start()}
        bin_ = Path(sys.executable).parent
        detected = subprocess.run([bin_ / "vex-detect", "--no-private", "--unique", ROOT / "examples" / "sample.log"],
                                  capture_output=True, check=True).stdout
        subprocess.run([bin_ / "vex-lookup", "-q", "--investigate", "--tier", "premium", "--fail-on", "none"],
                       input=detected, capture_output=True, env=env, check=True)
        exported = subprocess.run([bin_ / "vex-cache", "export"], capture_output=True, env=env, check=True).stdout
    server.stop()
    # Expired from the start: served only by --offline (marked stale), never
    # mistaken for a fresh answer in a cache that also holds real ones.
    import json

    entries = [json.loads(line) for line in exported.splitlines()]
    for entry in entries:
        entry["expires_at"] = entry["fetched_at"]
    exported = "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in entries).encode()
    (ROOT / "examples" / "vt-cache.sample.ndjson").write_bytes(exported)
    print(f"wrote {len(exported.splitlines())} sample answers", file=sys.stderr)


if __name__ == "__main__":
    main()
