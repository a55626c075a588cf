#!/usr/bin/env bash
# The main job, end to end on the embedded default, on one CPU machine: install, pre-train JAKET on WordNet + SemCor
# with all-MiniLM-L6-v2 and the two control runs (L_c alone, MLM alone), then fine-tune and evaluate entity
# classification on the held-out (unseen) part of WordNet for JAKET, the paper's baselines and the controls, each
# under the same protocol (one step budget per fraction, settings chosen on the builder's validation split), and
# print the results table.
# The pre-trained model is written to jaket-base/ in the repository root, so that
# AutoModel.from_pretrained("jaket-base", trust_remote_code=True) loads it as the model card says.
#   bash examples/run_default.sh            (OUT=outputs/default for the fine-tuning runs, SEEDS="42")
# The main job's protocol is RESULTS.md's with a smaller grid (STEP_BUDGET=100 steps, LR_GRID="1": each method's own rate
# only; the steps grid is 4 validation points per run); the full grid: STEP_BUDGET=200 LR_GRID="0.3 1 3".
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-outputs/default}
SEEDS=${SEEDS:-42}
read -r -a LR_GRID <<< "${LR_GRID:-1}"
PROTOCOL=(--step_budget "${STEP_BUDGET:-100}" --learning_rate_grid "${LR_GRID[@]}" --num_evaluations 4)
python3 -m pip install --quiet --disable-pip-version-check torch==2.13.0
python3 -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
export HF_HUB_OFFLINE=1
# no data: say what is missing and where to get it, before anything runs
python3 -c 'import os; from datasets_scripts import check_data_dir; check_data_dir(os.environ.get("JAKET_DATA_DIR", "../shared/data"))' || exit 2
# bfloat16 autocast where the CPU computes in bfloat16 natively (AVX512-BF16 or AMX: 2.3x float32's matmul rate on
# the 2-core machine of bench/README.md's benchmark 7), float32 elsewhere (emulated bfloat16 is slower); PRECISION=no forces it
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
        --seed "$seed" --memory_cache_dir "$OUT/memory-cache" "${PROTOCOL[@]}" "${BF16[@]}"
}
pretrain() {  # threads, then pretrain.py's flags (its defaults are the embedded recipe: 300 steps, 5,000 entities)
    local threads=$1
    shift
    accelerate launch --num_processes 1 --num_machines 1 --num_cpu_threads_per_process "$threads" \
        --mixed_precision "$PRECISION" --dynamo_backend no examples/pretrain.py --report_to none "$@"
}
mkdir -p "$OUT"
trap 'kill $(jobs -p) 2> /dev/null || true' EXIT

# The baselines never read the pre-trained model, so they run beside pre-training, each on half the cores: a second
# thread gives one job 1.4-1.6x on 2 cores, a second job nearly 2x. With them, the control for JAKET's category head:
# the knowledge module and its head pre-trained with L_c alone (no text: a minute), then fine-tuned from that head.
# Their log goes to $OUT/baselines.log.
(
    export OMP_NUM_THREADS=$HALF
    pretrain "$HALF" --losses entity_category --output_dir "$OUT/control-category"
    for seed in $SEEDS; do
        finetune "$seed" gnn lm lm_gnn lm_gnn_m lm_gnn_m_category --category_control_path "$OUT/control-category"
    done
) > "$OUT/baselines.log" 2>&1 &
baselines=$!

# pretrain.py evaluates itself on held-out sentences and entities into jaket-base/eval_results.json (each figure
# beside its floor) and writes its model card (jaket-base/README.md) from them.
pretrain "$HALF" --output_dir jaket-base

if ! wait "$baselines"; then
    tail -n 40 "$OUT/baselines.log"
    echo "the baselines failed: $OUT/baselines.log" >&2
    exit 1
fi
# the control for what pre-training's text alone gives: the language model continued with MLM alone, same text and
# steps, no knowledge module; then it, JAKET and the uses of JAKET's category head, on every core
pretrain "$CORES" --losses masked_lm --output_dir "$OUT/control-mlm"
for seed in $SEEDS; do
    finetune "$seed" jaket jaket_zero_shot jaket_from_head lm_mlm --model_name_or_path jaket-base \
        --mlm_control_path "$OUT/control-mlm"
done
python3 examples/results_table.py "$OUT/entity-classification"
