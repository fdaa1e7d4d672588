"""The committed man pages are what the parsers generate (run `make man` after changing flags)."""

import subprocess
import sys

from conftest import ROOT


def test_committed_man_pages_match_parsers():
    p = subprocess.run([sys.executable, str(ROOT / "man" / "build.py"), "--check"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
