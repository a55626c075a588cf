"""A fine-tuning batch of text with mentions and the subgraph around the mentioned entities."""

from dataclasses import dataclass

import torch

from modeling_jaket import KnowledgeGraph
from modeling_jaket.graph import DEFAULT_FANOUTS
from tokenization import DataCollatorWithMentions


@dataclass
class DataCollatorWithSubgraph:
    """Pads a batch of texts with mentions and adds the sampled neighbourhood of their mentioned entities (of entity
    0 where none is mentioned: the knowledge module then has a graph to run on). With `hide_pair_edges`, the edges
    between two entities of one example are left out: in FewRel's pairs they would state the very relation the
    pair is about."""

    pad_token_id: int
    graph: KnowledgeGraph
    fanouts: tuple = DEFAULT_FANOUTS
    seed: int = 0
    hide_pair_edges: bool = False

    def __post_init__(self):
        self.generator = torch.Generator().manual_seed(self.seed)

    def __call__(self, features):
        batch = DataCollatorWithMentions(self.pad_token_id)(features)
        ids = batch["mention_entity_ids"]
        mentioned = ids[ids >= 0].unique()
        subgraph = self.graph.sample_subgraph(
            mentioned if mentioned.numel() else torch.zeros(1, dtype=torch.long), self.fanouts, self.generator
        )
        visible = torch.ones(subgraph.edge_type.numel(), dtype=torch.bool)
        if self.hide_pair_edges:
            count = self.graph.num_entities
            held = torch.cat(
                [(row[row >= 0].unsqueeze(1) * count + row[row >= 0].unsqueeze(0)).reshape(-1) for row in ids]
            )
            ends = subgraph.entity_ids[subgraph.edge_index]
            visible = ~torch.isin(ends[0] * count + ends[1], held)
        return {**batch, **subgraph.inputs(visible)}
