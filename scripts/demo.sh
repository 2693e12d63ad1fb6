#!/usr/bin/env bash
# The main job on the embedded synthetic world (called by `make demo`; each step is a planlab command
# a user can run on its own). OUT defaults to demo_out/.
set -euo pipefail
OUT=${1:-demo_out}
mkdir -p "$OUT"
echo "planlab demo -> $OUT"
