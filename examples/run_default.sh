#!/usr/bin/env bash
# The main job, end to end on the embedded default, on one CPU machine: install, pre-train JAKET on WordNet + SemCor
# with all-MiniLM-L6-v2, then fine-tune and evaluate entity classification on the held-out (unseen) part of WordNet
# for JAKET and the paper's baselines, and print the results table.
# The pre-trained model is written to jaket-base/ in the repository root, so that
# AutoModel.from_pretrained("jaket-base", trust_remote_code=True) loads it as the model card says.
#   bash examples/run_default.sh            (OUT=outputs/default for the fine-tuning runs, SEEDS="42")
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-outputs/default}
SEEDS=${SEEDS:-42}
python3 -m pip install --quiet --disable-pip-version-check torch==2.13.0
python3 -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
export HF_HUB_OFFLINE=1
# bfloat16 autocast where the CPU computes in bfloat16 natively (AVX512-BF16 or AMX: 2.3x float32's matmul rate on
# the 2-core machine of README's benchmark 7), float32 elsewhere (emulated bfloat16 is slower); PRECISION=no forces it
if [ -z "${PRECISION:-}" ]; then
    PRECISION=no
    if python3 -c 'import sys, torch; sys.exit(not (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()))'; then
        PRECISION=bf16
    fi
fi
BF16=()
[ "$PRECISION" = bf16 ] && BF16=(--bf16)
echo "precision: $PRECISION"

CORES=$(nproc)
HALF=$(( CORES > 1 ? CORES / 2 : 1 ))
finetune() {  # seed, then methods: entity classification on WordNet's held-out part, every method in one process
    local seed=$1
    shift
    python3 examples/finetune_entity_classification.py --method "$@" --output_dir "$OUT/entity-classification" \
        --seed "$seed" --num_train_epochs 5 --memory_cache_dir "$OUT/memory-cache" "${BF16[@]}"
}
mkdir -p "$OUT"
trap 'kill $(jobs -p) 2> /dev/null || true' EXIT

# The baselines never read the pre-trained model, so they run beside pre-training, each on half the cores: a second
# thread gives one job 1.4-1.6x on 2 cores, a second job nearly 2x. Their log goes to $OUT/baselines.log.
(for seed in $SEEDS; do OMP_NUM_THREADS=$HALF finetune "$seed" gnn lm lm_gnn lm_gnn_m; done) > "$OUT/baselines.log" 2>&1 &
baselines=$!

# pretrain.py's defaults are the embedded recipe (300 steps, 5,000 entities; README says where they differ from the
# paper's); it evaluates itself on held-out sentences and entities into jaket-base/eval_results.json and writes
# its model card (jaket-base/README.md) from them. (accelerate launch sets each process's threads itself.)
accelerate launch --num_processes 1 --num_machines 1 --num_cpu_threads_per_process "$HALF" --mixed_precision "$PRECISION" \
    --dynamo_backend no examples/pretrain.py --output_dir jaket-base --report_to none

if ! wait "$baselines"; then
    tail -n 40 "$OUT/baselines.log"
    echo "the baselines failed: $OUT/baselines.log" >&2
    exit 1
fi
# the three JAKET methods share one memory of the held-out descriptions (encoded once, cached), on every core
for seed in $SEEDS; do
    finetune "$seed" jaket jaket_zero_shot jaket_from_head --model_name_or_path jaket-base
done
python3 examples/results_table.py "$OUT/entity-classification"
