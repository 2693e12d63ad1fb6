#!/usr/bin/env bash
# `make demo`: the main job of planlab on the embedded synthetic world, as the planlab commands a user runs.
#
#   1. generate the `mini` world in the real OpenScene/NAVSIM + nuPlan-map formats, summarise it, draw scenes
#   2. score the reference planners (constant velocity, log replay, PDM-Closed) with the PDM score
#   3. pre-train a small I-JEPA encoder on the world's camera frames (no labels)
#   4. train the ego-status MLP and a frozen-I-JEPA + MLP planner as registered experiments (local launcher)
#   5. print the PDMS table of all five, export results_master.csv and write the HTML report
#
# Usage: scripts/demo.sh [OUT]   (default demo_out/). Re-running reuses finished steps.
set -euo pipefail
OUT=${1:-demo_out}
SEED=${PLANLAB_DEMO_SEED:-0}
DATA="$OUT/data"
export PLANLAB_EXP_ROOT="$OUT/experiments"
mkdir -p "$OUT"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

step "1. Synthetic world (preset mini, seed $SEED)"
if [ -f "$DATA/dataset.json" ]; then
  echo "reusing $DATA (delete it to regenerate)"
else
  run planlab data generate --out "$DATA" --preset mini --seed "$SEED" --workers 2
fi
run planlab data info "$DATA"
mkdir -p "$OUT/figures"
for token in $(planlab data tokens "$DATA" --split test --every 18 --limit 3); do
  run planlab data viz "$DATA" --split test --token "$token" --out "$OUT/figures/scene_$token.png"
done

step "2. Reference planners on the test split (NAVSIM v1.1 PDM score)"
for agent in constant_velocity log_replay pdm_closed; do
  [ -f "$OUT/eval/$agent/summary.json" ] ||
    run planlab eval run --agent "$agent" --data "$DATA" --split test --out "$OUT/eval/$agent" --cache "$OUT/metric_cache"
done

step "3. Self-supervised I-JEPA pre-training on the world's front cameras (no labels)"
if [ ! -f "$OUT/ssl/encoder/model.safetensors" ]; then
  rm -rf "$OUT/ssl"
  run planlab ssl pretrain --config src/planlab/configs/ssl/ijepa_small.yaml --run-dir "$OUT/ssl" \
    data.root="$DATA" trainer.epochs=6 probe.enabled=false --no-progress
fi
[ -f "$OUT/ijepa_hf/model.safetensors" ] || run planlab ssl export --encoder "$OUT/ssl/encoder" --out "$OUT/ijepa_hf"

step "4. Planners trained as experiments (local launcher; provenance in each run dir)"
new_exp() {  # id template description [extra args...]
  local id=$1 template=$2 desc=$3; shift 3
  [ -f "$PLANLAB_EXP_ROOT/$id/experiment.yaml" ] ||
    run planlab exp new --exp-id "$id" --template "$template" --cluster local --data-root "$DATA" \
      --epochs 30 --description "$desc" --tags demo "$@"
}
new_exp demo-ego-mlp ego_mlp "ego-status MLP (no vision) on the demo world"
new_exp demo-ijepa-mlp ijepa_mlp "frozen I-JEPA (pre-trained on the demo world) + MLP head" \
  --set agent.encoder.path="$(cd "$OUT" && pwd)/ijepa_hf"
# The first submission runs the pre-flight smoke run (`planlab smoke`); the second skips it.
[ -f "$PLANLAB_EXP_ROOT/demo-ijepa-mlp/eval/test/summary.json" ] || run planlab exp submit demo-ijepa-mlp
[ -f "$PLANLAB_EXP_ROOT/demo-ego-mlp/eval/test/summary.json" ] || run planlab exp submit demo-ego-mlp --no-preflight

step "5. Results"
run planlab eval table \
  "$OUT/eval/constant_velocity" "$OUT/eval/log_replay" "$OUT/eval/pdm_closed" \
  "$PLANLAB_EXP_ROOT/demo-ego-mlp/eval/test" "$PLANLAB_EXP_ROOT/demo-ijepa-mlp/eval/test" \
  --label constant_velocity --label log_replay --label pdm_closed --label ego_mlp --label ijepa_mlp \
  --out "$OUT/pdms_table.md"
run planlab exp harvest --all
run planlab exp export "$OUT/results_master.csv"
run planlab exp report --out "$OUT/report"
echo
echo "demo done: data $DATA, figures $OUT/figures, PDMS table $OUT/pdms_table.md,"
echo "           experiments $PLANLAB_EXP_ROOT, results $OUT/results_master.csv, report $OUT/report/index.html"
