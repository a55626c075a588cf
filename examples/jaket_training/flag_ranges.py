"""pretrain.py's numeric flags and their ranges, checked when the command is parsed, before any data is read."""

# Each numeric flag's range, checked before any data is read. None (a flag's "off" or "default") always passes.
AT_LEAST_ONE = (
    "num_lm1_layers",
    "max_train_samples",
    "preprocessing_num_workers",
    "ddp_timeout",
    "max_seq_length",
    "description_length",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "max_train_steps",
    "num_roots",
    "memory_refresh_init_interval",
    "memory_refresh_ratio",
    "memory_refresh_repeats",
    "memory_refresh_max_interval",
    "memory_batch_size",
    "eval_steps",
    "max_eval_samples",
    "checkpointing_steps",
    "checkpoints_total_limit",
    "logging_steps",
)
AT_LEAST_ZERO = (
    "max_entities",
    "lm_warmup_steps",
    "weight_decay",
    "num_relation_pairs",
    "num_neighbour_negatives",
    "num_hard_negatives",
    "num_random_negatives",
    "eval_outside_entities",
    "dataloader_num_workers",
    "window_stride",
)
ABOVE_ZERO = ("num_train_epochs", "lm_learning_rate", "km_learning_rate", "head_learning_rate", "adam_epsilon")
IN_ZERO_ONE = (  # [0, 1)
    "adam_beta1",
    "adam_beta2",
    "mlm_probability",
    "entity_mask_probability",
    "memory_momentum",
    "heldout_text_fraction",
)


def check_ranges(parser, args) -> None:
    """Stop with the flag, its value and its range where a value is out of range (argparse's exit, status 2)."""
    for names, test, wanted in (
        (AT_LEAST_ONE, lambda v: v >= 1, ">= 1"),
        (AT_LEAST_ZERO, lambda v: v >= 0, ">= 0"),
        (ABOVE_ZERO, lambda v: v > 0, "> 0"),
        (IN_ZERO_ONE, lambda v: 0 <= v < 1, "in [0, 1)"),
    ):
        for name in names:
            value = getattr(args, name)
            if value is not None and not test(value):
                parser.error(f"--{name} must be {wanted}, got {value}")
    if args.max_grad_norm is not None and not args.max_grad_norm > 0:
        parser.error(f"--max_grad_norm must be > 0, got {args.max_grad_norm}")
    if any(fanout < 1 for fanout in args.fanouts):
        parser.error(f"--fanouts must all be >= 1, got {args.fanouts}")
    if args.memory_refresh_max_interval < args.memory_refresh_init_interval:
        parser.error(
            f"--memory_refresh_max_interval ({args.memory_refresh_max_interval}) must be >= "
            f"--memory_refresh_init_interval ({args.memory_refresh_init_interval})"
        )
