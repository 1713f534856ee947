"""Checkpoint discovery and strict loading: file layouts, key normalisation, clear errors."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from mmspec.methods.checkpoints import (
    CheckpointError,
    default_checkpoint,
    load_into,
    normalise_keys,
    published_drafts,
    read_checkpoint,
)


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.midlayer = nn.Linear(3, 2, bias=False)


def tensors(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"fc.weight": torch.randn(3, 4, generator=g), "fc.bias": torch.randn(3, generator=g),
            "midlayer.weight": torch.randn(2, 3, generator=g)}  # fmt: skip


def test_default_table_matches_hub_ids_and_local_folders():
    assert (
        default_checkpoint("Qwen/Qwen2.5-VL-7B-Instruct", "eagle2")
        == "Cloudriver/EAGLE-Qwen2.5-VL-7B-Instruct"
    )
    assert (
        default_checkpoint("/models/qwen2.5-vl-7b-instruct/", "msd")
        == "Cloudriver/MSD-Qwen2.5-VL-7B-Instruct"
    )
    assert default_checkpoint("llava-hf/llava-1.5-7b-hf", "eagle3") == "Cloudriver/EAGLE3-LLaVA1.5-7B"
    assert (
        default_checkpoint("llava-hf/llava-v1.6-vicuna-13b-hf", "vispec")
        == "JLKang/ViSpec-llava-v1.6-vicuna-13b-hf"
    )
    assert (
        default_checkpoint("Qwen/Qwen2.5-VL-3B-Instruct", "vispec") == "JLKang/ViSpec-Qwen2.5-VL-3B-Instruct"
    )
    assert default_checkpoint("Qwen/Qwen2.5-VL-3B-Instruct", "eagle") is None
    assert default_checkpoint("llava-hf/llava-1.5-7b-hf", "medusa") is None
    assert {"Cloudriver/ViSpec-LLaVA1.5-7B", "JLKang/ViSpec-llava-1.5-7b-hf"} <= {
        r["checkpoint"] for r in published_drafts()
    }


def test_key_normalisation():
    sd = {"module.model.fc.weight": 1, "weight": 2, "layers.0.mlp.up_proj.weight": 3, "model.norm.weight": 4}
    assert normalise_keys(sd, "eagle3") == {
        "fc.weight": 1,
        "midlayer.mlp.up_proj.weight": 3,
        "norm.weight": 4,
    }
    assert "layers.0.mlp.up_proj.weight" in normalise_keys(sd, "eagle")


def test_bin_preferred_then_accelerate_shards_merged(tmp_path):
    sd = tensors()
    save_file({"fc.weight": sd["fc.weight"], "fc.bias": sd["fc.bias"]}, str(tmp_path / "model.safetensors"))
    save_file(
        {"midlayer.weight": sd["midlayer.weight"], "fc.bias": torch.zeros(3)},
        str(tmp_path / "model_1.safetensors"),
    )
    ckpt = read_checkpoint(tmp_path, "eagle")
    assert [p.rsplit("/", 1)[-1] for p in ckpt.files] == ["model.safetensors", "model_1.safetensors"]
    torch.testing.assert_close(ckpt.state_dict["fc.bias"], sd["fc.bias"])  # merged without overwriting
    net = Net()
    assert load_into(net, ckpt.state_dict, "x") == []
    torch.testing.assert_close(net.midlayer.weight, sd["midlayer.weight"])
    torch.save({"module." + k: v for k, v in tensors(1).items()}, tmp_path / "pytorch_model.bin")
    ckpt = read_checkpoint(tmp_path, "eagle")
    assert ckpt.files[0].endswith("pytorch_model.bin") and len(ckpt.files) == 1
    torch.testing.assert_close(ckpt.state_dict["fc.weight"], tensors(1)["fc.weight"])


def test_indexed_shards_and_subfolders(tmp_path):
    sub = tmp_path / "state_19"
    sub.mkdir()
    sd = tensors()
    save_file({"fc.weight": sd["fc.weight"]}, str(sub / "a.safetensors"))
    save_file(
        {"fc.bias": sd["fc.bias"], "midlayer.weight": sd["midlayer.weight"]}, str(sub / "b.safetensors")
    )
    index = {
        "weight_map": {
            "fc.weight": "a.safetensors",
            "fc.bias": "b.safetensors",
            "midlayer.weight": "b.safetensors",
        }
    }
    (sub / "model.safetensors.index.json").write_text(json.dumps(index))
    (sub / "config.json").write_text('{"hidden_size": 3}')
    ckpt = read_checkpoint(tmp_path, "medusa", subfolders=("state_19",))
    assert ckpt.config == {"hidden_size": 3} and set(ckpt.state_dict) == set(sd)


def test_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no such folder"):
        read_checkpoint(tmp_path / "absent", "eagle")
    (tmp_path / "pytorch_model_fsdp.bin").write_bytes(b"")
    with pytest.raises(CheckpointError, match="FSDP"):
        read_checkpoint(tmp_path, "msd")
    torch.save(tensors(), tmp_path / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="config.json"):
        read_checkpoint(tmp_path, "msd", require_config=True)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="config.json: invalid JSON"):
        read_checkpoint(tmp_path, "msd")
    (tmp_path / "pytorch_model.bin").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="pytorch_model.bin: cannot be read"):
        read_checkpoint(tmp_path, "eagle")


def test_offline_hub_id_says_how_to_proceed(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError, match="checkpoint=DIR.*checkpoint=random"):
        read_checkpoint("nobody-here/no-such-draft-xyz", "eagle")


def test_strict_load_names_every_problem():
    sd = tensors()
    with pytest.raises(CheckpointError, match="missing keys: midlayer.weight"):
        load_into(Net(), {k: v for k, v in sd.items() if k != "midlayer.weight"}, "x")
    with pytest.raises(CheckpointError, match="unexpected keys: extra.weight"):
        load_into(Net(), {**sd, "extra.weight": torch.zeros(1)}, "x")
    with pytest.raises(CheckpointError, match=r"fc.bias \(checkpoint \[4\], draft \[3\]\)"):
        load_into(Net(), {**sd, "fc.bias": torch.zeros(4)}, "x")
    net = Net()
    assert load_into(
        net, {k: v for k, v in sd.items() if k != "fc.bias"}, "x", fill={"fc.bias": sd["fc.bias"]}
    ) == ["fc.bias"]
    torch.testing.assert_close(net.fc.bias, sd["fc.bias"])
