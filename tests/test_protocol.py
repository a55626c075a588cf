"""The fine-tuning protocol's runs are the Trainer's own: a checkpoint at each new best on validation, the best loaded
at the end, a stopped grid resumed where it stopped, settings checked before anything is read back."""

import json

import pytest
import torch
from datasets import Dataset
from finetune_entity_classification import parse_args
from safetensors.torch import load_file
from transformers import TrainerCallback

from conftest import tiny_config
from jaket_training.finetuning import (
    HeadRateTrainer,
    WithEntityMemory,
    finished_results,
    masked_accuracy,
    save_results,
    select_on_validation,
    start_or_resume,
)
from modeling_jaket import EntityContextMemory, JaketForEntityClassification, JaketForSequenceClassification


def protocol_args(folder, *flags):
    """Six steps a run, validation at steps 2, 4 and 6, two learning rates."""
    return parse_args(
        ["--method", "gnn", "--output_dir", str(folder), "--step_budget", "6", "--num_evaluations", "3"]
        + ["--learning_rate_grid", "1", "3", "--per_device_train_batch_size", "4", "--learning_rate", "1e-3"]
        + list(flags)
    )


def sequences(count: int, seed: int) -> Dataset:
    ids = torch.randint(5, 100, (count, 8), generator=torch.Generator().manual_seed(seed))
    return Dataset.from_dict(
        {"input_ids": ids.tolist(), "attention_mask": [[1] * 8] * count, "labels": (ids[:, 0] % 3).tolist()}
    )


class StopAt(TrainerCallback):
    """Stops training as a crash would, after optimizer step `step`."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt


class Steps(TrainerCallback):
    def __init__(self):
        self.steps = []

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append(state.global_step)


def select(args, stop_run=None, stop_step=None):
    """`select_on_validation` over a tiny classifier (a collator with no randomness of its own); returns (choice,
    weights, the steps each run trained)."""
    torch.manual_seed(0)
    model = JaketForSequenceClassification(tiny_config(num_labels=3))
    train, validation = sequences(24, 1), sequences(12, 2)
    runs = []

    def make_trainer(training_args):
        trainer = HeadRateTrainer(
            model=model,
            args=training_args,
            train_dataset=train,
            eval_dataset=validation,
            compute_metrics=masked_accuracy,
            head_learning_rate=1e-2,
        )
        runs.append(Steps())
        trainer.add_callback(runs[-1])
        if len(runs) == stop_run:
            trainer.add_callback(StopAt(stop_step))
        return trainer

    choice = select_on_validation(args, "run", model, args.learning_rate, make_trainer, len(train))
    return choice, {k: v.clone() for k, v in model.state_dict().items()}, [run.steps for run in runs]


def test_a_stopped_grid_resumes_to_the_choice_and_weights_of_an_uninterrupted_one(tmp_path):
    reference, weights, steps = select(protocol_args(tmp_path / "whole"))
    assert steps == [[1, 2, 3, 4, 5, 6]] * 2 and reference["steps"] == 6 and reference["step"] in (2, 4, 6)

    stopped = tmp_path / "stopped"
    with pytest.raises(KeyboardInterrupt):  # the second learning rate's run stops after step 5
        select(protocol_args(stopped), stop_run=2, stop_step=5)
    first, second = (stopped / f"run-lr{rate}-seed42" for rate in ("0.001", "0.003"))
    assert (first / "run.json").is_file() and not (second / "run.json").exists()
    choice, resumed, steps = select(protocol_args(stopped, "--resume"))
    # the first run is read back, the second continues after its last checkpoint (its last new best)
    assert len(steps) == 1 and steps[0][0] in (3, 5) and steps[0][-1] == 6
    assert choice == reference
    assert all(torch.equal(resumed[name], weights[name]) for name in weights)

    # without --resume a run starts afresh, whatever its folder held
    again, weights_again, steps = select(protocol_args(stopped))
    assert steps == [[1, 2, 3, 4, 5, 6]] * 2 and again == reference
    assert all(torch.equal(weights_again[name], weights[name]) for name in weights)


def test_the_chosen_run_keeps_its_best_weights_only_and_the_others_none(tmp_path):
    choice, weights, _ = select(protocol_args(tmp_path))
    chosen = tmp_path / f"run-lr{choice['learning_rate']:g}-seed42"
    other = next(folder for folder in tmp_path.glob("run-lr*") if folder != chosen)
    [checkpoint] = chosen.glob("checkpoint-*")
    assert checkpoint.name == f"checkpoint-{choice['step']}"
    assert json.loads((chosen / "run.json").read_text())["checkpoint"] == checkpoint.name  # within its folder
    resuming_state = {"optimizer.pt", "scheduler.pt", "scaler.pt", "rng_state.pth"}
    assert not resuming_state & {path.name for path in checkpoint.iterdir()}  # a finished run is never resumed
    saved = load_file(checkpoint / "model.safetensors")
    assert all(torch.equal(saved[name], weights[name]) for name in saved)
    assert not list(other.glob("checkpoint-*"))
    assert json.loads((other / "run.json").read_text())["validation_accuracy"] <= choice["validation_accuracy"]

    args = protocol_args(tmp_path)  # once the method's results are written, its runs' checkpoints go
    save_results(args, "run", {"accuracy": 0.5}, "accuracy")
    assert not list(tmp_path.glob("run-*/checkpoint-*")) and not list(tmp_path.glob("run-*/run.json"))
    assert not list(tmp_path.glob("run-lr*"))  # nothing else was in the runs' folders


def test_resume_reads_back_only_what_the_same_settings_wrote(tmp_path):
    args = protocol_args(tmp_path)
    start_or_resume(args)
    save_results(args, "gnn", {"accuracy": 0.25}, "accuracy")
    assert finished_results(args, "gnn") is None  # without --resume, everything runs again
    resumed = protocol_args(tmp_path, "--resume", "--method", "lm")  # the methods may differ
    start_or_resume(resumed)
    assert finished_results(resumed, "gnn") == {"metric": "accuracy", "accuracy": 0.25}
    assert finished_results(resumed, "lm") is None
    with pytest.raises(ValueError, match=r"--learning_rate 0.001 then, 0.002 now.*start afresh"):
        start_or_resume(protocol_args(tmp_path, "--resume", "--learning_rate", "2e-3"))
    other_seed = protocol_args(tmp_path, "--resume", "--seed", "7")  # each seed's runs and results are its own
    start_or_resume(other_seed)
    assert finished_results(other_seed, "gnn") is None
    with pytest.raises(ValueError, match="give --resume"):
        protocol_args(tmp_path, "--resume_from_checkpoint", str(tmp_path))


@pytest.mark.parametrize("trainable", [False, True])
def test_the_memory_wrapper_is_a_model_trainer_saves_and_checkpoints(trainable, tmp_path):
    config = tiny_config(num_labels=3)
    model = JaketForEntityClassification(config)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    memory = EntityContextMemory.from_config(config, 10, 4)
    memory.update(torch.randn(10, config.hidden_size), torch.randn(4, config.hidden_size))
    wrapped = WithEntityMemory(model, memory, trainable=trainable)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())  # wrapping draws no weight

    wrapped.save_pretrained(tmp_path)
    saved = load_file(tmp_path / "model.safetensors")
    assert ("memory.entity_embeddings" in saved) == trainable  # a fixed memory stays out of checkpoints

    inputs = dict(
        input_ids=torch.randint(5, 100, (2, 6)),
        attention_mask=torch.ones(2, 6, dtype=torch.long),
        mention_entity_ids=torch.tensor([[1], [2]]),
        mention_starts=torch.tensor([[1], [2]]),
        mention_ends=torch.tensor([[2], [3]]),
        subgraph_entity_ids=torch.tensor([1, 2, 3]),
        edge_index=torch.tensor([[0, 1], [2, 2]]),
        edge_type=torch.tensor([0, 1]),
        labels=torch.tensor([0, 2, 1]),
    )
    wrapped.train()
    grads = []
    for checkpointing in (False, True):
        if checkpointing:  # what --gradient_checkpointing asks of the Trainer's model (it raised before)
            wrapped.gradient_checkpointing_enable()
            assert all(layer.gradient_checkpointing for layer in model.jaket.lm1)
        torch.manual_seed(0)
        wrapped.zero_grad()
        wrapped(**inputs).loss.backward()
        grads.append({n: p.grad.clone() for n, p in wrapped.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    assert all(torch.allclose(grads[0][n], grads[1][n], atol=1e-6) for n in grads[0])
