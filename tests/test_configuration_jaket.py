import pytest

from modeling_jaket import JaketConfig


def test_defaults_are_the_papers():
    config = JaketConfig()
    assert config.backbone_type == "roberta" and config.hidden_size == 768 and config.num_hidden_layers == 12
    assert config.num_lm1_layers == 6 and config.num_lm2_layers == 6
    assert (config.km_num_layers, config.km_num_heads, config.km_composition) == (2, 8, "add")
    assert config.merge_layer_norm == "all"  # Eq. 3: LayerNorm over every position of Z^merge
    assert (
        config.memory_refresh_init_interval,
        config.memory_refresh_ratio,
        config.memory_refresh_repeats,
        config.memory_refresh_max_interval,
        config.memory_momentum,
    ) == (10, 2, 3, 500, 0.8)


def test_num_lm1_layers_defaults_to_half_and_round_trips(tmp_path):
    config = JaketConfig(
        num_hidden_layers=6, hidden_size=64, num_attention_heads=4, km_num_heads=4, num_entity_categories=45
    )
    assert config.num_lm1_layers == 3
    config.save_pretrained(tmp_path)
    loaded = JaketConfig.from_pretrained(tmp_path)
    assert loaded.num_lm1_layers == 3 and loaded.num_entity_categories == 45 and loaded.model_type == "jaket"
    assert loaded.auto_map["AutoModel"] == "modeling_jaket.JaketModel"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(backbone_type="gpt2"), "backbone_type must be 'roberta' or 'bert'"),
        (dict(num_lm1_layers=13), r"num_lm1_layers must be in \[1, num_hidden_layers=12\]"),
        (dict(num_lm1_layers=0), "num_lm1_layers"),
        (dict(km_num_heads=7), r"hidden_size \(768\) must be divisible by km_num_heads \(7\)"),
        (dict(km_composition="mul"), "km_composition"),
        (dict(merge_layer_norm="none"), "merge_layer_norm must be 'all' or 'mentions', got 'none'"),
        (dict(memory_momentum=1.5), "memory_momentum"),
        (dict(hidden_size=0), "hidden_size must be a positive integer, got 0"),
        (dict(vocab_size=True), "vocab_size must be a positive integer, got True"),
        (dict(num_attention_heads=2.0), "num_attention_heads must be a positive integer, got 2.0"),
        (dict(num_attention_heads=5), r"hidden_size \(768\) must be divisible by num_attention_heads \(5\)"),
        (dict(km_num_layers=-1), "km_num_layers must be an integer >= 0, got -1"),
        (dict(num_entity_categories=0), "num_entity_categories must be a positive integer or None, got 0"),
        (dict(hidden_dropout_prob=1.0), r"hidden_dropout_prob must be a number in \[0, 1\), got 1.0"),
        (dict(km_dropout=-0.1), r"km_dropout must be a number in \[0, 1\)"),
        (dict(classifier_dropout="0.1"), r"classifier_dropout must be a number in \[0, 1\), got '0.1'"),
        (dict(layer_norm_eps=0), "layer_norm_eps must be a finite positive number, got 0"),
        (dict(layer_norm_eps=float("nan")), "layer_norm_eps must be a finite positive number, got nan"),
        (dict(initializer_range=float("inf")), "initializer_range must be a finite positive number, got inf"),
        (dict(km_negative_slope=-0.2), "km_negative_slope must be a finite number >= 0"),
        (dict(km_negative_slope=float("nan")), "km_negative_slope must be a finite number >= 0, got nan"),
        (dict(memory_momentum=float("nan")), r"memory_momentum must be a number in \[0, 1\), got nan"),
        (dict(pad_token_id=50265), r"pad_token_id must be None or an id in \[0, vocab_size=50265\), got 50265"),
        (dict(pad_token_id=-1), r"pad_token_id must be None or an id in \[0, vocab_size=50265\), got -1"),
        (dict(check_finite_inputs="yes"), "check_finite_inputs must be True or False, got 'yes'"),
        (dict(km_hidden_act="elo"), "km_hidden_act must be 'gelu' or .* got 'elo'"),
        (dict(memory_refresh_max_interval=5), r"memory_refresh_max_interval must be >= memory_refresh_init_interval"),
    ],
)
def test_invalid_settings_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        JaketConfig(**kwargs)


def test_a_keyword_a_typo_away_from_a_field_is_warned_about(caplog):
    from transformers.utils import logging

    logging.enable_propagation()
    try:
        config = JaketConfig(hiden_size=64)
    finally:
        logging.disable_propagation()
    assert config.hidden_size == 768  # transformers keeps the unknown key; the field is untouched
    assert "JaketConfig got hiden_size=64, which is no field: did you mean hidden_size?" in caplog.text
    caplog.clear()
    JaketConfig(architectures=["JaketModel"])  # keys a saved config carries are no typo
    assert "which is no field" not in caplog.text
