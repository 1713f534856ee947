"""Targets split over several devices (``--model_args parallelize=true``), tested on the CPU.

A real split needs GPUs (issue 17 measures one); here the same path loads a tiny model with an
explicit per-layer device map (every module on "cpu"), accelerate's hooks are forced onto every
module (what a split adds to a forward), and the KV cache puts layers on two devices (the CPU and
``meta``, whose kernels refuse an index from another device just as CUDA's do).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from _models import prompt

from mmspec.adapters import load_model
from mmspec.cli import main
from mmspec.engine import Engine
from mmspec.graphs import resolve_execution
from mmspec.harness import Harness, RunConfig
from mmspec.kv_cache import EngineCache
from mmspec.methods import get_spec
from mmspec.records import read_run

MODEL = "tiny-qwen25vl"
LM = "model.language_model"


def per_layer_map(device: str = "cpu", layers: int = 4) -> dict[str, str]:
    """An explicit device map of the tiny Qwen2.5-VL: every module named, one entry per decoder layer."""
    return {"model.visual": device, f"{LM}.embed_tokens": device, f"{LM}.rotary_emb": device,
            **{f"{LM}.layers.{i}": device for i in range(layers)}, f"{LM}.norm": device, "lm_head": device}  # fmt: skip


def token_ids(run_dir: Path) -> dict[tuple[str, int], list[int]]:
    recs = read_run(run_dir).by_task["mmspec_demo"]
    return {(r.id, i): t.token_ids for r in recs for i, t in enumerate(r.turns)}


def test_parallelize_with_a_per_layer_device_map_is_lossless(tmp_path):
    device_map = tmp_path / "device_map.json"
    device_map.write_text(json.dumps(per_layer_map()))
    common = ["--tasks", "mmspec_demo", "--model", MODEL, "--max_new_tokens", "12", "--warmup", "0",
              "--limit", "3"]  # fmt: skip
    split_args = f"dtype=float64,execution=static,parallelize=true,device_map={device_map}"
    assert main([*common, "--output_path", str(tmp_path / "split"), "--model_args", split_args,
                 "--spec", "baseline,pld", "--strict"]) == 0  # fmt: skip
    assert main([*common, "--output_path", str(tmp_path / "plain"), "--model_args", "dtype=float64"]) == 0

    split = tmp_path / "split" / MODEL
    assert token_ids(split / "baseline") == token_ids(tmp_path / "plain" / MODEL / "baseline")
    res = json.loads((split / "pld" / "results.json").read_text())
    assert res["overall"]["exact_match_rate"] == 1.0
    assert res["overall"]["n_compared"] == len(token_ids(split / "pld")) > 0
    assert res["config"]["execution"] == "static" and res["config"]["model_args"]["parallelize"] == "true"
    names = [res["environment"]["device_name"]]
    assert res["environment"]["processes"] == [{"rank": 0, "devices": ["cpu"], "device_names": names}]


def test_the_adapter_works_under_accelerate_hooks():
    """A split target runs every module behind accelerate's hooks (inputs moved to the module's device,
    the cache passed through untouched), in static execution (what graph mode becomes there), and a
    draft model reads the target's hidden states: forced here on one device, outputs must not change.
    (EAGLE-2 drives everything the baseline does: prefill, tree verification, and more.)"""
    from accelerate import dispatch_model

    model_args = {"dtype": "float64", "execution": "static"}
    plain = load_model(MODEL, model_args)
    hooked = load_model(MODEL, {**model_args, "parallelize": "true", "device_map": per_layer_map()})
    dispatch_model(hooked.model, device_map=per_layer_map(), main_device="cpu", force_hooks=True,
                   skip_keys=hooked.model._skip_keys_device_placement)  # fmt: skip
    assert hasattr(hooked.language_model.layers[0], "_hf_hook") and hasattr(hooked.lm_head_module, "_hf_hook")
    outs = []
    for adapter in (plain, hooked):
        drafter = get_spec("eagle2")(adapter, checkpoint="random")
        drafter.reset()
        res = Engine(adapter, drafter).generate(prompt(adapter), 10, 0.0, 0)
        outs.append((res.token_ids, res.rounds, res.accepted_per_round))
    assert outs[0] == outs[1]


def test_kv_cache_keeps_each_layer_on_its_device():
    cache = EngineCache(2, 1, 2, 8, torch.float32, "cpu", layer_devices=["cpu", "meta"])
    assert [layer.keys.device.type for layer in cache.layers] == ["cpu", "meta"]

    def write(n: int, base: float) -> None:
        for layer in cache.layers:
            kv = (base + torch.arange(2.0 * n)).view(1, 1, n, 2).to(layer.device)
            keys, _ = layer.update(kv, kv.clone(), 0)
            assert keys.device == layer.device and keys.shape[2] == cache.state.view_len

    cache.prepare_write(3)
    write(3, 0.0)
    cache.commit(3, keep=[0, 2])  # compaction on every layer's own device
    assert cache.layers[0].keys[0, 0, :2].tolist() == [[0.0, 1.0], [4.0, 5.0]] and cache.length == 2
    cache.set_write_index(torch.tensor([2, 3]), 4)  # static/graph steps hand in one index tensor
    write(2, 10.0)
    cache.commit(2)
    cache.compact_(torch.tensor([3]), torch.tensor([2]))
    assert cache.layers[0].keys[0, 0, 2].tolist() == [12.0, 13.0]
    assert cache.ensure_capacity(20) and cache.layers[1].keys.device.type == "meta"
    cache.prepare_write(5)
    write(5, 0.0)
    assert cache.layers[0].keys[0, 0, :3].tolist() == [[0.0, 1.0], [4.0, 5.0], [12.0, 13.0]]


def test_a_split_target_runs_static_instead_of_graphs():
    cuda = torch.device("cuda")
    assert resolve_execution(None, cuda) == "graph" and resolve_execution(None, cuda, split=True) == "static"
    assert resolve_execution("graph", cuda, split=True) == "static"
    assert resolve_execution("eager", cuda, split=True) == "eager"
    assert resolve_execution(None, torch.device("cpu"), split=True) == "eager"


def test_results_say_how_a_split_target_ran(tmp_path, monkeypatch):
    """What the adapter reports about a split (its devices, the graph fallback) reaches run.json and
    results.json. The split itself needs GPUs: here the adapter's report is simulated."""
    adapter = load_model(MODEL, {"dtype": "float64"})
    monkeypatch.setattr(adapter, "devices", [torch.device("cpu"), torch.device("meta")])
    note = (
        "graph -> static: the target is split over cuda:0, cuda:1, and a CUDA graph is captured on one device"
    )
    monkeypatch.setattr(adapter, "execution_fallback", note)
    cfg = RunConfig(
        tasks=["mmspec_demo"], model=MODEL, output_path=tmp_path, max_new_tokens=3, warmup=0, limit=1
    )
    res = Harness(cfg, adapter=adapter).run()
    assert res["config"]["execution_fallback"] == note and res["config"]["model_parallel"] == 2
    assert res["environment"]["processes"][0]["devices"] == ["cpu", "meta"]
    assert json.loads((tmp_path / MODEL / "baseline" / "run.json").read_text())["model_parallel"] == 2


def _no_model_load(monkeypatch):
    import mmspec.adapters

    monkeypatch.setattr(mmspec.adapters, "load_model", lambda *a, **k: pytest.fail("loaded before checking"))


@pytest.mark.parametrize(
    ("model_args", "file", "message"),
    [
        ("device_map=auto", None, "device_map is used with parallelize=true (add it"),
        ("parallelize=true,device=cpu", None, "parallelize=true places the target with device_map, so device=cpu"),
        ("parallelize=maybe", None, "parallelize='maybe': expected true or false"),
        ("parallelize=true,device_map=MAP", None, "(no such file)"),
        ("parallelize=true,device_map=MAP", "{not json", "cannot read it as JSON"),
        ("parallelize=true,device_map=MAP", '{"lm_head": "disk"}', "'lm_head' -> 'disk': a device is a GPU index"),
        ("parallelize=true,device_map=MAP", '{"model.visual": "cpu", "lm_head": 0}',
         "puts some modules on the CPU and others on GPUs"),
        ("parallelize=true,device_map=MAP", '{"model.visual": "cuda:0"}', "device_map: cuda:0: no CUDA device"),
    ],
)  # fmt: skip
def test_bad_placement_is_a_clear_error_before_loading(
    tmp_path, capsys, monkeypatch, model_args, file, message
):
    if "cuda:0" in message and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    _no_model_load(monkeypatch)
    path = tmp_path / "map.json"
    if file is not None:
        path.write_text(file)
    code = main(["--tasks", "mmspec_demo", "--model", MODEL, "--output_path", str(tmp_path / "out"),
                 "--model_args", model_args.replace("MAP", str(path))])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and message in err and "Traceback" not in err, err
