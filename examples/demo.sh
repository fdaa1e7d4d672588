#!/usr/bin/env bash
# The whole vexpipe pipeline on bundled SAMPLE data: no network, no API key.
# examples/vt-cache.sample.ndjson holds made-up VirusTotal-style answers (made by the
# test suite's server, see examples/make_sample_cache.py), not real VirusTotal data.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out}
mkdir -p "$OUT"
# Keep the demo's cache and knowledge base away from the user's own.
export XDG_CACHE_HOME="$PWD/$OUT/.demo-cache" XDG_DATA_HOME="$PWD/$OUT/.demo-data" XDG_CONFIG_HOME="$PWD/$OUT/.demo-config"
rm -rf "$XDG_CACHE_HOME" "$XDG_DATA_HOME"

vex-cache -q import examples/vt-cache.sample.ndjson
vex-kb tag update-checker.xyz --add case-42 --add stage-1 > /dev/null
vex-kb note 45.83.193.150 --add "Log4Shell callback seen on app01" > /dev/null
vex-kb watchlist case-42 --add update-checker.xyz --add 45.83.193.150 > /dev/null

vex-detect --no-private --unique examples/sample.log \
  | vex-lookup --offline --investigate --fail-on none \
  | vex-mitre --layer "$OUT/navigator-layer.json" \
  | vex-kb annotate > "$OUT/enriched.ndjson"

echo "== IOCs in examples/sample.log, enriched from the SAMPLE cache (made-up answers, not VirusTotal's) =="
vex-fmt --summary < "$OUT/enriched.ndjson"
echo
echo "== the latest events on the timeline =="
vex-timeline < "$OUT/enriched.ndjson" | tail -n 12 | vex-fmt --format timeline
vex-stix --report "Sample case" --tlp amber < "$OUT/enriched.ndjson" > "$OUT/bundle.json"
echo
echo "wrote $OUT/enriched.ndjson (records), $OUT/bundle.json (STIX 2.1), $OUT/navigator-layer.json (ATT&CK Navigator)"
