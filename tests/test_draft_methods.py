"""Draft-model methods: published checkpoint layouts load through ``checkpoint=``, corrupted keys
are named, drafting really happens, ViSkip's gate fires as configured, and its attention share
equals transformers' own eager attention."""

from __future__ import annotations

from functools import cache

import pytest
import torch
from _drafts import QUESTIONS, distilled_drafter
from _models import TINY_MODELS, model_args_for_tests, prompt, tiny_adapter
from _published import write_published
from safetensors.torch import save_file

from mmspec.engine import Engine
from mmspec.methods import get_spec
from mmspec.methods.baseline import Baseline
from mmspec.methods.checkpoints import CheckpointError

DRAFT_METHODS = ("eagle", "eagle2", "eagle3", "msd", "vispec", "medusa")


@pytest.mark.parametrize("method", DRAFT_METHODS)
def test_published_checkpoint_loads_and_bad_keys_are_named(tmp_path, method):
    adapter = tiny_adapter("tiny-qwen25vl")
    cls = get_spec(method)
    rand = cls(adapter, checkpoint="random", seed=3)
    saved = write_published(rand, tmp_path / "ok", method)
    layers = {"layers": "0:1:2"} if method == "eagle3" else {}  # a local draft says nothing of its layers
    loaded = cls(adapter, checkpoint=str(tmp_path / "ok"), **layers)
    assert loaded.describe()["trained"] is True
    got = loaded.net.state_dict()
    for key, value in saved.items():
        torch.testing.assert_close(got[key].float().cpu(), value)
    if method in ("eagle", "eagle2"):
        assert "embed_tokens.weight" in loaded.checkpoint_info["filled"]
        torch.testing.assert_close(got["embed_tokens.weight"], adapter.embed_tokens.weight)

    # corrupt one key: a different shape must fail loudly, naming the key
    bad = tmp_path / "bad"
    write_published(rand, bad, method)
    target = next(k for k in saved if k.endswith("mlp.down_proj.weight") or k.endswith("linear.weight"))
    files = sorted(bad.rglob("*.safetensors")) or sorted(bad.rglob("*.bin"))
    from safetensors.torch import load_file

    for f in files:
        data = load_file(str(f)) if f.suffix == ".safetensors" else torch.load(f, weights_only=True)
        for k in list(data):
            if k.endswith(target.split(".", 1)[-1]) or k == target:
                data[k] = torch.zeros(3, 3)
        save_file(data, str(f)) if f.suffix == ".safetensors" else torch.save(data, f)
    with pytest.raises(CheckpointError, match=target.split(".")[-2]):
        cls(adapter, checkpoint=str(bad), **layers)


def test_missing_checkpoint_is_a_clear_error():
    adapter = tiny_adapter("tiny-llava15")
    with pytest.raises(Exception, match="checkpoint=random"):
        get_spec("eagle2")(adapter)  # no published draft is known for a tiny model


@pytest.mark.parametrize("method", ["eagle", "eagle2", "eagle3", "msd", "vispec", "medusa"])
def test_drafts_are_proposed_and_verified(method):
    adapter = tiny_adapter("tiny-qwen25vl")
    drafter = get_spec(method)(adapter, checkpoint="random")
    p = prompt(adapter)
    base = Engine(adapter, Baseline(adapter)).generate(p, 24)
    res = Engine(adapter, drafter).generate(p, 24)
    assert res.token_ids == base.token_ids
    assert min(res.tree_size_per_round) > 1  # a tree every round
    assert res.draft_time_s > 0


@pytest.mark.slow
@pytest.mark.parametrize("method", DRAFT_METHODS)
def test_fitted_drafts_are_accepted(method):
    """A draft fitted through the full-sequence pass is accepted in incremental decoding: the tree,
    cache and position bookkeeping of propose/observe computes what that pass computes."""
    adapter = tiny_adapter("tiny-llava15")
    p = prompt(adapter, QUESTIONS[0], seed=0)
    base = Engine(adapter, Baseline(adapter)).generate(p, 48)
    res = Engine(adapter, distilled_drafter("tiny-llava15", method, steps=300)).generate(p, 48)
    assert res.token_ids == base.token_ids
    mat = res.new_tokens / res.target_forwards
    assert mat > (1.1 if method == "medusa" else 1.6), mat  # heads see no token embedding: weaker


@pytest.mark.parametrize("model", TINY_MODELS)
def test_visual_attention_share_equals_eager_attention(model):
    """ViSkip's one-row measurement == the last layer's attention probabilities from transformers."""
    adapter = tiny_adapter(model)
    adapter.enable_query_tap()
    p = prompt(adapter)
    adapter.prefill(p)
    spans = adapter.image_spans(p.ids)
    ours = adapter.visual_attention_mass(0, spans)
    from transformers import AutoModelForImageTextToText

    eager = AutoModelForImageTextToText.from_pretrained(
        adapter.pretrained, attn_implementation="eager", dtype=adapter.dtype
    ).to(adapter.device)
    with torch.no_grad():
        out = eager(input_ids=p.input_ids.to(adapter.device),
                    **{k: v.to(adapter.device) for k, v in p.model_inputs.items()}, output_attentions=True)  # fmt: skip
    probs = out.attentions[-1][0, :, -1].float()  # [heads, L]: the row that produced the first token
    image = torch.zeros(p.length, dtype=torch.bool)
    for a, b in spans:
        image[a:b] = True
    expected = float(probs[:, image.to(probs.device)].sum(-1).mean())
    assert 0 < expected < 1
    assert ours == pytest.approx(expected, rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("method", ["vispec_vskip", "msd_vskip", "sam_vskip"])
def test_viskip_gate_fires_and_outputs_stay_identical(method):
    adapter = tiny_adapter("tiny-llava16")
    p = prompt(adapter)
    base = Engine(adapter, Baseline(adapter)).generate(p, 20)
    extra = {} if method == "sam_vskip" else {"checkpoint": "random"}
    always = Engine(adapter, get_spec(method)(adapter, visual_attn_threshold=0.0, **extra)).generate(p, 20)
    never = Engine(adapter, get_spec(method)(adapter, visual_attn_threshold=1.01, **extra)).generate(p, 20)
    assert always.token_ids == never.token_ids == base.token_ids
    assert always.skipped_rounds == always.rounds > 0  # threshold 0: every round is a plain step
    assert set(always.tree_size_per_round) == {1}
    assert never.skipped_rounds == 0
    if method != "sam_vskip":  # SAM may find no suffix match in a round; the draft models always draft
        assert min(never.tree_size_per_round) > 1


@cache
def static_adapter(model: str):
    """The same tiny model in ``static`` execution: bucketed KV views and the graph-mode step code."""
    from mmspec.adapters import load_model

    return load_model(model, {**model_args_for_tests(), "execution": "static"})


@pytest.mark.parametrize("method", [*DRAFT_METHODS, "vispec_vskip"])
def test_static_steps_match_eager(method):
    """The step functions that graph mode captures (padded appends, bucketed views, device-side
    state) accept exactly what the eager path accepts, round by round."""
    eager = distilled_drafter("tiny-llava15", method, steps=300)
    adapter = static_adapter("tiny-llava15")
    drafter = get_spec(method)(adapter, checkpoint="random")
    inner, trained = getattr(drafter, "inner", drafter), getattr(eager, "inner", eager)
    inner.net.load_state_dict(trained.net.state_dict())
    steps = inner.runner.steps if hasattr(inner, "runner") else inner._steps
    assert steps is not None and steps.mode == "static"
    eager_adapter = tiny_adapter("tiny-llava15")
    p_eager = prompt(eager_adapter, QUESTIONS[0], seed=0)
    p_static = prompt(adapter, QUESTIONS[0], seed=0)
    ref = Engine(eager_adapter, eager).generate(p_eager, 48)
    got = Engine(adapter, drafter).generate(p_static, 48)
    assert got.token_ids == ref.token_ids
    assert got.accepted_per_round == ref.accepted_per_round
    assert sum(got.accepted_per_round) > (3 if method == "medusa" else 10)
    assert any(s.calls for s in steps.steps.values())
