"""What the whole KB says about its named facts (URLs, channels, teams, commands), to tell a contradiction from
a frame that is simply used with many values.

Two sections that link different pages, name different channels or teams are not contradicting each other when
the KB itself shows that the words around those facts go with many values ("please see [Zendesk
documentation](...)" links a different article on every page; "Slack channel: #spt_pod_X" names each pod's
own), or when some section states both values side by side (they are two things, not two versions of one).
Learned from the KB's own sections, no word lists. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sopilot.author.facts import Fact

# Facts that name something; numbers (durations, quantities) are compared by value and scale instead.
NAMED_KINDS = frozenset({"url", "channel", "team", "command"})


@dataclass(slots=True)
class FactStats:
    """Per named kind: which facts carry each context word, and in which sections each value is stated."""

    _by_word: dict[str, dict[str, set[int]]] = field(default_factory=dict)  # kind -> word -> fact numbers
    _by_label_word: dict[str, dict[str, set[int]]] = field(default_factory=dict)  # kind -> link-text word -> facts
    _values: dict[str, list[str]] = field(default_factory=dict)  # kind -> value of each fact number
    _sections: dict[tuple[str, str], set[int]] = field(default_factory=dict)  # (kind, value) -> section numbers

    @classmethod
    def of(cls, facts_per_section: Iterable[Sequence[Fact]]) -> FactStats:
        stats = cls()
        for section, facts in enumerate(facts_per_section):
            for fact in facts:
                if fact.kind not in NAMED_KINDS:
                    continue
                values = stats._values.setdefault(fact.kind, [])
                number = len(values)
                values.append(fact.value)
                words = stats._by_word.setdefault(fact.kind, {})
                for word in fact.context | fact.label:
                    words.setdefault(word, set()).add(number)
                labels = stats._by_label_word.setdefault(fact.kind, {})
                for word in fact.label:
                    labels.setdefault(word, set()).add(number)
                stats._sections.setdefault((fact.kind, fact.value), set()).add(section)
        return stats

    def values_in_frame(self, kind: str, words: frozenset[str]) -> int:
        """How many distinct values of ``kind`` the KB states with all of ``words`` around them."""
        return self._distinct(self._by_word.get(kind, {}), kind, words)

    def values_linked_as(self, words: frozenset[str]) -> int:
        """How many distinct URLs the KB links with link texts holding all of ``words`` ("Zendesk documentation"
        links dozens of articles: such a text does not say which page)."""
        return self._distinct(self._by_label_word.get("url", {}), "url", words)

    def _distinct(self, index: dict[str, set[int]], kind: str, words: frozenset[str]) -> int:
        if not words or any(w not in index for w in words):
            return 0
        sets = sorted((index[w] for w in words), key=len)
        facts = set(sets[0]).intersection(*sets[1:])
        values = self._values[kind]
        return len({values[n] for n in facts})

    def stated_together(self, kind: str, a: str, b: str) -> bool:
        """Some section states both values (so they are two things that coexist)."""
        return bool(self._sections.get((kind, a), set()) & self._sections.get((kind, b), set()))
