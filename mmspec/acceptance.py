"""Which draft nodes the target accepts: greedy matching and lossless tree rejection sampling.

Both walks start at the root and descend while a child is accepted; they return the accepted path
(node indices, root first) and the *bonus* token the target emits after the last accepted node.

Sampling treats every draft token as a point-mass proposal (all our drafters are deterministic
given their inputs). At a node with target distribution ``p`` and children ``x1..xm`` the walk
accepts ``xi`` with probability ``p'(xi)`` where ``p'`` is ``p`` with the already-rejected siblings
removed and renormalised; when every child is rejected, the bonus is drawn from that residual.
This is recursive rejection sampling with point-mass proposals, so the emitted sequence is
distributed exactly as sampling from the target token by token.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from mmspec.tree import DraftTree


def greedy_walk(tree: DraftTree, target_argmax: Sequence[int]) -> tuple[list[int], int]:
    """Longest path whose tokens equal the target's argmax at their parent, plus the bonus."""
    children = tree.children()
    path, node = [0], 0
    while True:
        want = int(target_argmax[node])
        nxt = next((c for c in children[node] if tree.tokens[c] == want), None)
        if nxt is None:
            return path, want
        path.append(nxt)
        node = nxt


@dataclass
class SamplingInputs:
    """Host copies of what the sampling walk needs from one verification forward."""

    child_prob: list[float]  # p_target(token[c] | parent(c)) for every node c (0 for the root)
    residual: list[int]  # per node: a sample from p_target(.|node) without the node's children


def sampling_inputs(
    logits: torch.Tensor,
    tree: DraftTree,
    temperature: float,
    generator: torch.Generator | None,
) -> SamplingInputs:
    """Device-side preparation: one softmax, one gather, one Gumbel-max per node, one copy."""
    n = len(tree)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    device = logits.device
    tokens = torch.tensor(tree.tokens, dtype=torch.long, device=device)
    parents = torch.tensor(tree.parents, dtype=torch.long, device=device)
    child_prob = torch.zeros(n, dtype=torch.float32, device=device)
    if n > 1:
        child_prob[1:] = probs[parents[1:], tokens[1:]]
        probs = probs.index_put((parents[1:], tokens[1:]), torch.zeros(n - 1, device=device))
    residual = gumbel_argmax(probs, generator)
    packed = torch.cat([child_prob, residual.float()]).cpu()
    return SamplingInputs(packed[:n].tolist(), [int(x) for x in packed[n:].tolist()])


def gumbel_argmax(probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Sample one index per row of (unnormalised) ``probs`` with the Gumbel-max trick."""
    u = torch.rand(probs.shape, generator=generator, device=probs.device, dtype=torch.float32)
    gumbel = -torch.log(-torch.log(u.clamp_(min=1e-20, max=1.0 - 1e-7)))
    return (torch.log(probs) + gumbel).argmax(dim=-1)


def sampling_walk(tree: DraftTree, inputs: SamplingInputs, rng: random.Random) -> tuple[list[int], int]:
    """Lossless recursive rejection sampling over the tree (see module docstring)."""
    children = tree.children()
    path, node = [0], 0
    while True:
        mass_left = 1.0
        rejected: set[int] = set()
        accepted = None
        for c in children[node]:
            tok = tree.tokens[c]
            if tok in rejected:
                continue
            p = inputs.child_prob[c]
            if rng.random() * mass_left < p:
                accepted = c
                break
            mass_left -= p
            rejected.add(tok)
        if accepted is None:
            return path, inputs.residual[node]
        path.append(accepted)
        node = accepted


def sample_token(logits: torch.Tensor, temperature: float, generator: torch.Generator | None) -> int:
    """One token from softmax(logits / T) (T > 0) or the argmax (T == 0)."""
    if temperature <= 0:
        return int(logits.argmax(-1))
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    return int(gumbel_argmax(probs[None], generator)[0])
