"""What each training step reads and how its layers cache: the curriculum that gets a HAM model
to read its cache.

Trained under the routing mix from the start, a small English HAM shuts its attention gates long
before any lookup forms (the cache path adds noise until it can copy), and a shut gate starves
attention of gradient, so it never learns to. Measured fixes, in order (docs/TRAINING.md):

1. copy: until the copy probe passes (second reading of random tokens read twice, full cache,
   at most `copy_until` nats/token), a share `copy_rows` of each batch is random tokens read
   twice -- only a lookup can predict them -- and the rest is prose; every token is cached.
   Lookups form in a jump; a fixed step count is too short for some seeds and wasted on others.
2. full: `full_steps` more steps of prose with a full cache.
3. mix: the routing mix (ham_core.model.routes, by `route_by`), so one model serves every threshold; the
   lowest cache fraction drawn ramps from 1 down to 0 over `mix_ramp` steps, so the reads the
   model has learned are not cut off at once. Another architecture reads the same batches and
   routes its own way in this phase (a window model over its drawn windows, ramped alike).

In every phase a share `span_share` of prose windows holds a span of random tokens (16 to
`span_max`) read twice,
so copying keeps paying. Everything is a function of (seed, step) and of the step at which the
copy probe passed (saved with the run), so a resumed run sees exactly the batches it would have.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch

from ham_core.data.windows import repeat_spans
from ham_core.model.health import random_words
from ham_core.model.layer import Route
from ham_core.model.routes import check_route_rule, quantile_route, training_routes

COPY, FULL, MIX = "copy", "full", "mix"


class Curriculum:
    def __init__(self, settings, n_layers: int, vocab_size: int, seed: int, copy_passed_at: Optional[int] = None,
                 *, heads: str, architecture: str = "ham"):
        """settings: the run's TrainSettings (copy_until, copy_rows, copy_max_steps, full_steps,
        mix_ramp, span_share, policy_share); copy_passed_at: saved with the run, None if not yet;
        heads: the model's HAMConfig.head_rule; architecture: its HAMConfig.architecture."""
        check_route_rule(settings.route_by)          # fail at the start, not at the first mix step
        self.s = settings
        self.n_layers = n_layers
        self.vocab_size = vocab_size
        self.seed = seed
        self.heads = heads
        self.architecture = architecture
        # With no copy phase asked for, it "passed" before the first step.
        self.copy_passed_at = 0 if settings.copy_until <= 0 else copy_passed_at

    def phase(self, step: int) -> str:
        if self.copy_passed_at is None or step < self.copy_passed_at:
            return COPY
        return FULL if step < self.copy_passed_at + self.s.full_steps else MIX

    def passed(self, step: int, second_reading: float) -> bool:
        """Record a copy-probe result at `step`; True when this ends the copy phase."""
        if self.copy_passed_at is not None:
            return False
        if second_reading <= self.s.copy_until or step >= self.s.copy_max_steps:
            self.copy_passed_at = step
            return True
        return False

    def _gen(self, step: int, salt: int) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed * 1_000_003 + step * 7 + salt)

    def batch(self, step: int, prose: torch.Tensor) -> torch.Tensor:
        """The ids of this step from a batch of prose windows [B, T] -> [B, T]."""
        ids = repeat_spans(prose, self.s.span_share, self._gen(step, 1), max_span=self.s.span_max,
                           vocab_size=self.vocab_size)
        if self.phase(step) == COPY:
            B, T = ids.shape
            rows = int(round(self.s.copy_rows * B))
            first = random_words((rows, (T + 1) // 2), self.vocab_size, self._gen(step, 2))
            ids[:rows] = torch.cat([first, first], 1)[:, :T].to(ids.dtype)
        return ids

    def routes(self, step: int) -> Tuple[str, float, List[Route]]:
        """(policy name, cache fraction, one route per layer) for this step."""
        gen = torch.Generator().manual_seed(self.seed * 7 + step)
        if self.architecture in ("transformer", "gdn"):      # one way to read in every phase
            return training_routes(self.n_layers, gen, 0.0, self.seed + step, heads=self.heads,
                                   architecture=self.architecture)
        if self.phase(step) != MIX:
            return "full", 1.0, [quantile_route(1.0, self.heads)] * self.n_layers
        into_mix = step - self.copy_passed_at - self.s.full_steps
        lowest = max(0.0, 1.0 - into_mix / self.s.mix_ramp) if self.s.mix_ramp > 0 else 0.0
        return training_routes(self.n_layers, gen, self.s.policy_share, self.seed + step, lowest,
                               by=self.s.route_by, heads=self.heads, architecture=self.architecture)
