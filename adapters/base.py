"""What every VLM adapter gives the engine, built on the library's own modules and hooks.

The adapter loads a transformers ``*ForConditionalGeneration`` checkpoint with ``from_pretrained``
and drives it through public hooks only: a custom :class:`~mmspec.kv_cache.EngineCache`, 4-D
attention masks, explicit position ids (Qwen's 3-D rope included) and captured hidden states.
Prefill runs the model's own multimodal forward (vision encoder, embedding merge, rope index), so
its numerics are exactly transformers'; verification runs the language model over a token tree.

A target split over several GPUs (``parallelize=True``, :mod:`mmspec.adapters.placement`) is
driven the same way: accelerate's hooks move each layer's inputs to its device, the KV cache keeps
each layer's buffers there, and everything the adapter hands back (logits, hidden states,
embeddings) is moved to ``device`` — the embeddings' GPU, where inputs start and drafters run — so
the engine and the drafters never see another device. Graph execution becomes static there.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch

from mmspec import attention
from mmspec import fusion as fusion_mod
from mmspec.adapters.chained_decode import ChainedDecode
from mmspec.adapters.loading import (
    AdapterError,
    default_device,
    load_pretrained,
    resolve_dtype,
    stop_token_ids,
)
from mmspec.adapters.placement import check_loaded, load_options, loads_on_gpu, parse_device_map
from mmspec.adapters.verify_steps import VerifySteps
from mmspec.contract import Capture, ForwardOutput, PromptInputs
from mmspec.graphs import (
    LEN_STEP,
    TREE_BUCKETS,
    additive_mask,
    resolve_execution,
    round_up,
    visible_keys,
)
from mmspec.kv_cache import EngineCache
from mmspec.tree import DraftTree

log = logging.getLogger(__name__)


def image_spans(ids: Sequence[int], image_token_ids: frozenset[int]) -> list[tuple[int, int]]:
    """Half-open ``[start, end)`` runs of image-placeholder tokens in ``ids``."""
    spans, start = [], None
    for i, tok in enumerate(ids):
        if tok in image_token_ids:
            if start is None:
                start = i
        elif start is not None:
            spans.append((start, i))
            start = None
    if start is not None:
        spans.append((start, len(ids)))
    return spans


class VLMAdapter:
    """Base adapter: family modules override only prompt/position details."""

    family: ClassVar[str] = ""
    # transformers class names this adapter accepts (checked after loading).
    architectures: ClassVar[tuple[str, ...]] = ()
    default_processor_kwargs: ClassVar[dict[str, Any]] = {}

    def __init__(
        self,
        model: Any,
        processor: Any,
        *,
        pretrained: str,
        max_cache_len: int = 4096,
        execution: str | None = None,
        fusion: str | None = None,
    ) -> None:
        # Inference only: without this every in-place KV write would chain the autograd history.
        self.model = model.eval().requires_grad_(False)
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.pretrained = pretrained
        self.dtype = next(model.parameters()).dtype
        self.text_config = model.config.get_text_config(decoder=True)
        self.language_model = model.model.language_model
        self.lm_head_module = model.get_output_embeddings()
        self.embed_tokens = model.get_input_embeddings()
        #: where inputs start, drafters run and every output is handed over: the embeddings' device
        self.device = self.embed_tokens.weight.device
        self.layer_devices = [next(layer.parameters()).device for layer in self.language_model.layers]
        #: every device holding weights, ``device`` first (one entry unless the target is split)
        self.devices = list(dict.fromkeys([self.device, *(p.device for p in model.parameters())]))
        self.split = len(self.devices) > 1
        if self.device.type == "cuda":  # timing events and graph streams go to the current device
            torch.cuda.set_device(self.device)
        self.num_layers = int(self.text_config.num_hidden_layers)
        self.hidden_size = int(self.text_config.hidden_size)
        self.vocab_size = int(self.lm_head_module.weight.shape[0])
        self.attn_implementation = getattr(model.config, "_attn_implementation", None) or "sdpa"
        if self.attn_implementation == "sdpa":
            # transformers' SDPA semantics, plus grouped-query tree masks and query taps (mmspec.attention)
            model.set_attn_implementation({"text_config": attention.register()})
        elif self.attn_implementation != "eager":
            raise AdapterError(
                f"attn_implementation={self.attn_implementation!r} cannot apply tree attention masks; "
                "use sdpa (default) or eager"
            )
        self.stop_token_ids = stop_token_ids(model, self.tokenizer, pretrained)
        self.image_token_ids = frozenset(self._image_token_ids())
        head_dim = getattr(self.text_config, "head_dim", None) or (
            self.hidden_size // self.text_config.num_attention_heads
        )
        self.cache = EngineCache(
            self.num_layers,
            int(self.text_config.num_key_value_heads),
            int(head_dim),
            round_up(max_cache_len, LEN_STEP),
            self.dtype,
            self.device,
            self.layer_devices,
        )
        try:
            wanted = resolve_execution(execution, self.device)
            self.execution = resolve_execution(execution, self.device, split=self.split)
        except ValueError as exc:
            raise AdapterError(str(exc)) from None
        #: why the mode run differs from the one asked for (recorded in results.json), else None
        self.execution_fallback: str | None = None
        if self.execution != wanted:
            self.execution_fallback = (
                f"{wanted} -> {self.execution}: the target is split over {', '.join(map(str, self.devices))}, "
                "and a CUDA graph is captured on one device"
            )
            log.warning("execution %s", self.execution_fallback)
        self._steps = None if self.execution == "eager" else VerifySteps(self, self.execution)
        #: plain greedy decoding with forwards queued ahead of the host (static/graph execution)
        self.chained = None if self._steps is None else ChainedDecode(self._steps)
        self.fusion = self._resolve_fusion(fusion)  # "layers" in graph mode, else "none"
        if self.fusion != "none":
            fusion_mod.apply(self.language_model, self.fusion)
        self._captured: dict[str, Any] = {}
        self.language_model.register_forward_pre_hook(self._capture_lm_inputs, with_kwargs=True)

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(
        cls,
        pretrained: str | Path,
        *,
        dtype: str | torch.dtype | None = "auto",
        device: str | torch.device | None = None,
        attn_implementation: str = "sdpa",
        trust_remote_code: bool = False,
        revision: str | None = None,
        max_cache_len: int = 4096,
        processor_kwargs: dict[str, Any] | None = None,
        execution: str | None = None,
        fusion: str | None = None,
        parallelize: bool = False,
        device_map: Any = "auto",
        gpus: list[int] | None = None,
    ) -> VLMAdapter:
        """Load model + processor by hub id or local folder, exactly as users' checkpoints load.

        ``parallelize``: split the model with ``device_map`` as it loads (over ``gpus`` when given,
        else every visible GPU) instead of putting it on ``device``."""
        placement = None
        if parallelize:
            device_map = parse_device_map(device_map)
            placement = load_options(device_map, gpus)
            device = torch.device("cuda" if loads_on_gpu(device_map) else "cpu")
        device = torch.device(device) if device else default_device()
        model, processor = load_pretrained(
            str(pretrained), family=cls.family, architectures=cls.architectures, dtype=resolve_dtype(dtype, device),
            attn_implementation=attn_implementation, trust_remote_code=trust_remote_code, revision=revision,
            processor_kwargs={**cls.default_processor_kwargs, **(processor_kwargs or {})}, placement=placement,
        )  # fmt: skip
        if placement is None:
            model.to(device)
        else:
            check_loaded(model, str(pretrained))
        return cls(
            model, processor, pretrained=str(pretrained), max_cache_len=max_cache_len, execution=execution,
            fusion=fusion,
        )  # fmt: skip

    # ------------------------------------------------------------- tokens
    def _image_token_ids(self) -> list[int]:
        cfg = self.model.config
        ids = [getattr(cfg, "image_token_id", None), getattr(cfg, "image_token_index", None)]
        return [int(i) for i in ids if i is not None]

    def image_spans(self, ids: Sequence[int]) -> list[tuple[int, int]]:
        return image_spans(ids, self.image_token_ids)

    def encode(self, messages: list[dict], images: Sequence[Any]) -> PromptInputs:
        """Render the chat template and run the processor (CPU; outside the timed region)."""
        text = self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        batch = self.processor(
            images=list(images) if images else None, text=[text], return_tensors="pt", padding=False
        )
        input_ids = batch.pop("input_ids")
        batch.pop("attention_mask", None)
        return PromptInputs(input_ids=input_ids, model_inputs=dict(batch), text=text)

    def decode(self, ids: Sequence[int]) -> str:
        """Answer text: special tokens (stop tokens included) dropped, whitespace stripped."""
        return self.tokenizer.decode(list(ids), skip_special_tokens=True).strip()

    # ----------------------------------------------------------- engine API
    @property
    def cache_len(self) -> int:
        return self.cache.length

    def _resolve_fusion(self, level: str | None) -> str:
        """How much of the language model torch.compile fuses (:mod:`mmspec.fusion`), for this execution."""
        try:
            return fusion_mod.resolve_fusion(level, self.execution)
        except ValueError as exc:
            raise AdapterError(str(exc)) from None

    def set_fusion(self, level: str | None) -> str:
        """Switch the fusion level (benchmarks compare levels on one loaded model); captured steps are
        dropped, since they replay the previous level's kernels. Returns the level now in use."""
        level = self._resolve_fusion(level)
        fusion_mod.apply(self.language_model, level)
        self.fusion = level
        if self._steps is not None:
            self._steps.clear()
        return level

    # ----------------------------------------------------------- ViSkip
    def enable_query_tap(self) -> None:
        """Record the last decoder layer's query rows on every forward (for ViSkip's gate)."""
        if getattr(self, "_tap", None) is not None:
            return
        if self.attn_implementation != "sdpa":
            raise AdapterError("ViSkip's attention gate needs attn_implementation=sdpa")
        attn = self.language_model.layers[-1].self_attn
        heads = int(self.text_config.num_attention_heads)
        head_dim = int(self.cache.shape[2])
        self._tap = attention.QueryTap(  # beside the last layer's keys, which the gate reads with it
            torch.zeros(heads, TREE_BUCKETS[-1], head_dim, dtype=self.dtype, device=self.layer_devices[-1])
        )
        attention.set_query_tap(attn, self._tap)
        if self._steps is not None:
            self._steps.clear()  # steps captured before the tap existed would not record it

    @torch.no_grad()
    def visual_attention_mass(self, node: int, spans: Sequence[tuple[int, int]]) -> float:
        """Last-layer attention share on image tokens of the query row of ``node`` (last forward).

        Recomputed from the tapped query and the committed keys (the node attended to exactly the
        committed prefix once its path is compacted), averaged over heads.
        """
        keys = self.cache.layers[-1].keys[0, :, : self.cache.length]  # [kv heads, T, head_dim]
        return attention.image_attention_share(self._tap.buffer[:, node], keys, spans)

    @torch.no_grad()
    def prepare(self, max_tree_size: int, capture: Capture = Capture(), chain: bool = False) -> int:
        """Graph mode: capture every verification step a run can use before anything is timed
        (``chain``: the chained decode steps too; returns how many); other modes have nothing to prepare."""
        return self._steps.prepare(max_tree_size, capture, chain) if self._steps is not None else 0

    @property
    def capture_time_s(self) -> float:
        return self._steps.capture_time_s if self._steps is not None else 0.0

    def reserve(self, tokens: int) -> None:
        """Make room for ``tokens`` cache entries (prompt + output + one tree, padded to its bucket)."""
        pad = TREE_BUCKETS[-1] if self._steps is not None else 0
        if self.cache.ensure_capacity(round_up(tokens + pad, LEN_STEP)) and self._steps is not None:
            self._steps.clear()  # captured steps point at the old buffers

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.embed_tokens(ids)  # on ``device``: the embeddings live there

    def lm_head(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.to_main(self.lm_head_module(hidden))

    def to_main(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` on ``device`` (a split target's outputs come from other GPUs; otherwise ``t`` itself)."""
        return t.to(self.device) if self.split else t

    def _capture_lm_inputs(self, module, args, kwargs):  # forward pre-hook on the language model
        if self._captured.get("armed"):
            self._captured["inputs_embeds"] = kwargs.get("inputs_embeds")
            self._captured["position_ids"] = kwargs.get("position_ids")

    @torch.no_grad()
    def prefill(self, prompt: PromptInputs, capture: Capture = Capture()) -> ForwardOutput:
        """Vision encoding + language-model prefill into a reset cache; logits of the last position."""
        ids = prompt.input_ids.to(self.device)
        extra = {k: (v.to(self.device) if torch.is_tensor(v) else v) for k, v in prompt.model_inputs.items()}
        n = ids.shape[1]
        self.cache.reset()
        self.cache.prepare_write(n)
        self._before_prefill()
        self._captured = {"armed": True}
        tap = getattr(self, "_tap", None)
        if tap is not None:
            tap.last_only = True  # the prefill's last row produced the first token
        try:
            out = self.model.model(
                input_ids=ids,
                past_key_values=self.cache,
                use_cache=True,
                output_hidden_states=bool(capture.hidden),
                **extra,
            )
        finally:
            self._captured["armed"] = False
            if tap is not None:
                tap.last_only = False
        self.cache.commit(n)
        self._after_prefill(self._captured.get("position_ids"))
        hidden_all = out.last_hidden_state[0]
        logits = self.lm_head(hidden_all if capture.all_logits else hidden_all[-1:])
        embeds = self._captured.get("inputs_embeds")
        return ForwardOutput(
            logits=logits,
            hidden=self.select_hidden(out, capture),
            inputs_embeds=self.to_main(embeds[0]) if (capture.embeds and embeds is not None) else None,
        )

    @torch.no_grad()
    def forward_tree(self, tree: DraftTree, capture: Capture = Capture()) -> ForwardOutput:
        """Verify the tree's nodes, placed after the cache, in one forward (KV written, not committed)."""
        if self._steps is not None:
            return self._steps.forward(tree, capture)
        n = len(tree)
        start = self.cache.length
        self.cache.prepare_write(n)
        depths = torch.tensor(tree.depths(), dtype=torch.long).to(self.device, non_blocking=True)
        tokens = torch.tensor(tree.tokens, dtype=torch.long).to(self.device, non_blocking=True)
        mask = None if n == 1 else self.tree_attention_mask(tree.ancestor_mask(), start)
        out = self.language_model(
            inputs_embeds=self.embed(tokens)[None],
            position_ids=self.position_ids(depths + start),
            attention_mask=mask,
            past_key_values=self.cache,
            use_cache=True,
            output_hidden_states=bool(capture.hidden),
        )
        return ForwardOutput(
            logits=self.lm_head(out.last_hidden_state[0]), hidden=self.select_hidden(out, capture)
        )

    def commit(self, n_new: int, keep: Sequence[int] | None = None) -> None:
        self.cache.commit(n_new, keep)

    def tree_attention_mask(self, ancestor_mask: torch.Tensor, start: int) -> torch.Tensor:
        """Additive ``[1, 1, n, start + n]`` mask: whole prefix visible, tree nodes see ancestors only."""
        n = ancestor_mask.shape[0]
        keys = torch.arange(start + n, device=self.device)
        return additive_mask(visible_keys(keys, start, ancestor_mask.to(self.device)), self.dtype)

    def select_hidden(self, out: Any, capture: Capture) -> dict[int, torch.Tensor]:
        if not capture.hidden:
            return {}
        states = out.hidden_states
        return {i: self.to_main(states[i][0]) for i in capture.hidden}

    # ---------------------------------------------------- family hooks
    def position_ids(self, positions: torch.Tensor) -> torch.Tensor:
        """Position ids for new tokens at absolute (1-D) sequence positions ``positions``."""
        return positions[None]

    def _before_prefill(self) -> None:
        """Family hook: clear per-prompt state before the model's own prefill."""

    def _after_prefill(self, position_ids: torch.Tensor | None) -> None:
        """Family hook: read per-prompt state (e.g. Qwen's rope offset) after prefill."""
