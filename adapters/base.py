"""What every VLM adapter gives the engine, built on the library's own modules and hooks.

The adapter loads a transformers ``*ForConditionalGeneration`` checkpoint with ``from_pretrained``
and drives it through public hooks only: a custom :class:`~mmspec.kv_cache.EngineCache`, 4-D
attention masks, explicit position ids (Qwen's 3-D rope included) and captured hidden states.
Prefill runs the model's own multimodal forward (vision encoder, embedding merge, rope index), so
its numerics are exactly transformers'; verification runs the language model over a token tree.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch

from mmspec import attention
from mmspec.errors import MmspecError
from mmspec.graphs import EXECUTION_MODES, Step, StepCache, bucket, round_up
from mmspec.kv_cache import EngineCache
from mmspec.tree import DraftTree

log = logging.getLogger(__name__)

#: static tree sizes (graph/static execution pads a tree to the next one)
TREE_BUCKETS = (1, 2, 4, 8, 16, 32, 48, 64, 96, 128, 192, 256)
#: static KV-view lengths are multiples of this
LEN_STEP = 256


class AdapterError(MmspecError, RuntimeError):
    """A model could not be loaded or used; the message names the checkpoint and the problem."""


@dataclass(frozen=True)
class Capture:
    """What a forward must hand back besides logits.

    ``hidden``: decoder-layer indices whose *input* hidden states are wanted (transformers'
    ``hidden_states`` numbering: 0 = embeddings, ``num_layers`` = final normed output).
    ``all_logits``: prefill only; logits for every prompt position instead of only the last.
    ``embeds``: prefill only; the merged input embeddings (text + projected image features).
    """

    hidden: tuple[int, ...] = ()
    all_logits: bool = False
    embeds: bool = False

    def merge(self, other: Capture) -> Capture:
        return Capture(
            tuple(sorted(set(self.hidden) | set(other.hidden))),
            self.all_logits or other.all_logits,
            self.embeds or other.embeds,
        )


@dataclass
class PromptInputs:
    """A rendered, tokenised prompt with its processor tensors (on the CPU until prefill)."""

    input_ids: torch.Tensor  # [1, L]
    model_inputs: dict[str, Any]
    text: str

    @property
    def length(self) -> int:
        return int(self.input_ids.shape[1])

    @property
    def ids(self) -> list[int]:
        return self.input_ids[0].tolist()


@dataclass
class ForwardOutput:
    """Logits ``[n, V]`` of the positions asked for, plus captured extras."""

    logits: torch.Tensor
    hidden: dict[int, torch.Tensor] = field(default_factory=dict)  # layer -> [n, H]
    inputs_embeds: torch.Tensor | None = None  # prefill: [L, H]
    argmax: torch.Tensor | None = None  # [n] when the step computed it on the device already


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


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype | str:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "", "auto"):
        # Checkpoint dtype on an accelerator (bf16/fp16 as published); float32 on the CPU.
        return "auto" if device.type != "cpu" else torch.float32
    table = {
        "float32": torch.float32, "fp32": torch.float32, "float": torch.float32,
        "float64": torch.float64, "fp64": torch.float64, "double": torch.float64,
        "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
        "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
    }  # fmt: skip
    try:
        return table[str(dtype).lower()]
    except KeyError:
        raise AdapterError(f"unknown dtype {dtype!r}; choose one of {sorted(table)} or 'auto'") from None


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class VLMAdapter:
    """Base adapter: family modules override only prompt/position details."""

    family: ClassVar[str] = ""
    # transformers class names this adapter accepts (checked after loading).
    architectures: ClassVar[tuple[str, ...]] = ()
    default_processor_kwargs: ClassVar[dict[str, Any]] = {}

    def __init__(self, model: Any, processor: Any, *, pretrained: str, max_cache_len: int = 4096) -> None:
        # Inference only: without this every in-place KV write would chain the autograd history.
        self.model = model.eval().requires_grad_(False)
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.pretrained = pretrained
        self.device = next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype
        self.text_config = model.config.get_text_config(decoder=True)
        self.language_model = model.model.language_model
        self.lm_head_module = model.get_output_embeddings()
        self.embed_tokens = model.get_input_embeddings()
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
        self.stop_token_ids = self._stop_token_ids()
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
        )
        self.execution = "eager"
        self.fused = False  # norms/MLP compiled (graph mode)
        self._steps: StepCache | None = None
        self.set_execution("graph" if self.device.type == "cuda" else "eager")
        self._captured: dict[str, Any] = {}
        self.language_model.register_forward_pre_hook(self._capture_lm_inputs, with_kwargs=True)
        self._neg = torch.finfo(self.dtype).min

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
    ) -> VLMAdapter:
        """Load model + processor by hub id or local folder, exactly as users' checkpoints load."""
        from transformers import AutoModelForImageTextToText, AutoProcessor

        device = torch.device(device) if device else default_device()
        torch_dtype = resolve_dtype(dtype, device)
        common = {"trust_remote_code": trust_remote_code, "revision": revision}
        try:
            model = AutoModelForImageTextToText.from_pretrained(
                str(pretrained), dtype=torch_dtype, attn_implementation=attn_implementation, **common
            )
            kwargs = {**cls.default_processor_kwargs, **(processor_kwargs or {})}
            processor = AutoProcessor.from_pretrained(str(pretrained), **common, **kwargs)
        except OSError as exc:
            raise AdapterError(
                f"could not load {cls.family} checkpoint {str(pretrained)!r}: {exc}. Pass a local folder "
                "with --model_args pretrained=DIR, or make the hub reachable."
            ) from exc
        name = type(model).__name__
        if cls.architectures and name not in cls.architectures:
            raise AdapterError(
                f"{str(pretrained)!r} loads as {name}, but the {cls.family} adapter expects "
                f"{' or '.join(cls.architectures)}; pick the matching --model."
            )
        model.to(device)
        adapter = cls(model, processor, pretrained=str(pretrained), max_cache_len=max_cache_len)
        if execution is not None:
            adapter.set_execution(execution)
        return adapter

    # ------------------------------------------------------------- tokens
    def _stop_token_ids(self) -> frozenset[int]:
        ids: set[int] = set()
        sources = [
            getattr(getattr(self.model, "generation_config", None), "eos_token_id", None),
            getattr(self.text_config, "eos_token_id", None),
            getattr(self.model.config, "eos_token_id", None),
            self.tokenizer.eos_token_id,
        ]
        for src in sources:
            if src is None:
                continue
            ids.update(int(x) for x in (src if isinstance(src, (list, tuple)) else [src]))
        if not ids:
            raise AdapterError(f"{self.pretrained!r} defines no EOS token; cannot tell where outputs end")
        return frozenset(ids)

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

    def set_execution(self, mode: str) -> None:
        """``eager`` (exact shapes), ``static`` (bucketed shapes, no capture) or ``graph`` (CUDA graphs)."""
        if mode not in EXECUTION_MODES:
            raise AdapterError(f"execution must be one of {', '.join(EXECUTION_MODES)}; got {mode!r}")
        try:
            self._steps = None if mode == "eager" else StepCache(self.device, mode)
        except ValueError as exc:
            raise AdapterError(str(exc)) from None
        self.execution = mode
        if mode == "graph" and not self.fused:
            from mmspec.fusion import compile_small_modules

            compile_small_modules(self.language_model)
            self.fused = True

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
        self._tap = attention.QueryTap(
            torch.zeros(heads, TREE_BUCKETS[-1], head_dim, dtype=self.dtype, device=self.device)
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
        if not spans:
            return 0.0
        q = self._tap.buffer[:, node].float()  # [heads, head_dim]
        keys = self.cache.layers[-1].keys[0, :, : self.cache.length].float()  # [kv heads, T, head_dim]
        groups = q.shape[0] // keys.shape[0]
        scores = torch.einsum("kgd,ktd->kgt", q.view(keys.shape[0], groups, -1), keys) * q.shape[-1] ** -0.5
        probs = torch.softmax(scores, dim=-1)
        image = torch.zeros(self.cache.length, dtype=torch.bool, device=self.device)
        for a, b in spans:
            image[a:b] = True
        return float(probs[..., image].sum(-1).mean())

    @torch.no_grad()
    def prepare(self, max_tree_size: int, capture: Capture = Capture()) -> int:
        """Graph mode: capture every verification step a run can use before anything is timed.

        One graph per (tree-size bucket up to ``max_tree_size``, KV-view bucket up to the cache
        capacity). Returns the number of graphs captured. Other modes: nothing to do.
        """
        if self._steps is None or self._steps.mode != "graph":
            return 0
        top = bucket(max_tree_size, TREE_BUCKETS)
        count = 0
        for nb in (b for b in TREE_BUCKETS if b <= top):
            for lb in range(round_up(nb, LEN_STEP), self.cache.capacity + 1, LEN_STEP):
                step = self._steps.get(
                    (nb, lb, capture), lambda nb=nb, lb=lb: self._verify_step(nb, lb, capture)
                )
                host = step.host["packed"]
                host.zero_()
                host[2 * nb + 1 :].view(nb, nb).diagonal()[:] = 1
                step.inputs["packed"].copy_(host)
                if step.graph is None:
                    self._steps.capture(step)
                    count += 1
        self.cache.reset()  # captures wrote scratch entries; nothing is committed
        return count

    @property
    def capture_time_s(self) -> float:
        return self._steps.capture_time_s if self._steps is not None else 0.0

    def reserve(self, tokens: int) -> None:
        """Make room for ``tokens`` cache entries (prompt + output + one tree, padded to its bucket)."""
        pad = TREE_BUCKETS[-1] if self._steps is not None else 0
        if self.cache.ensure_capacity(round_up(tokens + pad, LEN_STEP)) and self._steps is not None:
            self._steps.clear()  # captured steps point at the old buffers

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.embed_tokens(ids)

    def lm_head(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.lm_head_module(hidden)

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
            hidden=self._select_hidden(out, capture),
            inputs_embeds=embeds[0] if (capture.embeds and embeds is not None) else None,
        )

    @torch.no_grad()
    def forward_tree(self, tree: DraftTree, capture: Capture = Capture()) -> ForwardOutput:
        """Verify the tree's nodes, placed after the cache, in one forward (KV written, not committed)."""
        if self._steps is not None:
            return self._forward_tree_static(tree, capture)
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
            logits=self.lm_head(out.last_hidden_state[0]), hidden=self._select_hidden(out, capture)
        )

    def _forward_tree_static(self, tree: DraftTree, capture: Capture) -> ForwardOutput:
        n, start = len(tree), self.cache.length
        n_bucket = bucket(n, TREE_BUCKETS)
        len_bucket = round_up(start + n_bucket, LEN_STEP)
        if len_bucket > self.cache.capacity:
            raise RuntimeError(f"KV view {len_bucket} exceeds capacity {self.cache.capacity}; call reserve()")
        step = self._steps.get(
            (n_bucket, len_bucket, capture), lambda: self._verify_step(n_bucket, len_bucket, capture)
        )
        host = step.host["packed"]
        host.zero_()
        host[:n] = torch.tensor(tree.tokens, dtype=torch.int32)
        host[n_bucket : n_bucket + n] = torch.tensor(tree.depths(), dtype=torch.int32)
        host[2 * n_bucket] = start
        anc = host[2 * n_bucket + 1 :].view(n_bucket, n_bucket)
        anc[:n, :n] = tree.ancestor_mask()
        anc.diagonal()[n:] = 1  # padding nodes see the prefix and themselves only
        step.inputs["packed"].copy_(host, non_blocking=True)
        out = self._steps.run(step)
        return ForwardOutput(
            logits=out["logits"][:n],
            hidden={k: v[:n] for k, v in out["hidden"].items()},
            argmax=out["argmax"][:n],
        )

    def _verify_step(self, n_bucket: int, len_bucket: int, capture: Capture) -> Step:
        """A fixed-shape verification step: all per-round data arrives in one packed int32 buffer."""
        dev, nb = self.device, n_bucket
        packed = torch.zeros(2 * nb + 1 + nb * nb, dtype=torch.int32, device=dev)
        host = torch.zeros(packed.shape, dtype=torch.int32, pin_memory=dev.type == "cuda")
        arange_n = torch.arange(nb, device=dev)
        arange_l = torch.arange(len_bucket, device=dev)
        zero = torch.zeros((), dtype=self.dtype, device=dev)

        def fn() -> dict[str, Any]:
            ids = packed[:nb].long()
            depth = packed[nb : 2 * nb].long()
            start = packed[2 * nb].long()
            anc = packed[2 * nb + 1 :].view(nb, nb).bool()
            self.cache.set_write_index(start + arange_n, len_bucket)
            rel = arange_l - start
            in_tree = (rel >= 0) & (rel < nb)
            visible = (arange_l < start)[None, :] | (anc[:, rel.clamp(0, nb - 1)] & in_tree[None, :])
            out = self.language_model(
                inputs_embeds=self.embed(ids)[None],
                position_ids=self.position_ids(start + depth),
                attention_mask=torch.where(visible, zero, self._neg)[None, None],
                past_key_values=self.cache,
                use_cache=True,
                output_hidden_states=bool(capture.hidden),
            )
            logits = self.lm_head(out.last_hidden_state[0])
            return {
                "logits": logits,
                "argmax": logits.argmax(-1),
                "hidden": self._select_hidden(out, capture),
            }

        return Step(inputs={"packed": packed}, fn=fn, host={"packed": host})

    def commit(self, n_new: int, keep: Sequence[int] | None = None) -> None:
        self.cache.commit(n_new, keep)

    def tree_attention_mask(self, ancestor_mask: torch.Tensor, start: int) -> torch.Tensor:
        """Additive ``[1, 1, n, start + n]`` mask: whole prefix visible, tree nodes see ancestors only."""
        n = ancestor_mask.shape[0]
        mask = torch.zeros((1, 1, n, start + n), dtype=self.dtype, device=self.device)
        mask[0, 0, :, start:] = torch.where(
            ancestor_mask.to(self.device), torch.zeros((), dtype=self.dtype, device=self.device), self._neg
        )
        return mask

    def _select_hidden(self, out: Any, capture: Capture) -> dict[int, torch.Tensor]:
        if not capture.hidden:
            return {}
        states = out.hidden_states
        return {i: states[i][0] for i in capture.hidden}

    # ---------------------------------------------------- family hooks
    def position_ids(self, positions: torch.Tensor) -> torch.Tensor:
        """Position ids for new tokens at absolute (1-D) sequence positions ``positions``."""
        return positions[None]

    def _before_prefill(self) -> None:
        """Family hook: clear per-prompt state before the model's own prefill."""

    def _after_prefill(self, position_ids: torch.Tensor | None) -> None:
        """Family hook: read per-prompt state (e.g. Qwen's rope offset) after prefill."""
