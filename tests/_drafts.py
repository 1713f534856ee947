"""Draft networks fitted to a tiny target by self-distillation (seconds on a CPU).

A random draft proposes tokens the target almost never samples, so a temperature-1 test with it
would check nothing and greedy runs would never accept. These drafts are trained, through the
drafters' own prompt path (``prompt_inputs`` + one causal pass of the network), to match the
target's next-token distribution on the target's own samples. Acceptance during decoding then
also checks that the incremental tree/accept path computes what the training pass computed.
"""

from __future__ import annotations

from functools import cache

import torch
import torch.nn.functional as F
from _models import prompt, tiny_adapter

from mmspec.adapters.base import Capture, PromptInputs
from mmspec.engine import Engine
from mmspec.methods import get_spec
from mmspec.methods.base import DecodeContext
from mmspec.methods.baseline import Baseline
from mmspec.methods.feature_drafter import FeatureDrafter
from mmspec.methods.medusa import Medusa

QUESTIONS = ("Describe the picture.", "What colour is the square?", "Explain the chart in detail.",
             "What is shown here?", "Write a caption.", "Is there a circle?")  # fmt: skip


@cache
def _sequences(
    model: str, dtype: str, n_tokens: int = 48
) -> tuple[tuple[PromptInputs, tuple[int, ...]], ...]:
    """The target's own greedy and temperature-1 continuations of a few image prompts."""
    adapter = tiny_adapter(model, dtype)
    engine = Engine(adapter, Baseline(adapter))
    out = []
    for i, q in enumerate(QUESTIONS):
        p = prompt(adapter, q, seed=i)
        for temperature in (0.0, 1.0):
            res = engine.generate(p, n_tokens, temperature=temperature, seed=100 + i)
            ids = torch.tensor([[*p.ids, *res.token_ids]])
            out.append(
                (
                    PromptInputs(ids, _extend(p.model_inputs, p.length, ids.shape[1]), p.text),
                    tuple(res.token_ids),
                )
            )
    return tuple(out)


def _extend(inputs: dict, old: int, new: int) -> dict:
    """Per-token processor tensors (e.g. Qwen's ``mm_token_type_ids``) padded for appended text."""
    out = {}
    for key, value in inputs.items():
        if torch.is_tensor(value) and value.dim() == 2 and value.shape == (1, old):
            value = torch.cat([value, torch.zeros(1, new - old, dtype=value.dtype)], dim=1)
        out[key] = value
    return out


def _batches(adapter, capture: Capture, model: str, dtype: str):
    for seq, _ in _sequences(model, dtype):
        out = adapter.prefill(seq, Capture(hidden=capture.hidden, all_logits=True, embeds=True))
        yield seq, out


def _fit_feature_drafter(drafter: FeatureDrafter, model: str, dtype: str, steps: int) -> None:
    adapter, net = tiny_adapter(model, dtype), drafter.net
    data = []
    for seq, out in _batches(adapter, drafter.capture_prefill, model, dtype):
        ids = seq.ids
        n = len(ids)
        ctx = DecodeContext(
            tokens=ids, prompt_len=n - 1, image_spans=adapter.image_spans(ids), image_token_ids=adapter.image_token_ids,
            stop_token_ids=adapter.stop_token_ids, temperature=1.0, max_new_tokens=1,
            prompt_embeds=out.inputs_embeds[: n - 1],
        )  # fmt: skip
        feats = drafter.features({k: v[: n - 1] for k, v in out.hidden.items()})
        target = torch.softmax(out.logits[1:].float(), -1)  # pair t predicts the token after t + 1
        data.append((ctx, torch.tensor(ids[1:]), feats, target))
    params = [p for name, p in net.named_parameters() if not name.startswith("embed_tokens")]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=3e-3)
    for step in range(steps):
        ctx, ids, feats, target = data[step % len(data)]
        with torch.enable_grad():
            drafter._prompt_ids = ids
            x, pos = drafter.prompt_inputs(ctx, drafter.token_embeds(ids), feats)
            batched = tuple(t[None] for t in x) if isinstance(x, tuple) else x[None]
            hidden = net.run(batched, pos[None], None, None)[0]
            logits = net.logits(hidden) if hasattr(net, "logits") else adapter.lm_head(hidden)
            loss = F.kl_div(torch.log_softmax(logits.float(), -1), target[pos], reduction="batchmean")
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.requires_grad_(False)


def _fit_medusa(drafter: Medusa, model: str, dtype: str, steps: int) -> None:
    adapter, net = tiny_adapter(model, dtype), drafter.net
    final = adapter.num_layers
    data = [(out.hidden[final], torch.softmax(out.logits.float(), -1))
            for _, out in _batches(adapter, drafter.capture_prefill, model, dtype)]  # fmt: skip
    params = list(net.medusa_head.parameters())
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=1e-2)  # zero-initialised residual heads: a larger step
    heads = len(net.medusa_head)
    for step in range(steps):
        h, probs = data[step % len(data)]
        n = h.shape[0]
        with torch.enable_grad():
            out = net(h)  # head i at position t scores the token after t + 1 + i
            loss = sum(
                F.kl_div(torch.log_softmax(adapter.lm_head(out[i, : n - 1 - i]).float(), -1), probs[1 + i :],
                         reduction="batchmean")
                for i in range(heads)
            )  # fmt: skip
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.requires_grad_(False)


@cache
def distilled_drafter(model: str, spec: str, dtype: str = "float64", steps: int = 150, **spec_args):
    """``spec`` on ``tiny_adapter(model, dtype)`` with its draft fitted to the target (cached)."""
    adapter = tiny_adapter(model, dtype)
    drafter = get_spec(spec)(adapter, checkpoint="random", **spec_args)
    inner = getattr(drafter, "inner", drafter)
    if isinstance(inner, Medusa):
        _fit_medusa(inner, model, dtype, steps)
    else:
        _fit_feature_drafter(inner, model, dtype, steps)
    return drafter
