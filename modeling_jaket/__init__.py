"""JAKET as a Hugging Face model: `JaketConfig`, `JaketModel` and its heads, the knowledge module, the entity
context memory and the knowledge graph. Importing this package registers the model with the Auto classes."""

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForPreTraining,
    AutoModelForSequenceClassification,
    AutoProcessor,
)
from transformers.pipelines import PIPELINE_REGISTRY

from .configuration_jaket import JaketConfig
from .graph import KnowledgeGraph, Subgraph
from .knowledge_module import KnowledgeLayer, KnowledgeModule, segment_softmax
from .linking import link_entities, link_mentions
from .memory import EntityContextMemory, RefreshSchedule
from .mentions import MentionFinder
from .modeling_jaket import (
    EntityClassificationOutput,
    JaketForEntityClassification,
    JaketForPreTraining,
    JaketForPreTrainingOutput,
    JaketForSequenceClassification,
    JaketModel,
    JaketModelOutput,
    JaketPreTrainedModel,
    JaketSequenceClassifierOutput,
)
from .pipeline_jaket import EntityClassificationPipeline, EntityLinkingPipeline
from .processing_jaket import JaketProcessor

AutoConfig.register("jaket", JaketConfig, exist_ok=True)
AutoModel.register(JaketConfig, JaketModel, exist_ok=True)
AutoModelForPreTraining.register(JaketConfig, JaketForPreTraining, exist_ok=True)
AutoModelForMaskedLM.register(JaketConfig, JaketForPreTraining, exist_ok=True)
AutoModelForSequenceClassification.register(JaketConfig, JaketForSequenceClassification, exist_ok=True)
AutoProcessor.register(JaketConfig, JaketProcessor, exist_ok=True)

# `pipeline("entity-linking", model=model, processor=processor)` for a model in memory; a saved folder's config
# declares the same pipelines (`custom_pipelines`) for `trust_remote_code`.
PIPELINE_REGISTRY.register_pipeline(
    "entity-linking", pipeline_class=EntityLinkingPipeline, pt_model=AutoModelForPreTraining, type="text"
)
PIPELINE_REGISTRY.register_pipeline(
    "entity-classification", pipeline_class=EntityClassificationPipeline, pt_model=AutoModel, type="text"
)

# `save_pretrained` copies the modeling code beside the weights, so that `trust_remote_code=True` loads it anywhere.
JaketConfig.register_for_auto_class()
JaketModel.register_for_auto_class("AutoModel")
JaketForPreTraining.register_for_auto_class("AutoModelForPreTraining")
JaketForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")
JaketForEntityClassification.register_for_auto_class("AutoModel")
JaketProcessor.register_for_auto_class("AutoProcessor")

__all__ = [
    "EntityClassificationOutput",
    "EntityClassificationPipeline",
    "EntityLinkingPipeline",
    "EntityContextMemory",
    "JaketConfig",
    "JaketForEntityClassification",
    "JaketForPreTraining",
    "JaketForPreTrainingOutput",
    "JaketForSequenceClassification",
    "JaketModel",
    "JaketModelOutput",
    "JaketPreTrainedModel",
    "JaketProcessor",
    "JaketSequenceClassifierOutput",
    "KnowledgeGraph",
    "KnowledgeLayer",
    "KnowledgeModule",
    "MentionFinder",
    "RefreshSchedule",
    "Subgraph",
    "link_entities",
    "link_mentions",
    "segment_softmax",
]
