"""Generate a deterministic mixed log corpus for the vex-detect benchmark.

Web, proxy, firewall, syslog, Windows and JSON log lines, most with 0-2 IOCs,
some defanged, plus the things that fool naive tools (file names, versions,
OIDs, UUIDs, MAC addresses, timestamps). Same seed, same bytes.

    python bench/corpus.py SIZE_MB > corpus.log
"""

from __future__ import annotations

import random
import sys

DOMAINS = [
    "evil-updates.com", "cdn.malware-drop.net", "login.micros0ft-support.info", "api.example-c2.ru",
    "files.badactor.cn", "mail.phish-bank.co.uk", "tracker.adnet.io", "update.sys-patch.org",
    "www.google.com", "storage.googleapis.com", "download.windowsupdate.com", "xn--80ak6aa92e.com",
]
FILES = ["report.pdf", "invoice.docx", "script.ps1", "config.yaml", "main.go", "setup.py", "app.exe",
         "README.md", "libc.so.6", "data.tar.gz", "System.Net.Http.dll"]
USERS = ["alice", "bob", "svc_backup", "root", "admin", "jdoe"]
PATHS = ["/index.html", "/wp-login.php", "/api/v1/items?id=42", "/static/app.js", "/download/payload.bin",
         "/images/logo.png", "/cgi-bin/test.cgi?q=%27or%201=1", "/"]


def _random_ip(r: random.Random) -> str:
    return f"{r.choice([45, 91, 103, 185, 194, 203, 10, 192, 172, 8])}.{r.randrange(256)}.{r.randrange(256)}.{r.randrange(1, 255)}"


# Real logs see the same addresses again and again: draw most from a pool of
# 5,000 (skewed towards the first), some fresh.
_POOL = [_random_ip(random.Random(i)) for i in range(5000)]


_POOL6 = [f"fe80::{i:x}:{i * 7 % 65536:x}:ff:fe{i % 256:02x}:{i * 13 % 65536:x}" for i in range(1, 2000)]


def ip6(r: random.Random) -> str:
    if r.random() < 0.2:
        return f"2001:db8:{r.randrange(9999)}::{r.randrange(99)}"
    return _POOL6[min(int(r.expovariate(1 / 200)), len(_POOL6) - 1)]


def ip(r: random.Random) -> str:
    if r.random() < 0.2:
        return _random_ip(r)
    return _POOL[min(int(r.expovariate(1 / 300)), len(_POOL) - 1)]


def hexs(r: random.Random, n: int) -> str:
    return "%0*x" % (n, r.getrandbits(n * 4))


def defang(s: str, r: random.Random) -> str:
    return s.replace(".", r.choice(["[.]", "(.)", "[dot]"])).replace("http", "hxxp")


def line(r: random.Random, i: int) -> str:
    ts = f"2026-11-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:{(i * 7) % 60:02d}.{i % 1000:03d}Z"
    kind = r.randrange(13)
    if kind == 0:  # web access log
        return (f'{ip(r)} - - [{ts}] "GET {r.choice(PATHS)} HTTP/1.1" {r.choice([200, 301, 404, 500])} '
                f'{r.randrange(99999)} "-" "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 '
                f'(KHTML, like Gecko) Chrome/120.0.6099.{r.randrange(300)} Safari/537.36"')
    if kind == 1:  # proxy
        return (f"{ts} {r.randrange(2000)} {ip(r)} TCP_MISS/200 {r.randrange(99999)} GET "
                f"http://{r.choice(DOMAINS)}{r.choice(PATHS)} - HIER_DIRECT/{ip(r)} text/html")
    if kind == 2:  # firewall
        return (f"{ts} fw01 kernel: [UFW BLOCK] IN=eth0 OUT= MAC=00:16:3e:{r.randrange(99):02d}:4f:aa:00:1c:42:{r.randrange(99):02d}:9e:01:08:00 "
                f"SRC={ip(r)} DST={ip(r)} LEN=60 TOS=0x00 PROTO=TCP SPT={r.randrange(65535)} DPT=443")
    if kind == 3:  # sshd
        return (f"{ts} web01 sshd[{r.randrange(99999)}]: Failed password for {r.choice(USERS)} from "
                f"{ip(r)} port {r.randrange(65535)} ssh2")
    if kind == 4:  # windows
        return (f"{ts} DC01 Microsoft-Windows-Sysmon/Operational 1 Process Create: Image=C:\\Users\\"
                f"{r.choice(USERS)}\\AppData\\Local\\Temp\\{r.choice(FILES)} Hashes=SHA256={hexs(r, 64).upper()},"
                f"MD5={hexs(r, 32).upper()} ProcessGuid={{{hexs(r, 8)}-{hexs(r, 4)}-{hexs(r, 4)}-{hexs(r, 4)}-"
                f"{hexs(r, 12)}}}")
    if kind == 5:  # json
        return (f'{{"ts":"{ts}","level":"info","msg":"dns query","query":"{r.choice(DOMAINS)}",'
                f'"client":"{ip(r)}","rcode":"NOERROR","version":"1.2.3.4.5"}}')
    if kind == 6:  # threat report prose
        return (f"The actor used {defang(r.choice(DOMAINS), r)} and {defang('http://' + r.choice(DOMAINS), r)}"
                f"/gate.php to stage {r.choice(FILES)} (sha1 {hexs(r, 40)}), see OID 1.3.6.1.4.1.311.")
    if kind == 7:  # app log without IOCs
        return (f"{ts} app[{r.randrange(999)}]: worker {r.randrange(64)} finished job {hexs(r, 8)}-"
                f"{hexs(r, 4)} in {r.randrange(9999)} ms (queue depth {r.randrange(100)})")
    if kind == 8:  # mail log
        return (f"{ts} mx1 postfix/smtpd[{r.randrange(9999)}]: NOQUEUE: reject: RCPT from unknown[{ip(r)}]: "
                f"from=<{r.choice(USERS)}@{r.choice(DOMAINS)}> to=<{r.choice(USERS)}> proto=ESMTP")
    if kind == 10:  # systemd, no IOCs
        return (f"{ts} web01 systemd[1]: Started Session {r.randrange(9999)} of user {r.choice(USERS)}; "
                f"unit session-{r.randrange(9999)}.scope entered state active (running)")
    if kind == 11:  # cron, no IOCs
        return (f"{ts} web01 CRON[{r.randrange(99999)}]: ({r.choice(USERS)}) CMD (/usr/lib/php/sessionclean "
                f"--max-age=1440 >/dev/null 2>&1) exit=0 duration={r.random():.3f}s")
    return (f"{ts} kernel: eth0: link up, 1000 Mbps, full duplex, lpa 0x45E1 {ip6(r)} neighbour {ip6(r)}")


def main() -> None:
    size = int(float(sys.argv[1]) * 1_000_000) if len(sys.argv) > 1 else 100_000_000
    r = random.Random(20261203)
    out = sys.stdout
    written = i = 0
    batch = []
    while written < size:
        s = line(r, i) + "\n"
        batch.append(s)
        written += len(s)
        i += 1
        if len(batch) == 10000:
            out.write("".join(batch))
            batch.clear()
    out.write("".join(batch))


if __name__ == "__main__":
    main()
