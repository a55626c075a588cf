"""Pre-training's optimizer: AdamW over three learning-rate groups (language module, knowledge module, new
parameters) with their schedules, and gradient clipping through Accelerate."""

import torch


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
