"""An n-gram baseline over the same tokens: interpolated Witten–Bell smoothing.

It sees the training split (untransposed) and no controls; it is the bar the neural model has
to clear clearly on the held-out split.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict

from models.generator.vocab import TOKENS


class NGram:
    def __init__(self, order: int = 5) -> None:
        self.order = order
        self.counts: list[dict[tuple, Counter]] = [defaultdict(Counter) for _ in range(order)]
        self.V = len(TOKENS)

    def fit(self, sequences: list[list[int]]) -> NGram:
        for seq in sequences:
            for i in range(1, len(seq)):
                for k in range(self.order):
                    if i - k < 0:
                        break
                    self.counts[k][tuple(seq[i - k:i])][seq[i]] += 1
        self.totals = [{ctx: (sum(c.values()), len(c)) for ctx, c in level.items()}
                       for level in self.counts]
        return self

    def prob(self, history: tuple, token: int) -> float:
        p = 1.0 / self.V
        for k in range(self.order):
            if k > len(history):
                break
            ctx = tuple(history[len(history) - k:]) if k else ()
            c = self.counts[k].get(ctx)
            if not c:
                continue
            total, types = self.totals[k][ctx]
            lam = total / (total + types)
            p = lam * c[token] / total + (1 - lam) * p
        return p

    def nll(self, sequences: list[list[int]]) -> float:
        """Mean negative log-likelihood per predicted token, in nats."""
        total, n = 0.0, 0
        for seq in sequences:
            for i in range(1, len(seq)):
                hist = tuple(seq[max(0, i - self.order + 1):i])
                total -= math.log(self.prob(hist, seq[i]))
                n += 1
        return total / max(n, 1)
