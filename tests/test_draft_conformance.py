"""The conventions that make our drafters compute what the reference inference code computes.

Each test pins one convention with a small explicit case (issue: published drafts must compute
what their reference code computes). The numerical comparison against the reference modules
themselves is held out of the project; these tests keep each convention from drifting.
"""

from __future__ import annotations

import math

import pytest
import torch
from _models import prompt, tiny_adapter
from _published import draft_net, write_published

from mmspec.engine import Engine
from mmspec.methods import get_spec
from mmspec.methods.base import DecodeContext, RoundResult, SpecArgError
from mmspec.methods.checkpoints import published_id
from mmspec.methods.draft_configs import published_config
from mmspec.methods.draft_tree import eagle2_threshold_cut
from mmspec.methods.expansion import DynamicExpansion, StaticExpansion
from mmspec.tree import DraftTree

FAMILIES = {"qwen25vl": "tiny-qwen25vl", "llava15": "tiny-llava15"}


def _ctx(adapter, tokens: list[int], prompt_len: int) -> DecodeContext:
    return DecodeContext(
        tokens=tokens, prompt_len=prompt_len, image_spans=adapter.image_spans(tokens),
        image_token_ids=adapter.image_token_ids, stop_token_ids=adapter.stop_token_ids,
        temperature=0.0, max_new_tokens=8,
    )  # fmt: skip


# ------------------------------------------------------------------------------------ EAGLE-3
@pytest.mark.parametrize("model", ["tiny-qwen25vl", "tiny-llava15"])
def test_eagle3_image_rows_zero_feature_at_token_t_pad_embedding_at_token_t_plus_1(model):
    """Prompt [a, IMG, IMG, b] + first token c: pair row t reads (token t+1, feature t). The reference
    zeroes the feature where token t is an image token (rows 1, 2) and embeds the target tokenizer's
    pad token where token t+1 is one (rows 0, 1)."""
    adapter = tiny_adapter(model, "float32")
    drafter = get_spec("eagle3")(adapter, checkpoint="random")
    img = min(adapter.image_token_ids)
    tokens = [5, img, img, 6, 7]
    ctx = _ctx(adapter, tokens, prompt_len=4)
    ids = torch.tensor(tokens[1:])
    drafter._prompt_ids = ids
    feats = torch.randn(4, drafter.feature_width())
    embeds = drafter.token_embeds(ids)
    (emb_in, hid_in), positions = drafter.prompt_inputs(ctx, embeds, feats)
    pad = draft_net(drafter).embed_tokens.weight[adapter.tokenizer.pad_token_id]
    assert (
        drafter.pad_id() == adapter.tokenizer.pad_token_id
    )  # the target tokenizer's, not the draft config's
    for row in (0, 1):
        torch.testing.assert_close(emb_in[row], pad)
    for row in (2, 3):
        torch.testing.assert_close(emb_in[row], embeds[row])
    project = draft_net(drafter).project
    zero = project(torch.zeros(1, drafter.feature_width()))[0]
    for row in (1, 2):
        torch.testing.assert_close(hid_in[row], zero)
    for row in (0, 3):
        torch.testing.assert_close(hid_in[row], project(feats[row : row + 1])[0])
    assert positions.tolist() == [0, 1, 2, 3]


def test_eagle3_pad_id_on_llava_is_the_tokenizer_pad_not_the_draft_config_pad():
    adapter = tiny_adapter("tiny-llava15", "float32")
    drafter = get_spec("eagle3")(adapter, checkpoint="random")
    assert draft_net(drafter).config.pad_token_id == 0  # MMSpec's LLaVA EAGLE-3 config says 0
    assert drafter.pad_id() == adapter.tokenizer.convert_tokens_to_ids("<pad>") != 0


def test_eagle3_d2t_is_skipped_when_the_draft_vocabulary_is_the_target_vocabulary():
    adapter = tiny_adapter("tiny-llava15", "float32")
    net = draft_net(get_spec("eagle3")(adapter, checkpoint="random"))
    assert net.shared_vocab
    net.d2t.fill_(5)  # whatever the buffer holds, the reference ignores it for a shared vocabulary
    ids = torch.tensor([0, 3, 9])
    assert net.to_target_ids(ids).tolist() == [0, 3, 9]
    net.shared_vocab = False
    assert net.to_target_ids(ids).tolist() == [5, 8, 14]


@pytest.mark.parametrize(
    ("source", "folder"),
    [
        ("Cloudriver/EAGLE3-LLaVA1.5-7B", None),
        ("/models/EAGLE3-LLaVA1.5-7B/", "/models/EAGLE3-LLaVA1.5-7B"),
        ("~/hf/hub/models--Cloudriver--EAGLE3-LLaVA1.5-7B/snapshots/0123abcd",
         "/root/hf/hub/models--Cloudriver--EAGLE3-LLaVA1.5-7B/snapshots/0123abcd"),
        ("./draft", "/data/models--Cloudriver--EAGLE3-Qwen2.5-VL-7B-Instruct/snapshots/ff00"),
    ],
)  # fmt: skip
def test_published_drafts_are_recognised_by_hub_id_folder_name_or_hf_cache_path(source, folder):
    assert published_id(source, folder) in {
        "Cloudriver/EAGLE3-LLaVA1.5-7B",
        "Cloudriver/EAGLE3-Qwen2.5-VL-7B-Instruct",
    }


def test_unknown_folders_are_not_recognised():
    assert published_id("/models/my-eagle3", "/models/my-eagle3") is None
    assert published_id("/models/Cloudriver-EAGLE3-copy", None) is None


def test_eagle3_layers_auto_travels_with_the_files(tmp_path):
    """`layers=auto` decides from the files (config, published name), never from the path's spelling."""
    adapter = tiny_adapter("tiny-llava15", "float32")
    cls = get_spec("eagle3")
    rand = cls(adapter, checkpoint="random", seed=1)
    assert rand.describe()["feature_layers"] == [1, 2]  # EAGLE-3's 2, L/2, L-3 for L = 4
    assert rand.layer_order == (2, 2, 1)
    assert "untrained" in rand.describe()["layers_source"]

    published = tmp_path / "EAGLE3-LLaVA1.5-7B"  # the released draft in a local folder
    write_published(rand, published, "eagle3")
    d = cls(adapter, checkpoint=str(published))
    assert d.layer_order == (0, 1, 2)
    assert d.describe()["layers_source"] == "published draft Cloudriver/EAGLE3-LLaVA1.5-7B"

    cache = tmp_path / "hub" / "models--Cloudriver--EAGLE3-LLaVA1.5-7B" / "snapshots" / "abc"
    write_published(rand, cache, "eagle3")
    assert cls(adapter, checkpoint=str(cache)).layer_order == (0, 1, 2)

    plain = tmp_path / "my-draft"
    write_published(rand, plain, "eagle3")
    with pytest.raises(SpecArgError, match=r"layers=0:1:2 .*layers=2:2:1"):
        cls(adapter, checkpoint=str(plain))
    assert cls(adapter, checkpoint=str(plain), layers="1:2:3").layer_order == (1, 2, 3)

    pad = adapter.tokenizer.pad_token_id
    own = tmp_path / "own"
    cfg = {
        **published_config("eagle3", "llava15", adapter.text_config, pad),
        "eagle_aux_hidden_state_layer_ids": [1, 2, 4],
    }
    write_published(rand, own, "eagle3", config=cfg)
    d = cls(adapter, checkpoint=str(own))
    assert d.layer_order == (1, 2, 4)
    assert d.describe()["layers_source"] == "config.json eagle_aux_hidden_state_layer_ids"


# ---------------------------------------------------------------------------------------- MSD
def test_msd_qwen2_vl_config_without_qkv_bias_gives_biased_draft(tmp_path):
    """MMSpec's MSD trainer copies a Qwen2-VL config (model_type qwen2_vl, no qkv_bias key) next to
    weights whose layer has q/k/v biases: it must load, biases included."""
    adapter = tiny_adapter("tiny-qwen25vl", "float32")
    cfg = published_config("msd", "qwen25vl", adapter.text_config)
    assert cfg["model_type"] == "qwen2_vl" and "qkv_bias" not in cfg
    rand = get_spec("msd")(adapter, checkpoint="random", seed=2)
    net = draft_net(rand)
    assert net.layers[0].self_attn.q_proj.bias is not None and net.layers[0].self_attn.o_proj.bias is None
    saved = write_published(rand, tmp_path / "msd", "msd")
    assert {
        "layers.0.self_attn.q_proj.bias",
        "layers.0.self_attn.k_proj.bias",
        "layers.0.input_layernorm.weight",
    } <= set(saved)
    loaded = draft_net(get_spec("msd")(adapter, checkpoint=str(tmp_path / "msd")))
    torch.testing.assert_close(loaded.layers[0].self_attn.k_proj.bias, net.layers[0].self_attn.k_proj.bias)


# --------------------------------------------------------------- published-style configs load
@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("method", ["eagle", "eagle3", "msd", "vispec", "medusa"])
def test_published_style_config_loads_for_every_method(tmp_path, family, method):
    adapter = tiny_adapter(FAMILIES[family], "float32")
    pad = adapter.tokenizer.pad_token_id
    cfg = published_config(method, family, adapter.text_config, pad)
    assert cfg["num_hidden_layers"] == 1 and cfg["hidden_size"] == adapter.hidden_size
    extra = {"layers": "0:1:2"} if method == "eagle3" else {}
    rand = get_spec(method)(adapter, checkpoint="random", seed=4, **extra)
    saved = write_published(rand, tmp_path / method, method, config=cfg)
    loaded = get_spec(method)(adapter, checkpoint=str(tmp_path / method), **extra)
    got = draft_net(loaded).state_dict()
    for key, value in saved.items():
        torch.testing.assert_close(got[key].float(), value)


# ------------------------------------------------------------------------------------ EAGLE-2
def test_eagle2_threshold_keeps_candidates_strictly_above_it_and_stops_expanding_early():
    k = 2
    t = math.log(0.3)
    level1 = [math.log(0.5), math.log(0.3)]  # exactly at the threshold: not "above"
    level2 = [math.log(0.2), math.log(0.1), math.log(0.1), math.log(0.05)]  # best < threshold: stop here
    level3 = [math.log(0.15)] * 4  # never expanded by the reference
    scores = level1 + level2 + level3
    n, budget = eagle2_threshold_cut(scores, k, 0.3, budget=29)
    assert n == 6  # levels 1 and 2 exist, level 3 does not
    assert budget == max(sum(x > t for x in scores[:n]), k) == 2
    assert eagle2_threshold_cut(scores, k, 0.0, budget=29) == (
        10,
        10,
    )  # disabled: everything, up to the budget
    assert eagle2_threshold_cut(scores, k, 0.0, budget=5) == (10, 5)
    high = [math.log(0.9), math.log(0.05), math.log(0.8), math.log(0.04), math.log(0.01), math.log(0.01)]
    assert eagle2_threshold_cut(high + level3, k, 0.3, budget=29) == (10, 2)  # level 2 max 0.8: keep going


def test_eagle_static_by_default_dynamic_under_mmspec_preset():
    adapter = tiny_adapter("tiny-llava15", "float32")
    eagle = get_spec("eagle")
    assert isinstance(eagle(adapter, checkpoint="random").expansion, StaticExpansion)  # EAGLE-1's 7B tree
    mm = eagle(adapter, checkpoint="random", preset="mmspec")
    assert isinstance(mm.expansion, DynamicExpansion)  # MMSpec's "eagle" = EAGLE-2 tree
    assert mm.describe()["preset"] == "mmspec"
    assert (mm.args["depth"], mm.args["top_k"], mm.args["total_token"], mm.args["threshold"]) == (
        3,
        8,
        30,
        0.0,
    )
    with pytest.raises(SpecArgError, match="tree must be static"):
        eagle(adapter, checkpoint="random", tree="bushy")


def test_presets_set_mmspec_settings_and_explicit_arguments_win():
    adapter = tiny_adapter("tiny-llava15", "float32")
    assert get_spec("eagle2")(adapter, checkpoint="random", preset="mmspec").args["threshold"] == 0.3
    own = get_spec("eagle2")(adapter, checkpoint="random", preset="mmspec", threshold="0.5")
    assert own.args["threshold"] == 0.5
    assert get_spec("medusa")(adapter, checkpoint="random", preset="mmspec").args["expand"] == "top_k"
    assert get_spec("pld")(adapter, preset="mmspec").args["min_ngram"] == 4
    assert get_spec("sam")(adapter, preset="mmspec").args["alpha"] == 4.0
    assert get_spec("lookahead")(adapter, preset="mmspec").args["shared_trie"] is True
    skip = get_spec("msd_vskip")(adapter, checkpoint="random", preset="mmspec")
    assert skip.describe()["total_token"] == 30 and skip.describe()["visual_attn_threshold"] == 0.35
    qwen = tiny_adapter("tiny-qwen25vl", "float32")
    assert get_spec("msd")(qwen, checkpoint="random", preset="mmspec").args["total_token"] == 59
    with pytest.raises(SpecArgError, match="no such preset"):
        get_spec("eagle2")(adapter, checkpoint="random", preset="specbench")


def test_msd_llava_mmspec_preset_picks_the_tree_size_by_timing():
    adapter = tiny_adapter("tiny-llava15", "float32")
    drafter = get_spec("msd")(adapter, checkpoint="random", preset="mmspec")
    assert drafter.args["total_token"] in (40, 48, 50, 56, 60)
    assert drafter.describe()["total_token_auto"] is True
    p = prompt(adapter)
    assert (
        Engine(adapter, drafter).generate(p, 12).token_ids
        == Engine(adapter, get_spec("baseline")(adapter)).generate(p, 12).token_ids
    )


# ------------------------------------------------------------------------------------- Medusa
def test_medusa_expand_top_k_keeps_only_the_best_beams_per_level():
    """MMSpec's Medusa extends only the top_k best nodes of a level; ours (``budget``) extends every
    node that could still make the tree."""
    adapter = tiny_adapter("tiny-llava15", "float32")
    k, heads = 2, 3
    # per head: two tokens; head 0 scores make level-1 nodes A (0.6) and B (0.4)
    logp = torch.log(torch.tensor([[0.6, 0.4], [0.5, 0.5], [0.9, 0.1]], dtype=torch.float64))
    toks = torch.tensor([[10, 11], [20, 21], [30, 31]], dtype=torch.float64)
    trees = {}
    for expand in ("budget", "top_k"):
        m = get_spec("medusa")(
            adapter, checkpoint="random", num_heads=heads, top_k=k, total_token=12, expand=expand
        )
        m._head_topk = lambda: torch.stack([logp, toks])  # fixed head outputs
        trees[expand] = m.propose(_ctx(adapter, [1, 2, 3], 2))
    # level 2 has 4 nodes (A20, A21, B20, B21); top_k keeps the best 2 (A20, A21) as parents of level 3
    depth3_parents = {
        expand: {tree.tokens[tree.parents[i]] for i, d in enumerate(tree.depths()) if d == 3}
        for expand, tree in trees.items()
    }
    level2_of = {expand: [i for i, d in enumerate(t.depths()) if d == 2] for expand, t in trees.items()}
    assert len(level2_of["budget"]) == len(level2_of["top_k"]) == 4
    top_k_parents = [trees["top_k"].parents[i] for i, d in enumerate(trees["top_k"].depths()) if d == 3]
    assert {trees["top_k"].tokens[trees["top_k"].parents[p]] for p in top_k_parents} == {
        10
    }  # only A's children
    budget_parents = [trees["budget"].parents[i] for i, d in enumerate(trees["budget"].depths()) if d == 3]
    assert {trees["budget"].tokens[trees["budget"].parents[p]] for p in budget_parents} == {10, 11}
    assert depth3_parents["top_k"] == {20, 21}


# ------------------------------------------------------------- full acceptance of a dynamic tree
@pytest.mark.parametrize("execution", ["eager", "static"])
def test_a_round_accepting_every_level_of_a_dynamic_tree_appends_all_pairs(execution):
    """A dynamic tree has depth + 1 levels; a round that accepts them all appends depth + 2 pairs."""
    from mmspec.adapters import load_model

    adapter = load_model("tiny-llava15", {"dtype": "float32", "device": "cpu", "execution": execution})
    drafter = get_spec("eagle2")(adapter, checkpoint="random", depth=2, top_k=2, total_token=30)
    p = prompt(adapter)
    pre = adapter.prefill(p, drafter.capture_prefill)
    first = int(pre.logits[-1].argmax())
    ctx = _ctx(adapter, [*p.ids, first], p.length)
    ctx.prompt_embeds = pre.inputs_embeds
    drafter.begin(ctx, pre)
    tree = drafter.propose(ctx)
    depths = tree.depths()
    assert max(depths) == 3  # depth + 1 levels
    leaf = depths.index(3)
    path = tree.path_to(leaf)
    out = adapter.forward_tree(tree, drafter.capture_verify)
    adapter.commit(len(tree), path)
    ctx.tokens.extend([tree.tokens[i] for i in path[1:]] + [5])
    drafter.observe(ctx, RoundResult(tree=tree, path=path, bonus=5, verify=out))
    assert drafter.runner.stable == p.length + len(path)
    assert isinstance(drafter.propose(ctx), DraftTree)


def test_msd_mmspec_llava_compat_moves_only_the_tree_levels_one_position_later():
    """MMSpec's LLaVA MSD appends the root's embedding twice: its tree rows sit one position later;
    the prompt pass and the accepted-pair appends keep their positions."""
    adapter = tiny_adapter("tiny-llava15", "float32")
    seen: dict[str, list[list[int]]] = {}
    for compat in ("none", "mmspec_llava"):
        drafter = get_spec("msd")(adapter, checkpoint="random", compat=compat, total_token=20)
        net = draft_net(drafter)
        calls: list[list[int]] = []
        run = net.run
        net.run = lambda x, pos, mask, cache, run=run, calls=calls: (
            calls.append(pos[0].tolist()) or run(x, pos, mask, cache)
        )
        Engine(adapter, drafter).generate(prompt(adapter), 6)
        seen[compat] = calls
    none, compat = seen["none"], seen["mmspec_llava"]
    assert len(none) == len(compat)
    assert none[0] == compat[0]  # the prompt pass
    shifted = [(a, b) for a, b in zip(none[1:], compat[1:]) if a != b]
    assert shifted and all([x + 1 for x in a] == b for a, b in shifted)  # tree levels: +1
    assert any(a == b for a, b in zip(none[1:], compat[1:]))  # appends: unchanged
    assert (
        get_spec("msd")(adapter, checkpoint="random", preset="mmspec", total_token=30).args["compat"]
        == "mmspec_llava"
    )
