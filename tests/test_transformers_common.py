"""transformers' own common tests (`ModelTesterMixin`, `ConfigTester`) over every JAKET class, as every model inside
transformers must pass them. The test files come from the installed release's source distribution
(`transformers_common.py`); the testers below are JAKET's."""

import unittest
from importlib import import_module
from unittest.mock import patch

import torch
from transformers.models.auto.modeling_auto import MODEL_MAPPING_NAMES

from modeling_jaket import (
    JaketConfig,
    JaketForEntityClassification,
    JaketForPreTraining,
    JaketForSequenceClassification,
    JaketModel,
)
from transformers_common import common_tests

_common = common_tests().__name__
modeling_common = import_module(f"{_common}.test_modeling_common")
ConfigTester = import_module(f"{_common}.test_configuration_common").ConfigTester
ModelTesterMixin, ids_tensor = modeling_common.ModelTesterMixin, modeling_common.ids_tensor

# The subgraph, its edges and embeddings belong to the whole batch, not to a row: tests that cut every input along
# the batch dimension cannot split them (JaketCommonTest runs those tests on text).
SHARED_SUBGRAPH = "the subgraph is shared by the batch, so its inputs cannot be cut along the batch dimension"
CUT_ALONG_THE_BATCH = ("test_batching_equivalence", "test_eager_matches_sdpa_inference")
# Entity classification reads the subgraph alone: no tokens, so no token hidden states or attention maps (the
# knowledge module's are `knowledge_attentions`), no word embeddings to resize or replace, and no transformer layer
# runs to be checkpointed.
NO_TEXT = "entity classification reads no text"
READS_TEXT = (
    "test_attention_outputs",
    "test_hidden_states_output",
    "test_retain_grad_hidden_states_attentions",
    "test_inputs_embeds",
    "test_resize_tokens_embeddings",
    "test_training_gradient_checkpointing",
)


class JaketModelTester:
    """A tiny JAKET (one LM1 and one LM2 layer, a 2-layer knowledge module) and its inputs: a batch of text
    (`text=True`), a subgraph of 6 entities with edges and initial embeddings (`graph=True`), and with both, two
    mentions a text."""

    def __init__(self, parent, text: bool = True, graph: bool = False, batch_size=3, seq_length=7):
        self.parent, self.text, self.graph = parent, text, graph
        self.batch_size, self.seq_length, self.vocab_size, self.hidden_size = batch_size, seq_length, 99, 32
        self.num_hidden_layers, self.num_attention_heads, self.is_training = 2, 4, True
        self.num_entities, self.num_relations, self.num_categories, self.num_labels = 6, 3, 5, 3

    def get_config(self) -> JaketConfig:
        return JaketConfig(
            vocab_size=self.vocab_size,
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_hidden_layers,
            num_lm1_layers=1,
            num_attention_heads=self.num_attention_heads,
            intermediate_size=37,
            max_position_embeddings=64,
            km_num_heads=4,
            num_entity_categories=self.num_categories,
            num_relation_types=self.num_relations,
            num_labels=self.num_labels,
        )

    def graph_inputs(self) -> dict:
        generator = torch.Generator().manual_seed(0)
        inputs = {
            "subgraph_entity_ids": torch.arange(self.num_entities) + 10,
            "edge_index": torch.tensor([[1, 2, 3, 4, 5, 0, 2], [0, 0, 1, 1, 2, 5, 4]]),
            "edge_type": torch.tensor([0, 1, 2, 0, 1, 2, 0]),
            "entity_init_embeddings": torch.randn(self.num_entities, self.hidden_size, generator=generator),
            "relation_embeddings": torch.randn(self.num_relations, self.hidden_size, generator=generator),
        }
        if self.text:
            starts = torch.tensor([[1, 4]] * self.batch_size)
            ids = torch.randint(self.num_entities, (self.batch_size, 2), generator=generator) + 10
            inputs.update(mention_entity_ids=ids, mention_starts=starts, mention_ends=starts + 1)
        return inputs

    def labels(self, model_class) -> dict:
        """Fixed targets for `model_class`'s losses (every pre-training loss where there is a graph)."""
        generator = torch.Generator().manual_seed(1)
        if model_class is JaketForSequenceClassification:
            return {"labels": torch.randint(self.num_labels, (self.batch_size,), generator=generator)}
        if model_class is JaketForEntityClassification:
            return {"labels": torch.randint(self.num_labels, (self.num_entities,), generator=generator)}
        if model_class is not JaketForPreTraining:
            return {}
        labels = {"labels": torch.randint(self.vocab_size, (self.batch_size, self.seq_length), generator=generator)}
        if self.graph:
            masked = torch.full((self.batch_size, 1), 2)
            labels.update(
                entity_category_labels=torch.randint(self.num_categories, (self.num_entities,), generator=generator),
                relation_head_index=torch.tensor([0, 1]),
                relation_tail_index=torch.tensor([2, 3]),
                relation_labels=torch.randint(self.num_relations, (2,), generator=generator),
                masked_entity_starts=masked,
                masked_entity_ends=masked,
                masked_entity_candidate_embeddings=torch.randn(
                    self.batch_size, 1, 4, self.hidden_size, generator=generator
                ),
                masked_entity_labels=torch.zeros(self.batch_size, 1, dtype=torch.long),
            )
        return labels

    def prepare_config_and_inputs_for_common(self):
        config, inputs = self.get_config(), {}
        if self.text:
            # no id of padding or below inside the text: RoBERTa counts positions from input ids past padding and
            # from embeddings not, so test_inputs_embeds_matches_input_ids failed whenever the draw held a pad id
            pad = config.pad_token_id
            input_ids = ids_tensor([self.batch_size, self.seq_length], self.vocab_size - pad - 1) + pad + 1
            inputs.update(input_ids=input_ids, attention_mask=torch.ones_like(input_ids))
        if self.graph:
            inputs.update(self.graph_inputs())
        return config, inputs


# JaketModel is a base model, as transformers' tests know their own from the auto mapping: it has no loss to train
@patch.dict(MODEL_MAPPING_NAMES, {"jaket": "JaketModel"})
class JaketCommonTest(ModelTesterMixin, unittest.TestCase):
    """The text models on text: JAKET as a RoBERTa/BERT encoder, its pre-training and sequence heads."""

    all_model_classes = (JaketModel, JaketForPreTraining, JaketForSequenceClassification)
    text, graph = True, False
    test_all_params_have_gradient = False  # the knowledge module and its heads see no graph here
    test_can_init_all_missing_weights_before_2023 = True  # run it: transformers skips it for its older models only

    def setUp(self):
        if self.graph and self._testMethodName.startswith(CUT_ALONG_THE_BATCH):
            self.skipTest(SHARED_SUBGRAPH)
        if not self.text and self._testMethodName.startswith(READS_TEXT):
            self.skipTest(NO_TEXT)
        self.model_tester = JaketModelTester(self, text=self.text, graph=self.graph)
        self.config_tester = ConfigTester(
            self, config_class=JaketConfig, hidden_size=37, num_attention_heads=1, km_num_heads=1
        )
        # what the tests that build their own inputs keep besides the main input
        self.additional_model_inputs = list(self.model_tester.graph_inputs()) if self.graph else []

    def _prepare_for_class(self, inputs_dict, model_class, return_labels=False):
        inputs = super()._prepare_for_class(inputs_dict, model_class, return_labels)
        return {**inputs, **self.model_tester.labels(model_class)} if return_labels else inputs

    def test_config(self):
        self.config_tester.run_common_tests()


class JaketWithGraphCommonTest(JaketCommonTest):
    """The pre-training and sequence heads on text that mentions entities of a subgraph: every head and the knowledge
    module train (JaketModel runs inside both)."""

    all_model_classes = (JaketForPreTraining, JaketForSequenceClassification)
    text, graph = True, True
    test_all_params_have_gradient = True


@patch.dict(MODEL_MAPPING_NAMES, {"jaket": "JaketModel"})
class JaketForEntityClassificationCommonTest(JaketCommonTest):
    """Entity classification, whose input is the subgraph alone."""

    all_model_classes = (JaketForEntityClassification,)
    text, graph = False, True
    test_all_params_have_gradient = False  # LM1 and LM2 read no text here
