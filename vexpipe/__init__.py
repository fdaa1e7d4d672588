"""vexpipe: Unix filters for indicators of compromise.

Find IOCs in text (vex-detect), enrich them from VirusTotal, map them to MITRE
ATT&CK, lay them on a timeline and export STIX 2.1; every executable reads and
writes NDJSON so they compose like jq. The domain modules (grammar, privacy,
records) are plain functions usable as a library.
"""

__version__ = "0.1.0"
