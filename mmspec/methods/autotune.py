"""``total_token=-1``: pick the draft tree size by timing the target, as EAGLE's reference code does.

MMSpec ran MSD on LLaVA this way. The choice depends on the machine (it times real forwards), so
it is made once when the drafter is built, before anything is timed, and recorded in the results.
"""

from __future__ import annotations

from mmspec.target import TargetView

#: the tree sizes the reference tries, and the acceptance gain it credits each with
CANDIDATES = (40, 48, 50, 56, 60)
GAINS = (1.0, 1.05, 1.07, 1.1, 1.13)


def autotune_total_tokens(target: TargetView, repeats: int = 20) -> int:
    """The candidate ``n`` with the least (time of ``repeats`` target forwards of ``n`` random
    tokens) / gain."""
    costs = [target.verify_seconds(n, repeats) / gain for n, gain in zip(CANDIDATES, GAINS)]
    return CANDIDATES[costs.index(min(costs))]
