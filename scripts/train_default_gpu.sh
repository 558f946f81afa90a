#!/usr/bin/env bash
# The default world model's configuration (compact-warp, pyramid loss, changed pixels weighted, tabletop + drawer
# data) trained on one CUDA GPU: data
# made on the machine's CPU cores, training on the GPU, meant to finish within ~8 minutes on a 16-core
# H100/H200 machine (not yet run on one). Prints one JSON line.
#
#   bash scripts/train_default_gpu.sh [OUT]          (OUT defaults to outputs/train-default-gpu)
#
# Environment: WORKERS (datagen processes, default: all cores), STEPS (default 3000), BATCH (default 16),
# TRAIN_CLIPS / DRAWER_CLIPS (default 900 / 300), FOCUS_CLIPS / FOCUS_DRAWER_CLIPS (extra push and pick-and-place /
# drawer open-close clips of seed 5, default 300 / 200), CHANGE_WEIGHT (default 16), INIT (a model folder to start from; default: none,
# i.e. from scratch; set INIT=default to continue from the shipped weights), MOTION (1, the default: then the v6 stages:
# a motion network on the clips' true flow for MOTION_STEPS (default 1500) steps, the denoiser on its moved video for
# STEPS/2, its occlusion outputs for MOTION_STEPS/2, the denoiser on the occluded base (prior -4) for STEPS/3 and on
# the footprint-gated base for STEPS/5; 0 stops after the denoiser, as v5 was made).
# The CPU recipe is `make train-default`; each run records its recipe in its folder (OUT/train, OUT/motion, ...:
# train_config.json).
set -euo pipefail
OUT=${1:-outputs/train-default-gpu}
DEXSIM=${DEXSIM:-.venv/bin/dexsim}
PY=${PY:-.venv/bin/python}
WORKERS=${WORKERS:-$(nproc)}
STEPS=${STEPS:-3000}
BATCH=${BATCH:-16}
TRAIN_CLIPS=${TRAIN_CLIPS:-900}
CHANGE_WEIGHT=${CHANGE_WEIGHT:-16}
FOCUS_CLIPS=${FOCUS_CLIPS:-300}
FOCUS_DRAWER_CLIPS=${FOCUS_DRAWER_CLIPS:-200}
DRAWER_CLIPS=${DRAWER_CLIPS:-300}
INIT=${INIT:-}
MOTION=${MOTION:-1}
MOTION_STEPS=${MOTION_STEPS:-1500}

"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA GPU visible to torch: this script is for one CUDA GPU (the CPU recipe is make train-default)')"
mkdir -p "$OUT"
start=$(date +%s)
# data: tabletop and drawer scenes, train split seed 0 (+ the focus clips of seed 5) and the tabletop held-out split
"$DEXSIM" datagen --scene tabletop --out "$OUT/data/train" --clips "$TRAIN_CLIPS" --split train --seed 0 --workers "$WORKERS"
"$DEXSIM" datagen --scene drawer --out "$OUT/data/train-drawer" --clips "$DRAWER_CLIPS" --split train --seed 0 --workers "$WORKERS"
"$DEXSIM" datagen --scene tabletop --out "$OUT/data/train-pp5" --clips "$FOCUS_CLIPS" --split train --seed 5 --kinds push,pick_place --workers "$WORKERS"
"$DEXSIM" datagen --scene drawer --out "$OUT/data/train-dr5" --clips "$FOCUS_DRAWER_CLIPS" --split train --seed 5 --kinds drawer --workers "$WORKERS"
"$DEXSIM" datagen --scene tabletop --out "$OUT/data/heldout" --clips 60 --split heldout --seed 0 --workers "$WORKERS"
data_s=$(( $(date +%s) - start ))
init_args=()
if [ -n "$INIT" ]; then init_args=(--init-from "$INIT"); fi
"$DEXSIM" train --preset compact-from-scratch --model compact-warp --loss-pyramid 3 --change-weight "$CHANGE_WEIGHT" ${init_args[@]+"${init_args[@]}"} \
    --data "$OUT/data/train" --data "$OUT/data/train-drawer" --data "$OUT/data/train-pp5" --data "$OUT/data/train-dr5" --validation-data "$OUT/data/heldout" \
    --out "$OUT/train" --steps "$STEPS" --batch-size "$BATCH" --checkpoint-every 500 --validate-every 1000
final="$OUT/train"
if [ "$MOTION" = 1 ]; then
    data_args=(--data "$OUT/data/train" --data "$OUT/data/train-drawer")
    stage() {  # stage NAME INIT STEPS ARGS...: one run of the v6 chain from the previous stage's model
        local name=$1 init=$2 steps=$3; shift 3
        "$DEXSIM" train --init-from "$init" "${data_args[@]}" --mixed-precision bf16 --batch-size "$BATCH" \
            --out "$OUT/$name" --steps "$steps" --checkpoint-every 500 --validate-every 100000 "$@"
    }
    den=(--preset compact-from-scratch --model compact-warp --loss-pyramid 3 --change-weight "$CHANGE_WEIGHT")
    stage motion "$OUT/train/model" "$MOTION_STEPS" --preset motion-flow --lr 5e-4 --seed 11
    stage motion-base "$OUT/motion/model" $(( STEPS / 2 )) "${den[@]}" --lr 1.5e-4 --seed 12
    stage occlusion "$OUT/motion-base/model" $(( MOTION_STEPS / 2 )) --preset motion-flow --occlusion-loss 1 \
        --occlusion-balanced --lr 3e-4 --seed 13
    stage occluded-base "$OUT/occlusion/model" $(( STEPS / 3 )) "${den[@]}" --occlusion-prior -4 --lr 1e-4 --seed 14
    stage gated-base "$OUT/occluded-base/model" $(( STEPS / 5 )) "${den[@]}" --occlusion-gate --lr 1e-4 --seed 16
    final="$OUT/gated-base"
fi
train_s=$(( $(date +%s) - start - data_s ))
"$DEXSIM" eval --data "$OUT/data/heldout" --model "$final/model" --no-oracle --json "$OUT/eval_heldout.json" >/dev/null
"$PY" - "$OUT" "$data_s" "$train_s" "$final" <<'EOF'
import json, sys, torch
out, data_s, train_s, final = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
rows = json.load(open(f"{out}/eval_heldout.json"))["rows"]
print(json.dumps({"gpu": torch.cuda.get_device_name(0), "data_seconds": data_s, "train_seconds": train_s,
                  "model": f"{final}/model", "heldout": rows}))
EOF
