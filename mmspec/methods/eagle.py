"""EAGLE-1 (static tree), EAGLE-2 (dynamic tree) and EAGLE-3 (fused multi-layer features)."""

from __future__ import annotations

from typing import Any

import torch

from mmspec.fusion import draft_topk
from mmspec.methods.base import DecodeContext, SpecArgError
from mmspec.methods.checkpoints import PUBLISHED_FEATURE_LAYERS, published_id
from mmspec.methods.draft_nets import DraftConfig, Eagle3Draft, EagleDraft
from mmspec.methods.draft_tree import EAGLE_7B_CHOICES
from mmspec.methods.feature_drafter import FeatureDrafter, image_mask

#: MMSpec's EAGLE drafts were trained with merged vision embeddings at image positions on
#: Qwen2.5-VL and with the embedded ``<image>`` token on LLaVA; ``image_embeds=auto`` follows that.
_MERGED_BY_DEFAULT = ("qwen25vl",)

#: How MMSpec ran its EAGLE rows: its ``eagle`` method is EAGLE-2's dynamic tree without a
#: threshold (depth 3, top-k 8, 30 nodes); its ``eagle2`` scripts add ``threshold=0.3``.
_MMSPEC_TREE = {"depth": 3, "top_k": 8, "total_token": 30}


class _EagleBase(FeatureDrafter):
    checkpoint_method = "eagle"

    def build(self, cfg: DraftConfig) -> torch.nn.Module:
        return EagleDraft(cfg)

    def _merged(self) -> bool:
        mode = self.args.get("image_embeds", "auto")
        if mode not in ("auto", "merged", "token"):
            raise SpecArgError(f"{self.name}: image_embeds must be auto, merged or token (got {mode!r})")
        return mode == "merged" or (mode == "auto" and self.target.family in _MERGED_BY_DEFAULT)

    def prompt_inputs(self, ctx: DecodeContext, embeds: torch.Tensor, feats: torch.Tensor):
        if self._merged():
            embeds = self.merged_image_embeds(ctx, self._prompt_ids, embeds)
        return self.net.fuse(embeds, feats), torch.arange(feats.shape[0], device=feats.device)


class Eagle(_EagleBase):
    """EAGLE-1: the draft expands EAGLE's published static 7B tree (25 nodes, depth 5).

    ``tree=dynamic`` expands EAGLE-2's dynamic tree instead (``depth``, ``top_k``, ``total_token``,
    ``threshold``): that is what MMSpec's ``eagle`` rows ran (``preset=mmspec``)."""

    name = "eagle"
    paper = "EAGLE (Li et al., ICML 2024, arXiv 2401.15077)"
    defaults = {"checkpoint": "", "tree": "static", "depth": 3, "top_k": 8, "total_token": 30,
                "threshold": 0.0, "image_embeds": "auto", "seed": 0}  # fmt: skip
    presets = {"mmspec": {"tree": "dynamic", **_MMSPEC_TREE, "threshold": 0.0}}

    @property
    def static_choices(self) -> tuple | None:  # type: ignore[override]
        tree = self.args["tree"]
        if tree not in ("static", "dynamic"):
            raise SpecArgError(
                f"eagle: tree must be static (EAGLE-1's 7B tree) or dynamic (EAGLE-2's), got {tree!r}"
            )
        return EAGLE_7B_CHOICES if tree == "static" else None


class Eagle2(_EagleBase):
    """EAGLE-2: the same draft with a dynamic, confidence-ranked tree."""

    name = "eagle2"
    paper = "EAGLE-2 (Li et al., EMNLP 2024, arXiv 2406.16858)"
    defaults = {"checkpoint": "", "depth": 3, "top_k": 8, "total_token": 30, "threshold": 0.0,
                "image_embeds": "auto", "seed": 0}  # fmt: skip
    presets = {"mmspec": {**_MMSPEC_TREE, "threshold": 0.3}}


def eagle3_layers(num_layers: int) -> tuple[int, int, int]:
    """EAGLE-3's low/mid/high features: the inputs of layers 2, L/2 and L-3 (hidden-state indices)."""
    n = num_layers
    return min(2, n), n // 2, max(n - 3, 0)


#: config.json keys that name the target layers an EAGLE-3 draft reads (SpecForge/vLLM style)
LAYER_KEYS = ("eagle_aux_hidden_state_layer_ids",)


class Eagle3(FeatureDrafter):
    """EAGLE-3: low/mid/high target features fused by ``fc``, own head over a draft vocabulary.

    Image rows follow MMSpec's EAGLE-3 (the reference for the published drafts): a prompt pair row
    ``t`` gets a zero feature when token ``t`` is an image token and the target tokenizer's pad
    embedding when token ``t + 1`` is."""

    name = "eagle3"
    paper = "EAGLE-3 (Li et al., 2025, arXiv 2503.01840)"
    checkpoint_method = "eagle3"
    #: draft_vocab_size: an untrained draft's vocabulary (0: the published size for the target)
    defaults = {"checkpoint": "", "depth": 3, "top_k": 8, "total_token": 30, "threshold": 0.0,
                "layers": "auto", "draft_vocab_size": 0, "seed": 0}  # fmt: skip
    presets = {"mmspec": {**_MMSPEC_TREE, "threshold": 0.0}}

    def build(self, cfg: DraftConfig) -> torch.nn.Module:
        return Eagle3Draft(cfg)

    def random_config(self) -> DraftConfig:
        cfg = super().random_config()
        size = int(self.args["draft_vocab_size"])
        if size > 0:
            if size > cfg.vocab_size:
                raise SpecArgError(
                    f"eagle3: draft_vocab_size {size} exceeds the target vocabulary {cfg.vocab_size}"
                )
            cfg.draft_vocab_size = size
        return cfg

    def check_config(self, cfg: DraftConfig, source: Any) -> None:
        if (cfg.target_hidden_size or cfg.hidden_size) != self.target.hidden_size:
            super().check_config(cfg, source)

    def feature_width(self) -> int:
        return 3 * int(self.target.hidden_size)

    def choose_feature_layers(self) -> tuple[int, ...]:
        order, self.layers_source = self._resolve_layers()
        n = self.target.num_layers
        if len(order) != 3 or not all(0 <= x <= n for x in order):
            raise SpecArgError(
                f"eagle3: layers must be three hidden-state indices in 0..{n}, got {list(order)} "
                f"({self.layers_source})"
            )
        self.layer_order = order
        return tuple(sorted(set(order)))

    def _resolve_layers(self) -> tuple[tuple[int, ...], str]:
        """Which target layers the draft reads, and how that was decided (recorded in results).

        In order: ``layers=a:b:c``; the draft's config.json (``eagle_aux_hidden_state_layer_ids``);
        the table of published drafts, recognised by hub id, folder name or HF-cache path; EAGLE-3's
        defaults for an untrained draft. Anything else is an error naming what to pass."""
        layers = self.args["layers"]
        if layers != "auto":
            values = layers if isinstance(layers, (list, tuple)) else str(layers).split(":")
            try:
                return tuple(int(x) for x in values), "layers= (given)"
            except ValueError:
                raise SpecArgError(
                    f"eagle3: layers must be auto or a:b:c hidden-state indices, got {layers!r}"
                ) from None
        info = self.checkpoint_info
        if not info.get("trained"):
            return eagle3_layers(self.target.num_layers), "EAGLE-3 default for an untrained draft"
        config = info.get("config") or {}
        for holder in (config, config.get("eagle_config") or {}):
            for key in LAYER_KEYS:
                if isinstance(holder, dict) and holder.get(key) is not None:
                    return tuple(int(x) for x in holder[key]), f"config.json {key}"
        known = published_id(info["checkpoint"], info.get("folder"))
        if known in PUBLISHED_FEATURE_LAYERS:
            return PUBLISHED_FEATURE_LAYERS[known], f"published draft {known}"
        low = ":".join(str(x) for x in eagle3_layers(self.target.num_layers))
        raise SpecArgError(
            f"eagle3: cannot tell which target layers the draft {info['checkpoint']} was trained on (its "
            f"config.json has no {LAYER_KEYS[0]} and it is not a known published draft). Pass "
            f"--spec_args layers=0:1:2 for MMSpec's Cloudriver EAGLE-3 drafts, layers={low} for EAGLE-3's "
            "low/mid/high layers, or the indices its trainer used"
        )

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "layers_source": self.layers_source}

    def features(self, hidden: dict[int, torch.Tensor], rows: Any = slice(None)) -> torch.Tensor:
        return torch.cat([hidden[i][rows] for i in self.layer_order], dim=-1)

    def pad_id(self) -> int:
        """MMSpec's EAGLE-3 embeds the *target tokenizer's* pad token at image positions (0 if unset)."""
        return int(self.target.pad_token_id or 0)

    def prompt_inputs(self, ctx: DecodeContext, embeds: torch.Tensor, feats: torch.Tensor):
        n = feats.shape[0]
        own = image_mask(torch.tensor(ctx.tokens[:n], device=feats.device), ctx.image_token_ids)  # token t
        nxt = image_mask(self._prompt_ids, ctx.image_token_ids)  # token t + 1
        feats = feats.masked_fill(own[:, None], 0)
        pad = self.net.embed_tokens.weight[self.pad_id()]
        embeds = torch.where(nxt[:, None], pad.to(embeds.dtype), embeds)
        return (embeds, self.net.project(feats)), torch.arange(n, device=feats.device)

    def tree_inputs(self, embeds: torch.Tensor, hidden: torch.Tensor):
        return embeds, hidden

    def accepted_inputs(self, embeds: torch.Tensor, feats: torch.Tensor):
        return embeds, self.net.project(feats)

    def topk(self, hidden: torch.Tensor, k: int):
        s, i = draft_topk(self.net.logits(hidden), k, self.target.fusion != "none")
        return s, self.net.to_target_ids(i)
