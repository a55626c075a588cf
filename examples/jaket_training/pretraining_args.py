"""examples/pretrain.py's flags: the data, the model split, the optimisation, the losses and their sampling, the
entity memory (flags named as JaketConfig's fields), evaluation, checkpoints and logging; checked at parse time."""

import argparse
import dataclasses

from modeling_jaket import JaketConfig
from modeling_jaket.collator import CATEGORY_TARGETS, DataCollatorForJaketPreTraining
from modeling_jaket.memory import MEMORY_DTYPES

from .flag_ranges import check_ranges
from .pretraining import LOSS_INPUTS
from .push_to_hub import add_hub_arguments

DESCRIPTION = "JAKET pre-training (§3.6) with Accelerate: `accelerate launch examples/pretrain.py`."

# the step's inputs (§3.6): each flag's default is the collator's own
COLLATOR = {field.name: field.default for field in dataclasses.fields(DataCollatorForJaketPreTraining)}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=DESCRIPTION)
    parser.add_argument(
        "--dataset",
        default="wordnet_semcor",
        choices=["wordnet_semcor", "wikipedia_wikidata"],
        help="the builder of the KG and its linked text (wikipedia_wikidata: the paper's setting)",
    )
    parser.add_argument("--data_dir", default=None, help="source files of --dataset (default: ../shared/data)")
    parser.add_argument("--dataset_cache_dir", default=None, help="where datasets keeps prepared data (its default)")
    parser.add_argument(
        "--prepared_dir",
        default=None,
        help="where the data is prepared once for every launch and rank (a folder per fingerprint of its inputs; "
        "default: jaket_prepared/ beside datasets' cache); on several machines, a folder they all see",
    )
    parser.add_argument(
        "--prepare_only",
        action="store_true",
        help="prepare the data (graph, windows, descriptions, confusable entities) and exit: run it once before a "
        "launch on many processes",
    )
    parser.add_argument(
        "--ddp_timeout",
        type=int,
        default=1800,
        help="seconds a process waits for the others at a collective (the process group's timeout), e.g. while "
        "the main process prepares the data",
    )
    parser.add_argument(
        "--preprocessing_num_workers",
        type=int,
        default=None,
        help="processes that prepare the data: the builder's files and, for wikipedia_wikidata, its graph's two "
        "passes, then the tokenization (default: one)",
    )
    parser.add_argument(
        "--backbone",
        default=None,
        help="RoBERTa/BERT checkpoint (default: all-MiniLM-L6-v2), or an output folder of this script, whose language "
        "model is continued with a fresh knowledge module and heads",
    )
    parser.add_argument("--num_lm1_layers", type=int, default=None, help="default: half the backbone's layers")
    parser.add_argument(
        "--max_entities",
        type=int,
        default=5000,
        help="keep this many entities, most mentioned first (0: all, as the paper does); each memory "
        "refresh encodes every entity's description, which is what bounds a CPU run",
    )
    parser.add_argument("--max_train_samples", type=int, default=None, help="use only this many texts (a quick run)")
    parser.add_argument(
        "--max_seq_length",
        type=int,
        default=128,
        help="tokens per window (the paper's: 512); a longer text becomes consecutive windows, none of it cut",
    )
    parser.add_argument(
        "--window_stride",
        type=int,
        default=0,
        help="tokens that consecutive windows of one text share (0: none; less than --max_seq_length's text)",
    )
    parser.add_argument("--description_length", type=int, default=64, help="the paper keeps 64 tokens")
    parser.add_argument(
        "--per_device_train_batch_size", type=int, default=16, help="texts per process and micro-batch"
    )
    parser.add_argument(
        "--gradient_accumulation_steps", type=int, default=1, help="micro-batches per optimisation step"
    )
    parser.add_argument(
        "--dataloader_num_workers",
        type=int,
        default=None,
        help="processes that build the steps' inputs (masking, subgraphs, candidates) ahead of the model; default: "
        "the cores this process's share of the machine has, less one for it, at most 4 (0: built in the main "
        "process)",
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
        default=3e-3,
        help="peak rate of the parameters the backbone does not provide (the four pre-training heads, "
        "the merge's LayerNorm, a missing MLM transform); linear decay (the paper gives none; docs/training.md)",
    )
    parser.add_argument("--weight_decay", type=float, default=0.01, help="AdamW's, on all but biases and LayerNorms")
    parser.add_argument("--adam_beta1", type=float, default=0.9, help="AdamW's beta1 (the paper's)")
    parser.add_argument("--adam_beta2", type=float, default=0.999, help="AdamW's beta2 (the paper's)")
    parser.add_argument("--adam_epsilon", type=float, default=1e-8, help="AdamW's epsilon (the paper's)")
    parser.add_argument(
        "--mlm_probability", type=float, default=COLLATOR["mlm_probability"], help="share of tokens masked for L_t"
    )
    parser.add_argument(
        "--entity_mask_probability",
        type=float,
        default=0.8,
        help="share of mentions removed from the merge for L_e (the paper's: 0.15; the embedded default's 300 steps "
        "need more L_e targets a step: docs/training.md)",
    )
    parser.add_argument(
        "--num_roots", type=int, default=COLLATOR["num_roots"], help="random-walk root entities per step"
    )
    parser.add_argument(
        "--fanouts",
        type=int,
        nargs="+",
        default=list(COLLATOR["fanouts"]),
        help="neighbours sampled per entity at each hop (the paper's: 10, 10)",
    )
    parser.add_argument(
        "--num_relation_pairs",
        type=int,
        default=COLLATOR["num_relation_pairs"],
        help="edges a step classifies for L_r; every edge between such a pair is hidden, both ways",
    )
    parser.add_argument(
        "--relation_embeddings",
        action="store_true",
        help="give the knowledge module the relation memory in pre-training too; the paper (§3.5) uses "
        "relation embeddings only in fine-tuning, so by default R = 0 here",
    )
    parser.add_argument(
        "--num_neighbour_negatives",
        type=int,
        default=COLLATOR["num_neighbour_negatives"],
        help="L_e candidates drawn from the true entity's neighbours",
    )
    parser.add_argument(
        "--num_hard_negatives",
        type=int,
        default=5,
        help="L_e candidates that share a surface form with the true entity (WordNet: the other senses "
        "of its lemmas; names and the training text's mention spans), random where there are fewer (the "
        "collator's default is 0: it needs those surface forms, which this script collects)",
    )
    parser.add_argument(
        "--num_random_negatives",
        type=int,
        default=COLLATOR["num_random_negatives"],
        help="L_e candidates drawn at random",
    )
    parser.add_argument(
        "--no_merge_masked_mentions",
        dest="merge_masked_mentions",
        action="store_false",
        help="merge no E^KM into a mention that holds a masked token: it would give L_t the token's entity",
    )
    parser.add_argument(
        "--category_targets",
        default=COLLATOR["category_targets"],
        choices=CATEGORY_TARGETS,
        help="L_c's targets: every subgraph entity with a category, or only those that receive a sampled edge "
        "(the last hop's entities get none: their category is read off their description alone)",
    )
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
        default="auto",
        choices=["auto", *MEMORY_DTYPES],
        help="storage of the memory table: bfloat16 halves it (auto: bfloat16 on a GPU, float32 on a CPU)",
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
        "--max_eval_samples",
        type=int,
        default=2000,
        help="held-out texts the evaluation reads at most (the first of the seeded held-out slice): the main process "
        "evaluates while the others wait, so that it must stay well inside --ddp_timeout",
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
    parser.add_argument(
        "--gradient_checkpointing",
        action="store_true",
        help="recompute each layer's activations in the backward pass instead of keeping them: less memory for "
        "longer windows or larger batches, at about a third more compute",
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
