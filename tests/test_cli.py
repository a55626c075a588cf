"""Every flag of every script says what it does."""

import argparse

import pytest


def actions_of(parse_args, monkeypatch):
    actions = []

    def capture(parser, argv=None, namespace=None):
        actions.extend(parser._actions)
        raise SystemExit

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    with pytest.raises(SystemExit):
        parse_args([])
    return [action for action in actions if action.option_strings and action.dest != "help"]


def test_every_pretraining_flag_has_help(monkeypatch):
    from pretrain import parse_args

    actions = actions_of(parse_args, monkeypatch)
    assert len(actions) > 40
    assert [action.option_strings[0] for action in actions if not action.help] == []


@pytest.mark.parametrize("script", ["finetune_entity_classification", "finetune_fewrel", "finetune_metaqa"])
def test_every_fine_tuning_flag_has_help(script, monkeypatch):
    import importlib

    actions = actions_of(importlib.import_module(script).parse_args, monkeypatch)
    assert len(actions) > 15
    assert [action.option_strings[0] for action in actions if not action.help] == []
