import pytest
import torch
from transformers import AutoModel, RobertaModel

from conftest import tiny_config
from modeling_jaket import (
    JaketForEntityClassification,
    JaketForPreTraining,
    JaketForSequenceClassification,
    JaketModel,
)


def graph_inputs(num_entities=6, hidden=32, first_id=10):
    return dict(
        subgraph_entity_ids=torch.arange(first_id, first_id + num_entities),
        edge_index=torch.tensor([[1, 2, 3, 4, 5], [0, 0, 1, 1, 2]]),
        edge_type=torch.tensor([0, 1, 2, 0, 1]),
        entity_init_embeddings=torch.randn(num_entities, hidden),
        relation_embeddings=torch.randn(3, hidden),
    )


def text_inputs(batch=2, length=10):
    input_ids = torch.randint(5, 300, (batch, length))
    return dict(input_ids=input_ids, attention_mask=torch.ones_like(input_ids))


MENTIONS = dict(
    mention_entity_ids=torch.tensor([[10, 11], [12, -1]]),
    mention_starts=torch.tensor([[1, 4], [2, -1]]),
    mention_ends=torch.tensor([[2, 4], [3, -1]]),
)


def merged_states(model, **inputs):
    """(Z from LM1, Z^merge as LM2 receives it, E^KM)."""
    captured = {}
    hook = model.lm2[0].register_forward_pre_hook(lambda module, args: captured.update(merged=args[0]))
    with torch.no_grad():
        output = model(**inputs)
    hook.remove()
    return output.lm1_last_hidden_state, captured["merged"], output.entity_embeddings


MENTION_TOKENS = torch.zeros(2, 10, dtype=torch.bool)
MENTION_TOKENS[0, 1:3] = MENTION_TOKENS[0, 4] = MENTION_TOKENS[1, 2:4] = True


def test_merge_adds_entity_embeddings_at_mention_tokens_then_layer_norms_every_position(config):
    model = JaketModel(config).eval()  # merge_layer_norm="all", Eq. 3 as the paper writes it
    with torch.no_grad():  # LM1's last layer normalises too: a LayerNorm at its initial (1, 0) would change nothing
        model.merge.layer_norm.weight.uniform_(0.5, 2.0)
    z, merged, e_km = merged_states(model, **text_inputs(), **graph_inputs(), **MENTIONS)
    layer_norm = model.merge.layer_norm
    added = torch.zeros_like(z)
    added[0, 1:3], added[0, 4], added[1, 2:4] = e_km[0], e_km[1], e_km[2]
    torch.testing.assert_close(merged, layer_norm(z + added))
    assert not torch.allclose(merged[~MENTION_TOKENS], z[~MENTION_TOKENS])


def test_mention_only_merge_layer_norms_only_mention_tokens(config):
    config.merge_layer_norm = "mentions"
    model = JaketModel(config).eval()
    z, merged, e_km = merged_states(model, **text_inputs(), **graph_inputs(), **MENTIONS)
    torch.testing.assert_close(merged[~MENTION_TOKENS], z[~MENTION_TOKENS], rtol=0, atol=0)
    layer_norm = model.merge.layer_norm
    torch.testing.assert_close(merged[0, 1], layer_norm(z[0, 1] + e_km[0]))
    torch.testing.assert_close(merged[0, 2], layer_norm(z[0, 2] + e_km[0]))
    torch.testing.assert_close(merged[0, 4], layer_norm(z[0, 4] + e_km[1]))
    torch.testing.assert_close(merged[1, 3], layer_norm(z[1, 3] + e_km[2]))


@pytest.mark.parametrize("merge_layer_norm", ["all", "mentions"])
def test_a_batch_without_mentions_is_the_plain_encoder_or_layer_normed_as_the_mode_says(config, merge_layer_norm):
    config.merge_layer_norm = merge_layer_norm
    model = JaketModel(config).eval()
    with torch.no_grad():
        model.merge.layer_norm.weight.uniform_(0.5, 2.0)
    none = dict(
        mention_entity_ids=torch.full((2, 1), -1),
        mention_starts=torch.full((2, 1), -1),
        mention_ends=torch.full((2, 1), -1),
    )
    for inputs in (dict(**graph_inputs(), **none), {}):  # mentions all padding, or text alone
        z, merged, _ = merged_states(model, **text_inputs(), **inputs)
        expected = model.merge.layer_norm(z) if merge_layer_norm == "all" else z
        torch.testing.assert_close(merged, expected)


def test_without_a_knowledge_module_it_is_the_plain_encoder(config):
    config.km_num_layers = 0
    model = JaketModel(config).eval()
    with torch.no_grad():
        model.merge.layer_norm.weight.uniform_(0.5, 2.0)
    none = dict(
        mention_entity_ids=torch.full((2, 1), -1),
        mention_starts=torch.full((2, 1), -1),
        mention_ends=torch.full((2, 1), -1),
    )
    for inputs in ({}, dict(**graph_inputs(), **none)):  # text alone, or with padding mentions (FewRel's LM baseline)
        z, merged, _ = merged_states(model, **text_inputs(), **inputs)
        torch.testing.assert_close(merged, z, rtol=0, atol=0)


def test_mentions_change_the_output_and_knowledge_module_gets_gradients(config):
    model = JaketModel(config)
    graph, text = graph_inputs(), text_inputs()
    output = model(**text, **graph, **MENTIONS)
    output.last_hidden_state.sum().backward()
    assert model.knowledge_module.layers[0].projection.weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        assert not torch.allclose(
            model(**text, **graph, **MENTIONS).last_hidden_state, model(**text).last_hidden_state
        )


def test_lm1_equals_bert_backbone_after_num_lm1_layers(minilm_path, bert_tokenizer):
    # the merge's LayerNorm over every position (the default) is the one module between LM1 and LM2 that the backbone
    # lacks: with it on the mention tokens only, text without mentions passes as through the backbone
    model = JaketModel.from_backbone(minilm_path, num_lm1_layers=3, merge_layer_norm="mentions").eval()
    backbone = AutoModel.from_pretrained(minilm_path).eval()
    batch = bert_tokenizer(["a dog barks at the mailman", "hello"], padding=True, return_tensors="pt")
    with torch.no_grad():
        reference = backbone(**batch, output_hidden_states=True).hidden_states
        output = model(**batch, output_hidden_states=True)
    mask = batch["attention_mask"].bool()
    torch.testing.assert_close(output.lm1_last_hidden_state[mask], reference[3][mask])
    torch.testing.assert_close(output.last_hidden_state[mask], reference[6][mask])
    assert len(output.hidden_states) == 7


def test_lm1_equals_roberta_backbone_and_lm_head_is_loaded(tiny_roberta_checkpoint):
    model, info = JaketForPreTraining.from_backbone(
        tiny_roberta_checkpoint, output_loading_info=True, num_entity_categories=4, num_relation_types=2
    )
    model.eval()
    backbone = RobertaModel.from_pretrained(tiny_roberta_checkpoint).eval()
    input_ids = torch.tensor([[0, 17, 45, 99, 2, 1, 1], [0, 5, 6, 7, 8, 9, 2]])
    attention_mask = (input_ids != 1).long()
    with torch.no_grad():
        reference = backbone(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        output = model.jaket(input_ids=input_ids, attention_mask=attention_mask)
    mask = attention_mask.bool()
    torch.testing.assert_close(output.lm1_last_hidden_state[mask], reference.hidden_states[2][mask])
    assert model.config.backbone_type == "roberta" and model.config.num_lm1_layers == 2
    assert not any(k.startswith("lm_head.") for k in info["missing_keys"])
    assert any(k.startswith("jaket.knowledge_module.") for k in info["missing_keys"])
    assert model.lm_head.decoder.weight.data_ptr() == model.jaket.embeddings.word_embeddings.weight.data_ptr()


def test_from_backbone_reports_every_key_not_loaded(minilm_path):
    model, info = JaketForSequenceClassification.from_backbone(minilm_path, output_loading_info=True, num_labels=3)
    loaded = set(model.state_dict()) - set(info["missing_keys"])
    assert info["unexpected_keys"] == ["pooler.dense.bias", "pooler.dense.weight"]
    assert {k.split(".")[0] for k in info["missing_keys"]} == {"jaket", "classifier"}
    assert all(".knowledge_module." in k or ".merge." in k for k in info["missing_keys"] if k.startswith("jaket."))
    assert len([k for k in loaded if k.startswith("jaket.lm")]) == 6 * 16


def test_from_backbone_loads_every_checkpoint_layout_transformers_loads(tiny_bert_checkpoint, tmp_path):
    from transformers import BertForMaskedLM

    heads = dict(num_entity_categories=5, num_relation_types=3)
    reference = JaketForPreTraining.from_backbone(tiny_bert_checkpoint, **heads).state_dict()
    backbone = BertForMaskedLM.from_pretrained(tiny_bert_checkpoint)
    backbone.save_pretrained(tmp_path / "sharded", max_shard_size="500KB")
    assert len(list((tmp_path / "sharded").glob("model-*-of-*.safetensors"))) > 1
    (tmp_path / "bin").mkdir()
    backbone.config.save_pretrained(tmp_path / "bin")
    torch.save(backbone.state_dict(), tmp_path / "bin" / "pytorch_model.bin")
    for layout in ("sharded", "bin"):
        model, info = JaketForPreTraining.from_backbone(str(tmp_path / layout), output_loading_info=True, **heads)
        loaded = model.state_dict()
        for key in set(reference) - set(info["missing_keys"]):  # the randomly initialised rest differs by design
            torch.testing.assert_close(loaded[key], reference[key], rtol=0, atol=0, msg=f"{layout}: {key}")
        assert "jaket.lm1.0.attention.self.query.weight" not in info["missing_keys"]


@pytest.mark.parametrize("shard", [None, "60KB"])
def test_from_backbone_takes_a_saved_jaket_s_language_model_and_starts_the_rest_afresh(
    tiny_bert_checkpoint, tmp_path, shard
):
    heads = dict(num_entity_categories=5, num_relation_types=3)
    torch.manual_seed(0)
    saved = JaketForPreTraining.from_backbone(tiny_bert_checkpoint, num_lm1_layers=1, **heads)
    with torch.no_grad():  # a language model and a knowledge module of its own, unlike the backbone's and a fresh one
        for parameter in saved.parameters():
            parameter.add_(torch.randn_like(parameter))
    saved.save_pretrained(tmp_path / "jaket", **({"max_shard_size": shard} if shard else {}))
    assert (tmp_path / "jaket" / "model.safetensors.index.json").is_file() == bool(shard)
    theirs = saved.state_dict()
    torch.manual_seed(1)
    model, info = JaketForPreTraining.from_backbone(str(tmp_path / "jaket"), output_loading_info=True, **heads)
    ours = model.state_dict()
    assert model.config.num_lm1_layers == 1  # split as it was
    language_model = [
        k
        for k in theirs
        if k.startswith(("jaket.embeddings.", "jaket.lm1.", "jaket.lm2.", "jaket.merge.", "lm_head."))
    ]
    for key in language_model:
        assert torch.equal(ours[key], theirs[key]), key
    for prefix in ("jaket.knowledge_module.", "entity_category_head.", "masked_entity_head."):
        present = [k for k in theirs if k.startswith(prefix)]
        assert present and all(not torch.equal(ours[k], theirs[k]) for k in present), prefix  # afresh
    assert any(k.startswith("jaket.knowledge_module.") for k in info["unexpected_keys"])  # said, not loaded
    # another split takes the same layers in the same order
    resplit = JaketModel.from_backbone(str(tmp_path / "jaket"), num_lm1_layers=2).state_dict()
    assert torch.equal(resplit["lm1.1.attention.self.query.weight"], theirs["jaket.lm2.0.attention.self.query.weight"])
    assert not torch.equal(
        resplit["merge.layer_norm.weight"], theirs["jaket.merge.layer_norm.weight"]
    )  # moved: afresh


def test_from_backbone_rejects_other_architectures(tmp_path):
    from transformers import GPT2Config

    GPT2Config(n_layer=1, n_embd=8, n_head=2).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="'gpt2' model"):
        JaketModel.from_backbone(str(tmp_path))


def test_encode_descriptions_averages_mention_ends_or_uses_first_token(config):
    model = JaketModel(config).eval()
    text = text_inputs(batch=3)
    starts, ends = torch.tensor([2, -1, 5]), torch.tensor([4, -1, 5])
    with torch.no_grad():
        embeddings = model.encode_descriptions(text["input_ids"], text["attention_mask"], starts, ends)
        z = model(**text).lm1_last_hidden_state
    torch.testing.assert_close(embeddings[0], (z[0, 2] + z[0, 4]) / 2)
    torch.testing.assert_close(embeddings[1], z[1, 1])
    torch.testing.assert_close(embeddings[2], z[2, 5])


def test_pretraining_output_carries_each_loss_and_their_sum(config):
    model = JaketForPreTraining(config)
    text, graph = text_inputs(), graph_inputs()
    output = model(
        **text,
        **graph,
        **MENTIONS,
        labels=torch.where(torch.rand(2, 10) < 0.3, text["input_ids"], -100).index_fill(1, torch.tensor([6]), 7),
        entity_category_labels=torch.tensor([0, 1, 2, 3, 4, -100]),
        relation_head_index=torch.tensor([0, 1]),
        relation_tail_index=torch.tensor([1, 2]),
        relation_labels=torch.tensor([0, 2]),
        masked_entity_starts=torch.tensor([[6], [6]]),
        masked_entity_ends=torch.tensor([[7], [6]]),
        masked_entity_candidate_embeddings=torch.randn(2, 1, 5, 32),
        masked_entity_labels=torch.tensor([[0], [-100]]),
    )
    parts = [output.entity_category_loss, output.relation_type_loss, output.masked_lm_loss, output.masked_entity_loss]
    assert all(p is not None and p > 0 for p in parts)
    torch.testing.assert_close(output.loss, sum(parts))
    assert output.masked_entity_logits.shape == (2, 1, 5)
    assert output.relation_type_logits.shape == (2, 3) and output.entity_category_logits.shape == (6, 5)
    output.loss.backward()
    assert model.masked_entity_head.w1.weight.grad.abs().sum() > 0
    assert model.jaket.knowledge_module.layers[1].projection.weight.grad.abs().sum() > 0


def test_pretraining_without_labels_has_no_loss_and_needs_category_counts(config):
    model = JaketForPreTraining(config)
    assert model(**text_inputs()).loss is None
    with pytest.raises(ValueError, match="num_entity_categories"):
        JaketForPreTraining(tiny_config(num_entity_categories=None))


def test_entity_classification_runs_on_the_graph_alone():
    model = JaketForEntityClassification(tiny_config(num_labels=4))
    graph = graph_inputs()
    del graph["subgraph_entity_ids"]
    output = model(**graph, labels=torch.tensor([0, 1, 2, 3, -100, -100]))
    assert output.logits.shape == (6, 4) and output.loss > 0
    output.loss.backward()
    assert model.jaket.knowledge_module.layers[0].projection.weight.grad is not None
    assert model.jaket.lm1[0].attention.self.query.weight.grad is None  # no text, so LM1 is not run


def test_sequence_classification_loss(config):
    config.num_labels = 3
    model = JaketForSequenceClassification(config)
    labels = torch.tensor([0, 2])
    output = model(**text_inputs(), **graph_inputs(), **MENTIONS, labels=labels)
    assert output.logits.shape == (2, 3) and not torch.equal(output.logits[0], output.logits[1])
    torch.testing.assert_close(output.loss, torch.nn.functional.cross_entropy(output.logits, labels))


def test_hidden_states_and_attentions_are_returned_when_asked():
    model = JaketModel(tiny_config()).eval()
    model.set_attn_implementation("eager")
    output = model(**text_inputs(), **graph_inputs(), **MENTIONS, output_hidden_states=True, output_attentions=True)
    assert len(output.hidden_states) == 5 and len(output.attentions) == 4
    assert output.attentions[0].shape == (2, 4, 10, 10)
    assert len(output.knowledge_attentions) == 2 and output.knowledge_attentions[0].shape == (5, 4)
    torch.testing.assert_close(output.hidden_states[2], output.lm1_last_hidden_state)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(mention_entity_ids=torch.tensor([[10, 99], [12, -1]])), "links entity 99, which is not in subgraph"),
        (dict(mention_ends=torch.tensor([[2, 12], [3, -1]])), r"mention span 1 of example 0 is \[4, 12\]"),
        (dict(mention_ends=torch.tensor([[0, 4], [3, -1]])), r"mention span 0 of example 0 is \[1, 0\]"),
        (dict(mention_starts=torch.tensor([1, 4])), "differ in shape"),
        (  # -5 passed as padding
            dict(mention_starts=torch.tensor([[1, 4], [2, -5]]), mention_ends=torch.tensor([[2, 4], [3, -5]])),
            r"mention span 1 of example 1 is \[-5, -5\]: pad with -1 in both starts and ends",
        ),
        (dict(mention_entity_ids=torch.tensor([[10], [12]])), "differ in shape"),
        (dict(subgraph_entity_ids=torch.arange(10, 15)), r"subgraph_entity_ids has shape \(5,\) but .* 6 rows"),
        (dict(subgraph_entity_ids=torch.tensor([10, 11, 12, 13, 11, 15])), "holds entity 11 more than once"),
        (dict(input_ids=torch.zeros(2, 0, dtype=torch.long), attention_mask=None), "input_ids must be a non-empty"),
        (dict(input_ids=torch.full((2, 10), 300)), r"input_ids holds ids in \[300, 300\] but the vocabulary has 300"),
        (dict(inputs_embeds=torch.zeros(2, 10, 32)), "pass input_ids or inputs_embeds, not both"),
        (
            dict(input_ids=None, inputs_embeds=torch.zeros(2, 10, 31)),
            r"inputs_embeds must be \[batch, length, hidden_size=32\]",
        ),
        (
            dict(entity_init_embeddings=torch.zeros(6, 31)),
            r"entity_init_embeddings must be \[num_subgraph_entities, hidden_size=32\]",
        ),
        (dict(edge_type=None), "edge_index and edge_type must be given together"),
        (dict(relation_embeddings=None), "without relation_embeddings"),
        (
            dict(edge_index=torch.tensor([[1.0, 2.0], [0.0, 0.0]]), edge_type=torch.tensor([0, 1])),
            "edge_index must be an integer tensor",
        ),
        (dict(edge_type=torch.tensor([0.0, 1.0, 2.0, 0.0, 1.0])), "edge_type must be an integer tensor"),
        (dict(edge_type=torch.tensor([True, False, True, False, True])), "edge_type must be an integer tensor"),
        (dict(mention_entity_ids=torch.tensor([[10.0, 11.0], [12.0, -1.0]])), "mention_entity_ids must be an integer"),
        (dict(subgraph_entity_ids=torch.arange(10, 16).float()), "subgraph_entity_ids must be an integer"),
        (dict(attention_mask=torch.ones(2, 9)), r"attention_mask \(2, 9\) and the text \(2, 10\) differ in shape"),
        # RoBERTa's positions count from pad_token_id + 1 = 2, so 62 of the 64 positions hold text
        (
            dict(input_ids=torch.randint(5, 300, (2, 63)), attention_mask=None),
            r"the text has 63 tokens a row; this model takes at most 62 \(max_position_embeddings 64",
        ),
    ],
)
def test_bad_model_inputs_are_named(config, change, message):
    model = JaketModel(config)
    inputs = {**text_inputs(), **graph_inputs(), **MENTIONS, **change}
    with pytest.raises(ValueError, match=message):
        model(**inputs)


def test_a_token_embedding_size_that_is_no_positive_integer_is_refused(config):
    model = JaketModel(config)
    for size in (-5, 0, 2.5, True):  # -5 failed in torch with a negative dimension
        with pytest.raises(ValueError, match=f"new_num_tokens must be a positive integer, got {size!r}"):
            model.resize_token_embeddings(size)
    larger = config.vocab_size + 3
    assert model.resize_token_embeddings(larger).num_embeddings == larger


def test_validation_can_be_turned_off_for_a_hot_path(config):
    """`validate_inputs=False` runs the same computation without the checks: valid inputs give the same output, and
    an input only the checks would refuse (a repeated subgraph id) passes."""
    torch.manual_seed(0)
    checked = JaketModel(config).eval()
    unchecked = JaketModel(tiny_config(validate_inputs=False)).eval()
    unchecked.load_state_dict(checked.state_dict())
    inputs = {**text_inputs(), **graph_inputs(), **MENTIONS}
    with torch.no_grad():
        torch.testing.assert_close(unchecked(**inputs).last_hidden_state, checked(**inputs).last_hidden_state)
    repeated = {**inputs, "subgraph_entity_ids": torch.tensor([10, 11, 12, 13, 11, 15])}
    with torch.no_grad():
        assert unchecked(**repeated).last_hidden_state.shape == (2, 10, 32)
    with pytest.raises(ValueError, match="more than once"):
        checked(**repeated)


def test_mentions_without_subgraph_are_rejected(config):
    with pytest.raises(ValueError, match="mention_entity_ids needs the text and the subgraph"):
        JaketModel(config)(**text_inputs(), **MENTIONS)


def test_gradient_checkpointing_gives_the_same_gradients(config):
    torch.manual_seed(0)
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = config.km_dropout = 0.0
    model = JaketModel(config).train()
    inputs = {**text_inputs(), **graph_inputs(), **MENTIONS}
    model(**inputs).last_hidden_state.pow(2).sum().backward()
    expected = model.lm1[0].attention.self.query.weight.grad.clone()
    model.zero_grad()
    # `activation_checkpointing_enable` in the tested release; its older name in the range's first releases
    enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
    enable()
    assert all(layer.gradient_checkpointing for layer in [*model.lm1, *model.lm2])
    runs = []
    model.lm1[0].attention.register_forward_hook(lambda *args: runs.append(1))  # inside the checkpointed forward
    model(**inputs).last_hidden_state.pow(2).sum().backward()
    assert len(runs) == 2  # the forward, then its recomputation in the backward pass
    torch.testing.assert_close(model.lm1[0].attention.self.query.weight.grad, expected)


def test_masked_lm_logits_have_transformers_shape_and_sparse_prediction_scores_the_labels_only(config):
    """By default the logits are `[batch, length, vocab]` with labels too (transformers' convention); with
    `sparse_prediction` (pre-training's setting) the labelled positions only, with the same loss."""
    model = JaketForPreTraining(config).eval()
    text = text_inputs()
    labels = torch.full((2, 10), -100)
    labels[0, 3], labels[1, 7] = 11, 12
    with torch.no_grad():
        full = model(**text).logits
        dense = model(**text, labels=labels)
        model.config.sparse_prediction = True
        sparse = model(**text, labels=labels)
    assert full.shape == dense.logits.shape == (2, 10, config.vocab_size)
    torch.testing.assert_close(dense.logits, full)
    torch.testing.assert_close(sparse.logits, full[[0, 1], [3, 7]])
    expected = torch.nn.functional.cross_entropy(full[[0, 1], [3, 7]], torch.tensor([11, 12]))
    torch.testing.assert_close(sparse.masked_lm_loss, expected)
    torch.testing.assert_close(dense.masked_lm_loss, expected)


def test_an_empty_subgraph_gives_no_entity_embeddings(config):
    empty = dict(
        subgraph_entity_ids=torch.empty(0, dtype=torch.long),
        edge_index=torch.empty(2, 0, dtype=torch.long),
        edge_type=torch.empty(0, dtype=torch.long),
        entity_init_embeddings=torch.empty(0, 32),
        relation_embeddings=torch.randn(3, 32),
    )
    model, text = JaketModel(config).eval(), text_inputs()
    with torch.no_grad():
        output, text_only = model(**text, **empty), model(**text)
    assert output.entity_embeddings.shape == (0, 32)
    torch.testing.assert_close(output.last_hidden_state, text_only.last_hidden_state)


def test_non_finite_initial_embeddings_are_named_when_checked(config):
    inputs = {**text_inputs(), **graph_inputs(), **MENTIONS}
    inputs["entity_init_embeddings"][4, 7] = float("nan")
    output = JaketModel(config)(**inputs)  # unchecked by default: the NaN spreads
    assert torch.isnan(output.entity_embeddings).any()
    with pytest.raises(ValueError, match=r"entity_init_embeddings row 4 holds NaN or infinity \(1 such"):
        JaketModel(tiny_config(check_finite_inputs=True))(**inputs)


@pytest.mark.parametrize("head", ["pretraining", "entity", "sequence"])
def test_heads_return_tuples_with_return_dict_false(head):
    config = tiny_config(num_labels=3, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    inputs = {**text_inputs(), **graph_inputs(), **MENTIONS}
    if head == "pretraining":
        model, labels = JaketForPreTraining(config), dict(entity_category_labels=torch.tensor([0, 1, 2, 3, 4, -100]))
    elif head == "entity":
        model, labels = JaketForEntityClassification(config), dict(labels=torch.tensor([0, 1, 2, -100, 0, 1]))
    else:
        model, labels = JaketForSequenceClassification(config), dict(labels=torch.tensor([0, 2]))
    model.eval()
    as_dict = model(**inputs, **labels)
    as_tuple = model(**inputs, **labels, return_dict=False)
    assert isinstance(as_tuple, tuple) and len(as_tuple) == len(as_dict.to_tuple())
    for ours, theirs in zip(as_tuple, as_dict.to_tuple()):
        torch.testing.assert_close(ours, theirs)
    torch.testing.assert_close(as_tuple[0], as_dict.loss)  # the loss comes first, as in every transformers head
    model.config.return_dict = False  # the config's setting is honoured too
    assert isinstance(model(**inputs, **labels), tuple)
    if head != "entity":  # an entity classifier's output holds no text states
        model.config.return_dict = True
        states = model(**inputs, **labels, output_hidden_states=True).hidden_states
        assert len(states) == config.num_hidden_layers + 1


def test_num_items_in_batch_sums_the_loss_over_the_whole_accumulated_batch():
    model = JaketForEntityClassification(tiny_config(num_labels=3, hidden_dropout_prob=0.0)).eval()
    inputs = graph_inputs()
    labels = torch.tensor([0, 1, 2, -100, 0, 1])
    mean = model(**inputs, labels=labels).loss
    summed = model(**inputs, labels=labels, num_items_in_batch=10).loss
    torch.testing.assert_close(summed, mean * 5 / 10)  # 5 labelled entities here, 10 in the accumulated batch


def test_trainer_with_default_columns_and_gradient_accumulation_matches_one_big_batch(tmp_path):
    """remove_unused_columns=True (Trainer's default) keeps the inputs the head names; two micro-batches of 2 take
    the same step as one batch of 4, because the loss is divided by all their labels, not by each micro-batch's."""
    from datasets import Dataset
    from transformers import Trainer, TrainingArguments

    config = tiny_config(num_labels=3, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    generator = torch.Generator().manual_seed(0)
    rows = {
        "input_ids": torch.randint(5, 300, (4, 8), generator=generator).tolist(),
        "attention_mask": [[1] * 8] * 4,
        "labels": [0, 2, 1, 2],
        "text": ["a", "b", "c", "d"],
    }
    trained = []
    for batch_size, accumulation in ((4, 1), (2, 2)):
        torch.manual_seed(0)
        model = JaketForSequenceClassification(config)
        args = TrainingArguments(
            output_dir=str(tmp_path / f"{batch_size}"),
            per_device_train_batch_size=batch_size,
            gradient_accumulation_steps=accumulation,
            max_steps=1,
            optim="sgd",
            learning_rate=1.0,
            lr_scheduler_type="constant",
            report_to=[],
            save_strategy="no",
            use_cpu=True,
            seed=0,
            data_seed=0,
        )
        Trainer(model=model, args=args, train_dataset=Dataset.from_dict(rows)).train()
        trained.append(model.classifier.out_proj.weight.detach().clone())
    torch.testing.assert_close(trained[0], trained[1])


@pytest.mark.parametrize("backbone_type, longest", [("roberta", 62), ("bert", 64)])
def test_the_longest_text_the_positions_allow_runs(backbone_type, longest):
    model = JaketModel(tiny_config(backbone_type=backbone_type)).eval()
    with torch.no_grad():
        assert model(input_ids=torch.randint(5, 300, (1, longest))).last_hidden_state.shape == (1, longest, 32)
    with pytest.raises(
        ValueError, match=f"the text has {longest + 1} tokens a row; this model takes at most {longest}"
    ):
        model(input_ids=torch.randint(5, 300, (1, longest + 1)))


def test_eager_attention_gives_what_sdpa_gives_and_ignores_padding():
    model = JaketModel(tiny_config()).eval()
    inputs = {**text_inputs(), **graph_inputs(), **MENTIONS}
    inputs["attention_mask"][1, 7:] = 0
    with torch.no_grad():
        sdpa = model(**inputs).last_hidden_state
        model.set_attn_implementation("eager")
        eager = model(**inputs, output_attentions=True)
    torch.testing.assert_close(eager.last_hidden_state, sdpa)
    for weights in eager.attentions:
        torch.testing.assert_close(weights.sum(-1), torch.ones(2, 4, 10))
        assert weights[1, :, :, 7:].abs().max() == 0 and weights[0, :, :, 7:].min() > 0


@pytest.mark.parametrize(
    "model_class", [JaketModel, JaketForPreTraining, JaketForSequenceClassification, JaketForEntityClassification]
)
def test_added_tokens_run_save_load_and_train_after_resize(tmp_path, config, model_class):
    """After `resize_token_embeddings`, a new token runs through every head, the model saves and loads with the new
    vocabulary, and a training step keeps the LM head's decoder tied to the word embeddings and to its bias."""
    torch.manual_seed(0)
    model = model_class(config)
    size = config.vocab_size + 7
    model.resize_token_embeddings(size)
    new_token = size - 1
    inputs = {**text_inputs(), **graph_inputs(), **MENTIONS}
    inputs["input_ids"][:, 5] = new_token
    labels = {
        JaketForPreTraining: {"labels": torch.full((2, 10), -100).index_fill_(1, torch.tensor([5]), new_token)},
        JaketForSequenceClassification: {"labels": torch.tensor([0, 1])},
        JaketForEntityClassification: {"labels": torch.tensor([0, 1, 0, 1, 0, 1])},
    }.get(model_class, {})
    model.eval()
    with torch.no_grad():
        expected = model(**inputs)[0]
    model.save_pretrained(tmp_path)
    loaded = model_class.from_pretrained(tmp_path).eval()
    assert loaded.config.vocab_size == size
    with torch.no_grad():
        torch.testing.assert_close(loaded(**inputs)[0], expected)
    if not labels:
        return
    loaded.train()
    loss = loaded(**inputs, **labels).loss
    loss.backward()
    torch.optim.SGD(loaded.parameters(), lr=0.1).step()
    if model_class is JaketForPreTraining:
        head = loaded.lm_head
        assert head.decoder.weight is loaded.jaket.embeddings.word_embeddings.weight
        assert head.bias.shape == (size,) and head.bias.grad is not None
        assert head.bias[new_token] != 0  # the new token's bias trained


def test_backbone_rename_table_splits_layers_and_skips_tied_copies():
    from modeling_jaket.backbone import rename_state_dict, rename_table

    config = tiny_config(num_lm1_layers=1)  # 4 layers: 1 in LM1, 3 in LM2
    table = rename_table(config, "jaket.", has_lm_head=True)
    checkpoint = {
        "roberta.embeddings.word_embeddings.weight": 0,
        "roberta.encoder.layer.0.output.dense.weight": 1,
        "roberta.encoder.layer.2.attention.self.query.bias": 2,
        "bert.embeddings.position_ids": 3,
        "cls.predictions.transform.LayerNorm.weight": 4,
        "lm_head.decoder.weight": 5,
        "roberta.pooler.dense.weight": 6,
    }
    renamed, unused = rename_state_dict(checkpoint, table, skipped={"jaket.embeddings.position_ids"})
    assert renamed == {
        "jaket.embeddings.word_embeddings.weight": 0,
        "jaket.lm1.0.output.dense.weight": 1,
        "jaket.lm2.1.attention.self.query.bias": 2,
        "lm_head.layer_norm.weight": 4,
    }
    assert unused == ["roberta.pooler.dense.weight"]


@pytest.mark.parametrize(
    "head, labels, message",
    [
        ("entity", dict(labels=torch.tensor([0, 1, 7, -100, 0, 1])), r"labels holds 7: labels must lie in \[0, 4\)"),
        ("entity", dict(labels=torch.tensor([0, -3, 1, 1, 0, 1])), r"labels holds -3: labels must lie in \[0, 4\)"),
        (
            "pretraining",
            dict(entity_category_labels=torch.tensor([0, 1, 2, 3, 9, -100])),
            r"entity_category_labels holds 9: labels must lie in \[0, 5\)",
        ),
        ("sequence", dict(labels=torch.tensor([0, 4])), r"labels holds 4: labels must lie in \[0, 4\)"),
    ],
)
def test_a_label_outside_the_heads_classes_is_named(head, labels, message):
    config = tiny_config(num_labels=4, num_entity_categories=5)
    model = {
        "entity": JaketForEntityClassification,
        "pretraining": JaketForPreTraining,
        "sequence": JaketForSequenceClassification,
    }[head](config)
    inputs = {**text_inputs(), **graph_inputs()} if head != "entity" else graph_inputs()
    with pytest.raises(ValueError, match=message):
        model(**inputs, **labels)


def test_token_types_beyond_the_models_and_float64_embeddings_are_named(config):
    text = text_inputs()
    with pytest.raises(ValueError, match=r"token_type_ids holds types in \[1, 1\] but the model has 1"):
        JaketModel(config)(**text, token_type_ids=torch.ones_like(text["input_ids"]))
    graph = graph_inputs()
    graph["entity_init_embeddings"] = graph["entity_init_embeddings"].double()
    with pytest.raises(ValueError, match="entity_init_embeddings is float64 but the model computes in torch.float32"):
        JaketModel(config)(**graph)
