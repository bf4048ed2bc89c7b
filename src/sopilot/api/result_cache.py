"""Search results a serving process keeps for the index generation it serves, by question, k, filters and day.

Within one generation a search is a function of its question, k, filters and the day (review dates), so a
question asked again is answered from here: the same result object, never a recomputed one that could differ.
A new generation empties the cache. Each search and answer is still logged, counted and drafted per request.
Results are shared between requests and must not be changed by their users (nothing in the API changes one).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import date
from typing import Any

from sopilot.retrieval.search import SearchResult

Key = tuple[str, int, str, str]


class ResultCache:
    """A least-recently-used map of search results for one generation at a time, holding at most ``size``
    passages in all (a result without passages counts as one), so memory is bounded whatever k callers ask:
    about 2 KB a passage on the shipped KB. ``size`` 0 keeps none."""

    def __init__(self, size: int, today: Callable[[], date] = date.today) -> None:
        self.size = size
        self._today = today
        self._generation: str | None = None
        self._results: OrderedDict[Key, SearchResult] = OrderedDict()
        self._held = 0  # passages of the results held
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def search(
        self,
        generation: str,
        run: Callable[[str, int, dict[str, Any]], SearchResult],
        query: str,
        k: int,
        filters: dict[str, Any],
    ) -> SearchResult:
        """``run(query, k, filters)``'s result, from the cache when this generation answered it today."""
        if self.size <= 0:
            return run(query, k, filters)
        key = (query, k, json.dumps(filters, sort_keys=True), self._today().isoformat())
        with self._lock:
            if generation != self._generation:
                self._results.clear()
                self._held = 0
                self._generation = generation
            result = self._results.get(key)
            if result is not None:
                self._results.move_to_end(key)
                self.hits += 1
                return result
            self.misses += 1
        result = run(query, k, filters)  # outside the lock: two threads may compute one new question at once
        with self._lock:
            if generation == self._generation and key not in self._results and _weight(result) <= self.size:
                self._results[key] = result
                self._held += _weight(result)
                while self._held > self.size:
                    self._held -= _weight(self._results.popitem(last=False)[1])
        return result


def _weight(result: SearchResult) -> int:
    return max(1, len(result.passages))
