"""Every flag of every script says what it does."""

import argparse
from pathlib import Path

import pytest


def actions_of(parse_args, monkeypatch):
    actions = []

    def capture(parser, args=None, namespace=None):
        actions.extend(parser._actions)
        raise SystemExit

    # argparse's parse_args and HfArgumentParser's parse_args_into_dataclasses both go through parse_known_args
    monkeypatch.setattr(argparse.ArgumentParser, "parse_known_args", capture)
    with pytest.raises(SystemExit):
        parse_args([])
    return [action for action in actions if action.option_strings and action.dest != "help"]


def test_every_pretraining_flag_has_help(monkeypatch):
    from pretrain import parse_args

    actions = actions_of(parse_args, monkeypatch)
    assert len(actions) > 40
    assert [action.option_strings[0] for action in actions if not action.help] == []


@pytest.mark.parametrize(
    "script",
    ["finetune_entity_classification", "finetune_fewrel", "finetune_metaqa", "finetune_text_classification"],
)
def test_every_fine_tuning_flag_has_help(script, monkeypatch):
    import importlib

    actions = actions_of(importlib.import_module(script).parse_args, monkeypatch)
    flags = {action.option_strings[0] for action in actions}
    # every Trainer flag as well as the script's own (HfArgumentParser over TrainingArguments)
    assert {
        "--method",
        "--model_name_or_path",
        "--bf16",
        "--gradient_accumulation_steps",
        "--report_to",
        "--push_to_hub",
        "--seed",
    } <= flags
    assert [action.option_strings[0] for action in actions if not action.help] == []


def test_trainer_flags_reach_the_trainer_and_script_defaults_apply(tmp_path):
    from finetune_entity_classification import parse_args

    from jaket_training.finetuning import training_arguments

    args = parse_args(
        [
            "--method",
            "gnn",
            "lm",
            "--output_dir",
            str(tmp_path),
            "--gradient_accumulation_steps",
            "3",
            "--bf16",
            "--use_cpu",
            "--lr_scheduler_type",
            "cosine",
            "--push_to_hub",
        ]
    )
    assert args.method == ["gnn", "lm"]
    assert (args.learning_rate, args.per_device_train_batch_size, args.step_budget, args.head_learning_rate) == (
        1e-3,
        64,
        200,
        1e-3,
    )
    run = training_arguments(args, "gnn-5", ["labels"], remove_unused_columns=False)
    assert run.output_dir == str(tmp_path / "gnn-5") and run.gradient_accumulation_steps == 3 and run.bf16
    assert run.lr_scheduler_type == "cosine" and run.weight_decay == 0.01 and run.save_strategy == "no"
    assert not run.push_to_hub  # the script uploads its own output folder at the end
    with pytest.raises(SystemExit):
        parse_args(["--method", "bert"])  # not a method: argparse names the choices


@pytest.mark.parametrize("script", sorted(path.stem for path in (Path(__file__).parents[1] / "examples").glob("*.py")))
def test_every_script_prints_its_help(script, capsys):
    import importlib

    # argparse formats help strings with %-interpolation: a bare "%" in a help text breaks --help only
    with pytest.raises(SystemExit) as exit_info:
        importlib.import_module(script).main(["--help"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("usage:")
