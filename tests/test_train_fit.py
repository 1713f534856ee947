"""``mmspec-train fit``: the trainer feeds exactly what inference feeds, its unrolled EAGLE-3 pass
equals step-by-step decoding, exports load back, and a killed run resumes identically."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest
import torch
from _models import tiny_adapter
from _train_data import write_prompts
from transformers import DynamicCache

from mmspec.contract import DecodeContext, PromptInputs, RoundResult
from mmspec.methods import get_spec
from mmspec.train.data import Conversation, read_conversations
from mmspec.train.examples import conversation_examples
from mmspec.train.features import target_pass
from mmspec.train.fit import FitConfig, TrainingInterrupted, build_drafter, fit
from mmspec.train.recipes import _features, _pair_forward, recipe_for, ttt_passes
from mmspec.train.regen import RegenSettings, regenerate
from mmspec.tree import DraftTree

# transformers computes RMSNorm in float32 even for float64 models: equal to ~1e-8, a wrong row is O(1) off
TOL = {"atol": 1e-6, "rtol": 1e-5}


@cache
def regen_data(model: str, folder: str) -> Path:
    """A few prompts (multi-turn, image, text-only) answered by the tiny target itself."""
    out = Path(folder)
    prompts = write_prompts(out)
    adapter = tiny_adapter(model)
    regenerate(
        adapter,
        read_conversations(prompts),
        out / "answers.jsonl",
        RegenSettings(max_new_tokens=12),
        model=model,
    )
    return out / "answers.jsonl"


@pytest.fixture(scope="module")
def qwen_data(tmp_path_factory) -> Path:
    return regen_data("tiny-qwen25vl", str(tmp_path_factory.mktemp("qwen_regen")))


@pytest.fixture(scope="module")
def llava_data(tmp_path_factory) -> Path:
    return regen_data("tiny-llava15", str(tmp_path_factory.mktemp("llava_regen")))


def teacher_forced_outputs(adapter, drafter, example) -> dict[int, torch.Tensor]:
    """Inference, fed the answer token by token: the draft's output at every position it writes
    (the prompt pass, then each appended pair), keyed by position."""
    ids = example.prompt.ids
    prompt_len = example.prompt_len
    prompt = PromptInputs(example.prompt.input_ids[:, :prompt_len],
                          {k: (v[:, :prompt_len] if torch.is_tensor(v) and v.dim() == 2 and v.shape[1] == len(ids) else v)
                           for k, v in example.prompt.model_inputs.items()}, "")  # fmt: skip
    adapter.reserve(len(ids) + 64)
    pre = adapter.prefill(prompt, drafter.capture_prefill)
    ctx = DecodeContext(tokens=[*ids[:prompt_len], ids[prompt_len]], prompt_len=prompt_len,
                        image_spans=adapter.image_spans(ids), image_token_ids=adapter.image_token_ids,
                        stop_token_ids=adapter.stop_token_ids, temperature=0.0, max_new_tokens=len(ids),
                        prompt_embeds=pre.inputs_embeds)  # fmt: skip
    drafter.begin(ctx, pre)
    outputs = {prompt_len - 1: drafter.runner.last[0].clone()}
    for pos in range(prompt_len, len(ids) - 1):
        tree = DraftTree.root_only(ids[pos])
        verify = adapter.forward_tree(tree, drafter.capture_verify)
        adapter.commit(1, [0])
        ctx.tokens.append(ids[pos + 1])
        drafter.observe(ctx, RoundResult(tree=tree, path=[0], bonus=ids[pos + 1], verify=verify))
        outputs[pos] = drafter.runner.last[0].clone()
    return outputs


@pytest.mark.parametrize(("model", "method"), [("tiny-qwen25vl", "eagle2"), ("tiny-qwen25vl", "msd"),
                                               ("tiny-qwen25vl", "vispec"), ("tiny-llava15", "eagle3"),
                                               ("tiny-llava15", "msd"), ("tiny-llava15", "vispec")])  # fmt: skip
def test_training_rows_are_the_inference_rows(model, method, qwen_data, llava_data):
    """The trainer's one causal pass over a regenerated conversation gives, at every position, the
    draft output inference computes when the same tokens are committed one by one."""
    adapter = tiny_adapter(model)
    data = qwen_data if model == "tiny-qwen25vl" else llava_data
    conv = next(c for c in read_conversations(data) if c.images)
    example = conversation_examples(adapter, conv)[0]
    drafter = get_spec(method)(
        adapter, checkpoint="random", seed=5, **({"layers": "0:1:2"} if method == "eagle3" else {})
    )
    tp = target_pass(adapter, drafter.capture_prefill, example)
    with torch.no_grad():
        out, pos = _pair_forward(drafter, tp, _features(drafter, tp))
    inference = teacher_forced_outputs(adapter, drafter, example)
    by_pos = {int(p): out[r] for r, p in enumerate(pos)}
    assert set(inference) <= set(by_pos)
    for p, value in inference.items():
        torch.testing.assert_close(by_pos[p], value, **TOL)
    if method == "vispec":
        assert len(pos) < tp.length - 1  # image spans compressed, positions kept
    else:
        assert pos.tolist() == list(range(tp.length - 1))


def test_eagle3_unrolled_training_pass_equals_step_by_step_decoding(llava_data):
    """Training-time test step k at row t == the draft continuing a chain from row t for k steps,
    run one row at a time over a cache holding rows 0..t of the first pass (brute force)."""
    adapter = tiny_adapter("tiny-llava15")
    conv = next(c for c in read_conversations(llava_data) if c.images)
    example = conversation_examples(adapter, conv)[0]
    drafter = get_spec("eagle3")(adapter, checkpoint="random", seed=2, layers="0:1:2")
    net = drafter.net
    tp = target_pass(adapter, drafter.capture_prefill, example)
    steps = 3
    ids = tp.ids
    with torch.no_grad():
        (emb, hidden), pos = drafter.pair_inputs(tp.ctx, _features(drafter, tp))
        rows = pos.shape[0]
        unrolled = [out for _, out, _ in ttt_passes(drafter, tp, steps)]  # what eagle3_loss trains on
        # brute force for a few rows
        for t in (3, rows // 2, rows - steps - 1):
            cache = DynamicCache()
            out = net.run((emb[None, : t + 1], hidden[None, : t + 1]), pos[None, : t + 1], None, cache)[0]
            torch.testing.assert_close(out[t], unrolled[0][t], **TOL)
            prev = out[t : t + 1]
            for k in range(1, steps):
                tok = drafter.token_embeds(ids[t + 1 + k : t + 2 + k])
                prev = net.run((tok[None], prev[None]), torch.tensor([[t + k]]), None, cache)[0]
                torch.testing.assert_close(prev[0], unrolled[k][t], **TOL)


def test_vispec_stage_two_starts_exactly_at_the_stage_one_draft(tmp_path, llava_data):
    """Stage 1 trains the EAGLE part (adaptor and img_fc frozen at their init); stage 2 loads it: on
    a text-only sequence the stage-2 draft is the stage-1 draft, row for row."""
    adapter = tiny_adapter("tiny-llava15")
    stage1 = tmp_path / "s1"
    fit(
        FitConfig(spec="vispec", stage=1, data=str(llava_data), out=str(stage1), max_steps=2, lr=1e-2),
        adapter,
    )
    cfg = FitConfig(spec="vispec", stage=2, init=str(stage1), data=str(llava_data), out=str(tmp_path / "s2"))
    d2 = build_drafter(adapter, cfg, recipe_for("vispec", 2))
    d2.net.double()
    d1 = get_spec("vispec")(adapter, checkpoint=str(stage1))
    for key, value in d1.net.state_dict().items():
        torch.testing.assert_close(d2.net.state_dict()[key].to(value.dtype), value)
    text = next(c for c in read_conversations(llava_data) if not c.images)
    example = conversation_examples(adapter, text)[0]
    tp = target_pass(adapter, d1.capture_prefill, example)
    eagle = get_spec("eagle2")(adapter, checkpoint="random")  # an EAGLE draft with stage 1's weights
    eagle_sd = {k: v for k, v in d1.net.state_dict().items() if k in eagle.net.state_dict()}
    eagle.net = type(eagle.net)(d1.net.config).to(torch.float64)
    eagle.net.load_state_dict(eagle_sd)
    with torch.no_grad():
        a, _ = _pair_forward(d2, tp, _features(d2, tp))
        b, _ = _pair_forward(eagle, tp, _features(eagle, tp))
    torch.testing.assert_close(a.to(b.dtype), b, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("spec", ["eagle", "eagle3", "msd", "medusa"])
def test_export_loads_with_checkpoint_dir_and_decodes_losslessly(tmp_path, spec, qwen_data):
    adapter = tiny_adapter("tiny-qwen25vl")
    out = tmp_path / spec
    manifest = fit(FitConfig(spec=spec, data=str(qwen_data), out=str(out), max_steps=3, lr=1e-2,
                             checkpoint_every=2), adapter)  # fmt: skip
    assert manifest["steps"] == 3 and manifest["target"]["sha256"] and manifest["data"]["sha256"]
    assert (out / "config.json").is_file() and (out / "loss_curve.json").is_file()
    name = "eagle2" if spec == "eagle" else spec
    drafter = get_spec(name)(adapter, checkpoint=str(out))
    assert drafter.describe()["trained"] is True
    if spec == "eagle3":
        assert drafter.describe()["layers_source"] == "config.json eagle_aux_hidden_state_layer_ids"
    trained = build_drafter(adapter, FitConfig(spec=spec, data="", out="", init=str(out)), recipe_for(spec))
    for key, value in drafter.net.state_dict().items():
        torch.testing.assert_close(trained.net.state_dict()[key].to(value.dtype), value)
    from _models import prompt

    from mmspec.engine import Engine

    p = prompt(adapter)
    base = Engine(adapter, get_spec("baseline")(adapter)).generate(p, 16)
    assert Engine(adapter, drafter).generate(p, 16).token_ids == base.token_ids


def test_a_killed_fit_resumes_exactly(tmp_path, llava_data):
    adapter = tiny_adapter("tiny-llava15")
    common = {"spec": "eagle", "data": str(llava_data), "max_steps": 6, "checkpoint_every": 2, "lr": 1e-2}
    whole = fit(FitConfig(out=str(tmp_path / "whole"), **common), adapter)
    with pytest.raises(TrainingInterrupted):
        fit(FitConfig(out=str(tmp_path / "killed"), **common), adapter, interrupt_after=3)
    assert sorted(p.name for p in (tmp_path / "killed" / "checkpoints").iterdir()) == ["step_2.pt"]
    resumed = fit(FitConfig(out=str(tmp_path / "killed"), **common), adapter)
    assert resumed["steps"] == whole["steps"] == 6
    from safetensors.torch import load_file

    a = load_file(str(tmp_path / "whole" / "model.safetensors"))
    b = load_file(str(tmp_path / "killed" / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_medusa_heads_learn_the_token_two_plus_i_places_ahead():
    """Head i on the state at t is scored against token t + 2 + i (the target's own head covers t + 1)."""
    adapter = tiny_adapter("tiny-llava15")
    drafter = get_spec("medusa")(adapter, checkpoint="random", num_heads=2)
    ids = list(range(20, 40))
    conv = Conversation("m", ["hi"], answers=["x"], answer_ids=[ids])
    example = conversation_examples(adapter, conv)[0]
    tp = target_pass(adapter, drafter.capture_prefill, example)
    seen = []
    original = torch.nn.functional.cross_entropy

    def spy(logits, labels, reduction):
        seen.append(labels.clone())
        return original(logits, labels, reduction=reduction)

    torch.nn.functional.cross_entropy = spy
    try:
        recipe_for("medusa").loss(drafter, tp, None, recipe_for("medusa"))
    finally:
        torch.nn.functional.cross_entropy = original
    seq = tp.ids
    for i, labels in enumerate(seen):
        t = example.prompt_len  # the state at the first answer token's position
        assert int(labels[t]) == int(seq[t + 2 + i])


def test_a_time_budget_sets_the_schedule_and_the_msd_curriculum():
    """A time-budgeted fit (with a generous --max_steps) must still warm up, decay and reach MSD's
    image half: progress is the larger of the step share and the time share."""
    from mmspec.train.fit import _progress_share, _schedule

    by_steps = FitConfig(spec="msd", model="m", data="d", out="o", max_steps=100)
    assert _progress_share(25, by_steps, elapsed=1e9) == 0.25  # no budget: steps only
    budget = FitConfig(spec="msd", model="m", data="d", out="o", max_steps=4000, time_budget=20.0)
    assert _progress_share(10, budget, elapsed=15.0) == 0.75
    assert _progress_share(3999, budget, elapsed=1.0) == pytest.approx(3999 / 4000)
    assert _progress_share(10, budget, elapsed=99.0) == 1.0
    assert 0 < _schedule(0.0, 0.02) < 0.01 and _schedule(0.02, 0.02) == 1.0
    assert _schedule(0.51, 0.02) == pytest.approx(0.55) and _schedule(1.0, 0.02) == pytest.approx(0.1)
