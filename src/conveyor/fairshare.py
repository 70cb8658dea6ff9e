"""Weighted fair queuing across a worker's queues: which queue's jobs a claim takes next.

Each queue has a share so far (`starts`); a job of rank r in its queue (in the queue's own
order: priority, then FIFO or LIFO) would bring the queue to `start + r / weight`, and a claim
takes the candidates with the smallest such shares. Carried across rounds, so rounds of one free
slot still alternate about WEIGHT to 1. A queue that had nothing to give is raised to the least
share of those that gave, so an idle queue builds no credit to starve the others with later.
"""

from __future__ import annotations

from collections.abc import Mapping


class FairShare:
    def __init__(self, weights: Mapping[str, int]) -> None:
        self.weights = dict(weights)
        self._start = dict.fromkeys(self.weights, 0.0)

    def starts(self) -> dict[str, float]:
        return dict(self._start)

    def claimed(self, counts: Mapping[str, int], asked: int) -> None:
        """A claim of up to `asked` jobs took `counts[queue]` of each queue."""
        total = sum(counts.get(queue, 0) for queue in self.weights)
        if total == 0:
            return  # nothing claimable (or all paused): nothing learned
        new = {queue: start + counts.get(queue, 0) / self.weights[queue]
               for queue, start in self._start.items()}
        busy = [queue for queue in self.weights if counts.get(queue, 0)]
        floor = min(new[queue] for queue in busy)
        reached = max(new[queue] for queue in busy)
        for queue, weight in self.weights.items():
            if counts.get(queue, 0):
                continue
            # Its first candidate would have come before a job that was taken (or the claim
            # was not full): it had none.
            if total < asked or self._start[queue] + 1 / weight < reached:
                new[queue] = max(new[queue], floor)
        base = min(new.values())  # rebased every claim, so the shares stay small
        self._start = {queue: share - base for queue, share in new.items()}
