"""Draft networks of the published methods, with their checkpoints' exact parameter names.

Each network is composed from transformers' own decoder-layer, attention, MLP, norm and rotary
classes (nothing forked), arranged the way EAGLE, EAGLE-3, ViSpec, MSD and Medusa arrange them, so
the published ``state_dict`` files load as they are (see ``mmspec.methods.checkpoints``):

- ``EagleDraft`` (EAGLE-1/2, MSD): ``embed_tokens``, ``fc`` ([emb ; feature] -> H) and ``layers.0``,
  a Llama decoder layer (Qwen2 layer when q/k/v have biases) without ``input_layernorm`` (EAGLE's
  convention; MSD's Qwen2-VL draft keeps it). No final norm, no lm_head: the target's head is used.
- ``Eagle3Draft``: ``fc`` over three fused target features, ``midlayer`` (attention over
  [norm(emb) ; norm(hidden)]), its own ``norm`` and ``lm_head`` over a draft vocabulary with ``d2t``.
- ``ViSpecDraft``: ``EagleDraft`` + ``imadpt`` (learned queries over image embeddings) + ``img_fc``.
- ``MedusaHeads``: ``medusa_head.i.0.linear`` residual blocks on the target's last hidden state.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import LlamaConfig, Qwen2Config
from transformers.models.llama.modeling_llama import (
    LlamaAttention,
    LlamaDecoderLayer,
    LlamaMLP,
    LlamaRMSNorm,
    LlamaRotaryEmbedding,
)
from transformers.models.qwen2.modeling_qwen2 import Qwen2DecoderLayer

from mmspec import attention


@dataclass
class DraftConfig:
    """The fields published draft configs carry (EAGLE's LLaMA-style ``EConfig`` and extensions)."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_attention_heads: int
    num_key_value_heads: int
    rms_norm_eps: float = 1e-6
    hidden_act: str = "silu"
    max_position_embeddings: int = 8192
    pad_token_id: int | None = None
    rope_theta: float = 10000.0
    rope_scaling: dict | None = None
    qkv_bias: bool = False  # q/k/v projections carry biases (Qwen drafts)
    bias: bool = True  # fc / img_fc biases
    draft_vocab_size: int | None = None  # EAGLE-3
    target_hidden_size: int | None = None  # EAGLE-3: fc input is 3 x this
    model_type: str = "llama"  # MSD: "llava" or "qwen2_vl"
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, cfg: dict[str, Any]) -> DraftConfig:
        names = {f.name for f in fields(cls)} - {"extra"}
        known = {k: v for k, v in cfg.items() if k in names and v is not None}
        if "num_key_value_heads" not in known and "num_attention_heads" in known:
            known["num_key_value_heads"] = known["num_attention_heads"]
        missing = [
            k
            for k in ("vocab_size", "hidden_size", "intermediate_size", "num_attention_heads")
            if k not in known
        ]
        if missing:
            raise ValueError(f"draft config.json lacks {', '.join(missing)}")
        if isinstance(known.get("pad_token_id"), list):
            known["pad_token_id"] = known["pad_token_id"][0]
        scaling = known.get("rope_scaling")
        if isinstance(scaling, dict) and scaling.get("type", scaling.get("rope_type")) in (
            "mrope",
            "default",
        ):
            # Qwen2-VL drafts (MSD) use multimodal rope with equal ids on all axes: plain 1-D rope
            known.pop("rope_scaling")
        return cls(**known, extra={k: v for k, v in cfg.items() if k not in names})

    @classmethod
    def from_target(cls, text_config: Any, **overrides: Any) -> DraftConfig:
        """A draft shaped like one layer of the target (for ``checkpoint=random``)."""
        base = dict(
            vocab_size=int(text_config.vocab_size),
            hidden_size=int(text_config.hidden_size),
            intermediate_size=int(text_config.intermediate_size),
            num_attention_heads=int(text_config.num_attention_heads),
            num_key_value_heads=int(text_config.num_key_value_heads),
            rms_norm_eps=float(getattr(text_config, "rms_norm_eps", 1e-6)),
            max_position_embeddings=int(getattr(text_config, "max_position_embeddings", 8192)),
            pad_token_id=getattr(text_config, "pad_token_id", None),
        )
        base.update(overrides)
        return cls(**base)

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def layer_config(self, hidden_size: int | None = None) -> LlamaConfig | Qwen2Config:
        """A one-layer transformers config for the draft's decoder layer (our attention backend)."""
        common = dict(
            vocab_size=self.vocab_size,
            hidden_size=hidden_size or self.hidden_size,
            intermediate_size=self.intermediate_size,
            num_hidden_layers=1,
            num_attention_heads=self.num_attention_heads,
            num_key_value_heads=self.num_key_value_heads,
            rms_norm_eps=self.rms_norm_eps,
            hidden_act=self.hidden_act,
            max_position_embeddings=self.max_position_embeddings,
            rope_theta=self.rope_theta,
            head_dim=self.head_dim,
        )
        if self.rope_scaling:
            common["rope_scaling"] = dict(self.rope_scaling)
        cfg = Qwen2Config(**common) if self.qkv_bias else LlamaConfig(**common, attention_bias=False)
        cfg._attn_implementation = attention.register()
        return cfg


def decoder_layer(cfg: DraftConfig, input_norm: bool) -> nn.Module:
    """transformers' own decoder layer: Qwen2's when q/k/v are biased (o_proj never is), else Llama's."""
    layer_cfg = cfg.layer_config()
    layer = (Qwen2DecoderLayer if cfg.qkv_bias else LlamaDecoderLayer)(layer_cfg, layer_idx=0)
    if not input_norm:
        layer.input_layernorm = nn.Identity()  # EAGLE: the fused input is not normalised
    return layer


class EagleDraft(nn.Module):
    """EAGLE-1/2 draft: one decoder layer over ``fc([token embedding ; target feature])``."""

    def __init__(self, cfg: DraftConfig, input_norm: bool = False) -> None:
        super().__init__()
        self.config = cfg
        h = cfg.hidden_size
        self.embed_tokens = nn.Embedding(cfg.vocab_size, h, padding_idx=cfg.pad_token_id)
        self.layers = nn.ModuleList([decoder_layer(cfg, input_norm)])
        self.fc = nn.Linear(2 * h, h, bias=cfg.bias)
        self.rotary_emb = LlamaRotaryEmbedding(cfg.layer_config())

    def fuse(self, embeds: torch.Tensor, feature: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.cat([embeds, feature], dim=-1))

    def run(
        self, x: torch.Tensor, position_ids: torch.Tensor, mask: torch.Tensor | None, cache: Any
    ) -> torch.Tensor:
        """``x`` [1, n, H] (already fused) -> draft hidden [1, n, H]; KV written to ``cache``."""
        pos = self.rotary_emb(x, position_ids)
        return self.layers[0](
            x, attention_mask=mask, position_ids=position_ids, past_key_values=cache, use_cache=True,
            position_embeddings=pos,
        )  # fmt: skip


class Eagle3Layer(nn.Module):
    """EAGLE-3's ``midlayer``: attention reads [norm(embedding) ; norm(hidden)] (2H wide)."""

    def __init__(self, cfg: DraftConfig) -> None:
        super().__init__()
        h, layer_cfg = cfg.hidden_size, cfg.layer_config()
        self.self_attn = LlamaAttention(layer_cfg, layer_idx=0)
        hd = cfg.head_dim
        self.self_attn.q_proj = nn.Linear(2 * h, cfg.num_attention_heads * hd, bias=cfg.qkv_bias)
        self.self_attn.k_proj = nn.Linear(2 * h, cfg.num_key_value_heads * hd, bias=cfg.qkv_bias)
        self.self_attn.v_proj = nn.Linear(2 * h, cfg.num_key_value_heads * hd, bias=cfg.qkv_bias)
        self.mlp = LlamaMLP(layer_cfg)
        self.hidden_norm = LlamaRMSNorm(h, eps=cfg.rms_norm_eps)
        self.input_layernorm = LlamaRMSNorm(h, eps=cfg.rms_norm_eps)
        self.post_attention_layernorm = LlamaRMSNorm(h, eps=cfg.rms_norm_eps)

    def forward(self, embeds, hidden, position_embeddings, mask, cache) -> torch.Tensor:
        x = torch.cat([self.input_layernorm(embeds), self.hidden_norm(hidden)], dim=-1)
        attn, _ = self.self_attn(
            hidden_states=x,
            position_embeddings=position_embeddings,
            attention_mask=mask,
            past_key_values=cache,
        )
        h = hidden + attn
        return h + self.mlp(self.post_attention_layernorm(h))


class Eagle3Draft(nn.Module):
    """EAGLE-3 draft: fused low/mid/high target features, own norm + head over a draft vocabulary."""

    def __init__(self, cfg: DraftConfig) -> None:
        super().__init__()
        self.config = cfg
        h = cfg.hidden_size
        target_h = cfg.target_hidden_size or h
        draft_v = cfg.draft_vocab_size or cfg.vocab_size
        self.shared_vocab = draft_v == cfg.vocab_size
        self.embed_tokens = nn.Embedding(cfg.vocab_size, h, padding_idx=cfg.pad_token_id)
        self.fc = nn.Linear(3 * target_h, h, bias=False)
        self.midlayer = Eagle3Layer(cfg)
        self.norm = LlamaRMSNorm(h, eps=cfg.rms_norm_eps)
        self.lm_head = nn.Linear(h, draft_v, bias=False)
        self.register_buffer("d2t", torch.zeros(draft_v, dtype=torch.long))  # draft id -> target id offset
        self.register_buffer("t2d", torch.ones(cfg.vocab_size, dtype=torch.bool))
        self.rotary_emb = LlamaRotaryEmbedding(cfg.layer_config())

    def fuse(self, embeds: torch.Tensor, feature: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return embeds, feature  # the layer itself combines them

    def project(self, features: torch.Tensor) -> torch.Tensor:
        """[.., 3 x target H] concatenated target features -> [.., H]."""
        return self.fc(features)

    def run(self, x, position_ids, mask, cache) -> torch.Tensor:
        embeds, hidden = x
        pos = self.rotary_emb(hidden, position_ids)
        return self.midlayer(embeds, hidden, pos, mask, cache)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.lm_head(self.norm(hidden))

    def draft_ids(self) -> torch.Tensor:
        """The target ids of the draft vocabulary, in draft-id order."""
        ids = torch.arange(self.lm_head.out_features, device=self.d2t.device)
        return self.to_target_ids(ids)

    def set_draft_vocab(self, target_ids: torch.Tensor) -> None:
        """Make the draft vocabulary ``target_ids`` (ascending; EAGLE-3's trainer keeps the most
        frequent target tokens): ``d2t`` offsets and the ``t2d`` membership mask."""
        ids = torch.as_tensor(target_ids, dtype=torch.long, device=self.d2t.device).sort().values
        if ids.numel() != self.lm_head.out_features:
            raise ValueError(f"draft vocabulary needs {self.lm_head.out_features} ids, got {ids.numel()}")
        with torch.no_grad():
            self.d2t.copy_(ids - torch.arange(ids.numel(), device=ids.device))
            self.t2d.zero_()
            self.t2d[ids] = True

    def to_target_ids(self, draft_ids: torch.Tensor) -> torch.Tensor:
        """Draft-vocabulary ids -> target ids. A draft over the whole target vocabulary uses its ids
        as they are (the reference ignores ``d2t`` then, whatever the buffer holds)."""
        if self.shared_vocab:
            return draft_ids
        return draft_ids + self.d2t[draft_ids]


class ImgAdaptor(nn.Module):
    """ViSpec's image adaptor: ``num_q`` learned queries cross-attend over image embeddings."""

    def __init__(self, cfg: DraftConfig, num_q: int) -> None:
        super().__init__()
        h, nh = cfg.hidden_size, cfg.num_attention_heads
        self.num_heads, self.head_dim = nh, h // nh
        self.q = nn.Parameter(torch.randn(num_q, nh, h // nh) * (h // nh) ** -0.5)
        self.k_proj = nn.Linear(h, h, bias=cfg.qkv_bias)
        self.v_proj = nn.Linear(h, h, bias=cfg.qkv_bias)
        self.o_proj = nn.Linear(h, h, bias=False)

    def forward(self, image_embeds: torch.Tensor) -> torch.Tensor:
        """[N, H] image-token input embeddings -> [num_q, H]."""
        n = image_embeds.shape[0]
        k = self.k_proj(image_embeds).view(n, self.num_heads, self.head_dim).transpose(0, 1)
        v = self.v_proj(image_embeds).view(n, self.num_heads, self.head_dim).transpose(0, 1)
        q = self.q.transpose(0, 1).to(k.dtype)  # [heads, num_q, head_dim]
        out = F.scaled_dot_product_attention(q[None], k[None], v[None])[0]  # [heads, num_q, hd]
        return self.o_proj(out.transpose(0, 1).reshape(q.shape[1], -1))


class ViSpecDraft(EagleDraft):
    """ViSpec: EAGLE draft + image adaptor + global image feature fused into every text position."""

    def __init__(self, cfg: DraftConfig, num_q: int = 2) -> None:
        super().__init__(cfg)
        h = cfg.hidden_size
        self.imadpt = ImgAdaptor(cfg, num_q)
        self.img_fc = nn.Linear(2 * h, h, bias=cfg.bias)
        with torch.no_grad():  # ViSpec's initialisation: identity on the hidden half (a no-op fusion)
            self.img_fc.weight.zero_()
            self.img_fc.weight[:, :h].copy_(torch.eye(h))
            if self.img_fc.bias is not None:
                self.img_fc.bias.zero_()

    def fuse_global(self, embeds: torch.Tensor, feature: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.cat([embeds, self.img_fc(torch.cat([feature, g.expand_as(feature)], -1))], -1))


class ResBlock(nn.Module):
    """Medusa's residual block: ``x + SiLU(linear(x))``."""

    def __init__(self, h: int) -> None:
        super().__init__()
        self.linear = nn.Linear(h, h)
        nn.init.zeros_(self.linear.weight)  # Medusa's initialisation: identity map

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + F.silu(self.linear(x))


class MedusaHeads(nn.Module):
    """Medusa-1 heads on the target's last hidden state (the target's lm_head turns them into logits)."""

    def __init__(self, cfg: DraftConfig, num_heads: int = 3) -> None:
        super().__init__()
        self.config = cfg
        self.medusa_head = nn.ModuleList([nn.Sequential(ResBlock(cfg.hidden_size)) for _ in range(num_heads)])
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)  # in the published files; unused

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """[n, H] -> [heads, n, H]."""
        return torch.stack([head(hidden) for head in self.medusa_head])
