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
    config = JaketConfig(num_hidden_layers=6, hidden_size=64, km_num_heads=4, num_entity_categories=45)
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
    ],
)
def test_invalid_settings_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        JaketConfig(**kwargs)
