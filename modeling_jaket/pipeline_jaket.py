"""JAKET's pipelines, declared in a saved model's config (`custom_pipelines`), so that
`pipeline("entity-linking", model=folder_or_repo, trust_remote_code=True)` runs them:

- `EntityLinkingPipeline`: text -> every mention of a graph entity (`MentionFinder`: names and aliases, longest
  match), each with its candidates ranked by the masked-entity head;
- `EntityClassificationPipeline`: an entity of the graph (id, key or name) -> its category, from the knowledge
  module's output E^KM through the category head (a pre-trained model) or the classifier (a fine-tuned one).

Both take a single input, a list, a generator or a `KeyDataset`, run `batch_size` inputs through the model at once
and, with `num_workers`, preprocess in that many DataLoader processes."""

import inspect
import os
from functools import partial

import torch
from torch.utils.data import DataLoader
from transformers import Pipeline
from transformers.utils import logging

from .linking import mention_inputs, rank_mentions
from .memory import EntityContextMemory
from .processing_jaket import check_texts
from .validation import is_int

logger = logging.get_logger(__name__)


def postprocess_parameters(top_k) -> dict:
    if top_k is None:
        return {}
    if not is_int(top_k) or top_k < 1:
        raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
    return {"top_k": top_k}


class _BatchedPipeline(Pipeline):
    """A pipeline whose `preprocess`, `_forward` and `postprocess` each take a whole batch (the processor builds one
    subgraph for all of it), with `Pipeline.forward`'s device placement and inference mode."""

    _load_processor = True
    _load_tokenizer = False
    _load_feature_extractor = False
    _load_image_processor = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._check_parts()

    @property
    def _where(self) -> str:
        """The model's folder or repo, for error messages (its class, for a model made in memory)."""
        return self.model.config._name_or_path or type(self.model).__name__

    def _check_parts(self) -> None:
        """The processor's graph and memory fit the model: raise a ValueError naming the folder and what is wrong."""
        where = self._where
        graph, memory = self.processor.graph, self.processor.memory
        if graph is None or memory is None:
            missing = " and ".join(part for part, value in (("graph", graph), ("memory", memory)) if value is None)
            raise ValueError(
                f"{where}: {type(self).__name__} needs the processor's {missing}; save the processor with them "
                "(processor.save_pretrained) beside the model"
            )
        if memory.entity_embeddings.shape[1] != self.model.config.hidden_size:
            raise ValueError(
                f"{where}: the entity memory is {memory.entity_embeddings.shape[1]} wide, the model's hidden_size "
                f"{self.model.config.hidden_size}"
            )

    def __call__(self, inputs, batch_size: int | None = None, num_workers: int | None = None, **kwargs):
        if batch_size is not None and (not is_int(batch_size) or batch_size < 1):
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if num_workers is not None and (not is_int(num_workers) or num_workers < 0):
            raise ValueError(f"num_workers must be a non-negative integer, got {num_workers!r}")
        known = [name for name in inspect.signature(self._sanitize_parameters).parameters if name != "kwargs"]
        if unknown := sorted(set(kwargs) - set(known)):
            raise ValueError(
                f"{type(self).__name__} takes {', '.join(known)} (and batch_size, num_workers), not "
                f"{', '.join(unknown)}"
            )
        size = batch_size or self._batch_size or 8
        workers = num_workers if num_workers is not None else self._num_workers or 0
        preprocess_params, forward_params, postprocess_params = self._sanitize_parameters(**kwargs)
        params = (
            {**self._preprocess_params, **preprocess_params},
            {**self._forward_params, **forward_params},
            {**self._postprocess_params, **postprocess_params},
        )
        if isinstance(inputs, (str, int)):  # one text, or one entity
            return next(self._results([inputs], size, 0, params))
        if isinstance(inputs, (list, tuple)):
            return list(self._results(inputs, size, workers, params))
        if not hasattr(inputs, "__iter__") and not hasattr(inputs, "__getitem__"):
            raise ValueError(f"{type(self).__name__} takes one input, a list, or an iterable of them, got {inputs!r}")
        return self._results(inputs, size, workers, params)  # a generator, a KeyDataset: results as they come

    def _results(self, inputs, size: int, workers: int, params):
        """Each input's result, in order: `size` inputs at a time preprocessed (in `workers` DataLoader processes
        where that is above 0, as transformers' pipelines do), then run through the model and postprocessed here."""
        preprocess_params, forward_params, postprocess_params = params
        if workers > 1 and not _indexable(inputs):  # each worker would replay the whole stream
            logger.warning(f"an iterable without len() is read by one worker, not {workers}")
            workers = 1
        # several workers share the chunks out by index; one worker, or none, reads them in order
        chunks = _Chunks(inputs, size) if workers > 1 else _Stream(inputs, size)
        if workers == 0:
            batches = (self.preprocess(chunk, **preprocess_params) for chunk in chunks)
        else:
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # the workers are the parallelism
            batches = DataLoader(
                chunks, batch_size=None, num_workers=workers, collate_fn=partial(self.preprocess, **preprocess_params)
            )
        for model_inputs in batches:
            yield from self.postprocess(self.forward(model_inputs, **forward_params), **postprocess_params)


def _indexable(inputs) -> bool:
    """A dataset-like input (a `KeyDataset`, a `datasets.Dataset` column): `len()` and integer indexing."""
    return hasattr(inputs, "__len__") and hasattr(inputs, "__getitem__")


class _Chunks(torch.utils.data.Dataset):
    """An indexable input in consecutive chunks of `size`: chunk i is inputs[i * size : (i + 1) * size]."""

    def __init__(self, inputs, size: int):
        self.inputs, self.size = inputs, size

    def __len__(self):
        return -(-len(self.inputs) // self.size)

    def __getitem__(self, index):
        end = min(len(self.inputs), (index + 1) * self.size)
        return [self.inputs[i] for i in range(index * self.size, end)]


class _Stream(torch.utils.data.IterableDataset):
    """Any iterable input (a list, a generator) in consecutive chunks of `size`, read in order."""

    def __init__(self, inputs, size: int):
        self.inputs, self.size = inputs, size

    def __iter__(self):
        chunk = []
        for item in self.inputs:
            chunk.append(item)
            if len(chunk) == self.size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk


class EntityLinkingPipeline(_BatchedPipeline):
    """`pipeline("entity-linking", model=..., trust_remote_code=True)(text, top_k=5)` -> for each mention found, a
    dict with `word` (the mention's text), `start`, `end` (characters, as token classification gives them) and
    `entities`: up to `top_k` `{"id", "key", "name", "score", "logit"}`, best first; `score` is the candidate's
    probability among the mention's candidates (softmax of the masked-entity head's `logit`s). The model is a
    `JaketForPreTraining`."""

    def _check_parts(self) -> None:
        super()._check_parts()
        if self.processor.graph.entity_names is None:
            raise ValueError(f"{self._where}: the graph has no entity_names, so no mention can be found")

    def _sanitize_parameters(self, top_k=None, **kwargs):
        return {}, {}, postprocess_parameters(top_k)

    def preprocess(self, texts):
        texts = check_texts(texts)  # before the mention finder reads them
        return {**mention_inputs(self.processor, texts), "texts": texts}

    def _forward(self, inputs):
        scores = rank_mentions(self.model, self.processor.memory, inputs)
        return {"scores": scores, "mentions": inputs["mentions"], "texts": inputs["texts"]}

    def postprocess(self, outputs, top_k: int = 5):
        graph = self.processor.graph
        results = []
        for text, mentions, scores in zip(outputs["texts"], outputs["mentions"], outputs["scores"]):
            linked = []
            for (start, end, candidates), mention_scores in zip(mentions, scores):
                order = torch.argsort(mention_scores, descending=True, stable=True)[:top_k].tolist()
                probabilities = mention_scores.float().softmax(-1)  # among this mention's candidates
                entities = [
                    {
                        "id": candidates[i],
                        "key": graph.entity_ids[candidates[i]] if graph.entity_ids else None,
                        "name": graph.entity_names[candidates[i]],
                        "score": float(probabilities[i]),
                        "logit": float(mention_scores[i]),
                    }
                    for i in order
                ]
                linked.append({"word": text[start:end], "start": start, "end": end, "entities": entities})
            results.append(linked)
        return results


class EntityClassificationPipeline(_BatchedPipeline):
    """`pipeline("entity-classification", model=..., trust_remote_code=True)(entity, top_k=3)` -> up to `top_k`
    `{"label", "score", "logit"}` (`score`: the softmax of the logits), best first, for an entity of the processor's
    graph (an id, a key of `graph.entity_ids`, or a name or alias of one entity). A pre-trained model answers with
    its category head (labels: the graph's `category_names`); a `JaketForEntityClassification` with its classifier
    (labels: `config.id2label`). Each entity is classified in a subgraph sampled around it alone, so that its answer
    is the same in any batch.

    An entity of another graph: pass `graph=` (a `KnowledgeGraph` with descriptions) to the call; its initial
    embeddings are then encoded by LM1 from the descriptions, as for an unseen KG in fine-tuning."""

    def _check_parts(self) -> None:
        super()._check_parts()
        if hasattr(self.model, "entity_category_head"):  # its classes are the pre-training graph's categories
            names, count = self.processor.graph.category_names, self.model.config.num_entity_categories
            if names is None or len(names) != count:
                raise ValueError(
                    f"{self._where}: the category head has {count} classes but the graph "
                    f"{'no' if names is None else len(names)} category_names"
                )

    def _sanitize_parameters(self, top_k=None, graph=None, **kwargs):
        # duck-typed: the remote code's KnowledgeGraph and the package's are different classes
        if graph is not None and not all(hasattr(graph, a) for a in ("num_entities", "entity_descriptions")):
            raise ValueError(f"graph must be a KnowledgeGraph with entity descriptions, got {type(graph).__name__}")
        parts = ("entity_names", "entity_descriptions", "relation_names", "relation_descriptions")
        if graph is not None and (missing := [part for part in parts if getattr(graph, part, None) is None]):
            raise ValueError(f"graph has no {', '.join(missing)}: its memory is encoded from names and descriptions")
        if graph is not None:
            self._processor_for(graph)  # its memory encoded here, once, not again in each DataLoader worker
        preprocess = {"graph": graph} if graph is not None else {}
        return preprocess, {}, postprocess_parameters(top_k)

    def preprocess(self, entities, graph=None):
        processor = self.processor if graph is None else self._processor_for(graph)
        ids = [processor.entity_id(entity, 0, i) for i, entity in enumerate(entities)]
        # one subgraph an entity, sampled around it alone: its answer does not depend on the others in the batch
        return {"subgraphs": [processor.graph_inputs(torch.tensor([entity])) for entity in ids]}

    def _processor_for(self, graph):
        """A processor over `graph`, with its memory encoded by this model's LM1 (kept for the next call)."""
        cached = getattr(self, "_other_graph", None)
        if cached is None or cached[0] is not graph:
            tokenizer = self.processor.tokenizer
            memory = EntityContextMemory.from_descriptions(self.model, tokenizer, graph)
            settings = {"fanouts": self.processor.fanouts, "seed": self.processor.seed}
            processor = type(self.processor)(tokenizer, graph, memory, **settings)
            self._other_graph = cached = (graph, processor)
        return cached[1]

    def _forward(self, inputs):
        rows = []
        for subgraph in inputs["subgraphs"]:  # the entity is its subgraph's first (seed) row
            output = self.model(**subgraph)
            logits = getattr(output, "entity_category_logits", None)  # a pre-trained model's L_c head
            rows.append((output.logits if logits is None else logits)[0].float())
        return {"logits": torch.stack(rows)}

    def postprocess(self, outputs, top_k: int = 1):
        if hasattr(self.model, "entity_category_head"):
            names = self.processor.graph.category_names  # the pre-training graph's: the head's classes
        else:
            names = [self.model.config.id2label[i] for i in range(len(self.model.config.id2label))]
        results = []
        for logits in outputs["logits"]:
            scores, order = logits.softmax(-1).topk(min(top_k, logits.numel()))
            results.append(
                [
                    {"label": names[i], "score": float(score), "logit": float(logits[i])}
                    for i, score in zip(order.tolist(), scores.tolist())
                ]
            )
        return results
