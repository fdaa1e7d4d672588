"""Run ioc-finder (in the bench's peer venv) on a file or the labelled cases.

    python peer_iocfinder.py speed FILE      -> JSON {seconds, bytes, maxrss_kb}
    python peer_iocfinder.py labelled FILE   -> JSON list of [[type, value], ...] per case
"""

import json
import resource
import sys
import time

from ioc_finder import find_iocs

TYPES = {"md5s": "md5", "sha1s": "sha1", "sha256s": "sha256", "ipv4s": "ipv4", "ipv6s": "ipv6",
         "domains": "domain", "urls": "url", "email_addresses": "email"}


def found(text):
    result = find_iocs(text)
    return [[t, v] for key, t in TYPES.items() for v in result.get(key, [])]


if __name__ == "__main__":
    mode, path = sys.argv[1], sys.argv[2]
    if mode == "speed":
        data = open(path, encoding="utf-8", errors="replace").read()
        start = time.perf_counter()
        find_iocs(data)
        seconds = time.perf_counter() - start
        print(json.dumps({"seconds": seconds, "bytes": len(data.encode()),
                          "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
    else:
        cases = [json.loads(line) for line in open(path, encoding="utf-8")]
        print(json.dumps([found(c["text"]) for c in cases]))
