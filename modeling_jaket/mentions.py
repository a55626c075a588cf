"""Mentions of a graph's entities in text, found by name: the graph's names and aliases, longest match first
(`MentionFinder`). The candidates it gives each mention are ranked by the model in `linking.py`."""

import re

from .graph import KnowledgeGraph

WORD = re.compile(r"\w+(?:['-]\w+)*")


class MentionFinder:
    """The mentions of a graph's entities in text: runs of words that are an entity's name or one of its aliases,
    compared case-insensitively word by word, the longest run first, left to right, without overlaps.

    Each mention comes with its candidates: the entities of that name first, then those of that alias, each group
    in id order (a graph that lists an entity's most frequent sense first, as WordNet does, ranks it first)."""

    def __init__(self, graph: KnowledgeGraph):
        if graph.entity_names is None:
            raise ValueError("MentionFinder needs a graph with entity_names")
        by_name, by_alias = {}, {}
        for entity, name in enumerate(graph.entity_names):
            by_name.setdefault(self.key(name), []).append(entity)
        for entity, aliases in enumerate(graph.entity_aliases or []):
            for alias in aliases:
                by_alias.setdefault(self.key(alias), []).append(entity)
        self.index = {}
        for key in (*by_name, *by_alias):
            if key and key not in self.index:
                named = by_name.get(key, [])
                self.index[key] = named + [e for e in dict.fromkeys(by_alias.get(key, [])) if e not in named]
        self.longest = max(map(len, self.index), default=0)

    @staticmethod
    def key(text: str) -> tuple[str, ...]:
        return tuple(word.lower() for word in WORD.findall(text))

    def candidates(self, surface: str) -> list[int]:
        """The entities named `surface` (by name or alias); [] for none."""
        return list(self.index.get(self.key(surface), []))

    def find(self, text: str) -> list[tuple[int, int, list[int]]]:
        """`(start_char, end_char, candidate entity ids)` of each mention in `text`, in text order."""
        words = list(WORD.finditer(text))
        keys = [word.group().lower() for word in words]
        mentions, i = [], 0
        while i < len(words):
            for n in range(min(self.longest, len(words) - i), 0, -1):
                candidates = self.index.get(tuple(keys[i : i + n]))
                if candidates:
                    mentions.append((words[i].start(), words[i + n - 1].end(), list(candidates)))
                    i += n
                    break
            else:
                i += 1
        return mentions
