"""Entity classification on an unseen knowledge graph (the paper's §4.4): the held-out part of WordNet (see
`wordnet_semcor`; same `heldout_fraction` and `split_seed`), each synset labelled with its lexicographer category.

Semi-supervised and transductive: the held-out synsets are split 20/20/60 into train/validation/test (seeded), and
the `fraction-100`, `fraction-20` and `fraction-5` configs keep that share of the training split. The graph itself
(`load("wordnet_semcor", ...)["triples"]` between held-out synsets) is always whole.
"""

import random
from dataclasses import dataclass

import datasets

from .common import SourceConfig, entity_features
from .metadata import JAKET_CITATION, WORDNET_CITATION, WORDNET_LICENSE
from .wordnet import find_wordnet, read_lexnames, read_wordnet, split_heldout

SPLIT_SHARES = {"train": 0.2, "validation": 0.2, "test": 0.6}


@dataclass
class EntityClassificationConfig(SourceConfig):
    fraction: float = 1.0
    heldout_fraction: float = 0.1
    split_seed: int = 0
    seed: int = 0


BUILDER_VERSION = datasets.Version("1.0.0")


class EntityClassification(datasets.GeneratorBasedBuilder):
    """Held-out WordNet 3.0 synsets (https://wordnetcode.princeton.edu/3.0/WNdb-3.0.tar.gz) and their categories."""

    VERSION = BUILDER_VERSION
    BUILDER_CONFIG_CLASS = EntityClassificationConfig
    BUILDER_CONFIGS = [
        EntityClassificationConfig(name=f"fraction-{percent}", version=BUILDER_VERSION, fraction=percent / 100)
        for percent in (100, 20, 5)
    ]
    DEFAULT_CONFIG_NAME = "fraction-100"

    def _info(self):
        if not 0.0 < self.config.fraction <= 1.0:
            raise ValueError(f"entity_classification: fraction must be in (0, 1], got {self.config.fraction}")
        categories = read_lexnames(find_wordnet(self.config.data_dir))
        return datasets.DatasetInfo(
            description=__doc__,
            features=entity_features(categories),
            citation=JAKET_CITATION + "\n" + WORDNET_CITATION,
            license=WORDNET_LICENSE,
            homepage="https://wordnet.princeton.edu",
        )

    def _split_generators(self, dl_manager):
        wordnet = read_wordnet(find_wordnet(self.config.data_dir))
        heldout = split_heldout(wordnet, self.config.heldout_fraction, self.config.split_seed)
        members = [i for i, held in enumerate(heldout) if held]
        random.Random(self.config.seed).shuffle(members)
        bounds, start = {}, 0
        for name, share in SPLIT_SHARES.items():
            end = len(members) if name == "test" else start + round(share * len(members))
            bounds[name] = members[start:end]
            start = end
        bounds["train"] = bounds["train"][: max(1, round(self.config.fraction * len(bounds["train"])))]
        return [
            datasets.SplitGenerator(name=name, gen_kwargs={"wordnet": wordnet, "indices": sorted(indices)})
            for name, indices in bounds.items()
        ]

    def _generate_examples(self, wordnet, indices):
        for i in indices:
            synset = wordnet.synsets[i]
            yield (
                i,
                {
                    "id": synset.id,
                    "name": synset.name,
                    "description": synset.description,
                    "category": synset.category,
                    "part": "heldout",
                    "aliases": synset.lemmas[1:],
                },
            )
