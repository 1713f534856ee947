"""Speculative methods (drafters), registered by their ``--spec`` name.

The table below is static on purpose: ``--list specs``, name checks and ``--spec all`` read it
without importing any method module (and so without torch); a method's module is imported only
when it runs. ``tests/test_harness.py`` checks that each summary equals the class's ``paper``.
"""

from __future__ import annotations

from dataclasses import dataclass

from mmspec.registry import load_object, unknown


@dataclass(frozen=True)
class SpecEntry:
    """Where a method lives and what the harness needs to know about it before importing it."""

    target: str  # "module:Class"
    summary: str = ""  # one line for --list specs (the class's `paper`)
    draft: str | None = None  # checkpoint family of a draft-model method (its default-draft table key)
    gate: bool = False  # enables the target's attention tap (ViSkip): runs last in a multi-method run
    benchmark_aid: bool = False  # not a method of its own (oracle): left out of `--spec all`


_VSKIP = "ViSkip gate (MMSpec, arXiv 2603.14989) over "

#: ``--spec`` name -> entry (the module is imported only when used)
SPECS: dict[str, SpecEntry] = {
    "baseline": SpecEntry("mmspec.methods.baseline:Baseline",
                          "autoregressive decoding (reference for speedups and the lossless check)"),
    "oracle": SpecEntry("mmspec.methods.oracle:Oracle",
                        "benchmark aid: drafts the reference output with k correct tokens per round",
                        benchmark_aid=True),
    "pld": SpecEntry("mmspec.methods.pld:PromptLookup",
                     'Saxena 2023, "Prompt Lookup Decoding" (github.com/apoorvumang/prompt-lookup-decoding)'),
    "lookahead": SpecEntry("mmspec.methods.lookahead:Lookahead",
                           "Zhao et al. 2024, Lookahead: An Inference Acceleration Framework for Large "
                           "Language Model with Lossless Generation Accuracy (KDD 2024; "
                           "alipay/PainlessInferenceAcceleration)"),
    "recycling": SpecEntry("mmspec.methods.recycling:TokenRecycling",
                           "Luo et al. 2024, Turning Trash into Treasure: Accelerating Inference of Large "
                           "Language Models with Token Recycling (arXiv 2408.08696)"),
    "sam": SpecEntry("mmspec.methods.sam:SuffixAutomaton",
                     'Hu et al. 2024, "SAM Decoding: Speculative Decoding via Suffix Automaton" '
                     "(arXiv 2411.10666)"),
    "medusa": SpecEntry("mmspec.methods.medusa:Medusa", "Medusa (Cai et al., ICML 2024, arXiv 2401.10774)",
                        draft="medusa"),
    "eagle": SpecEntry("mmspec.methods.eagle:Eagle", "EAGLE (Li et al., ICML 2024, arXiv 2401.15077)",
                       draft="eagle"),
    "eagle2": SpecEntry("mmspec.methods.eagle:Eagle2", "EAGLE-2 (Li et al., EMNLP 2024, arXiv 2406.16858)",
                        draft="eagle"),
    "eagle3": SpecEntry("mmspec.methods.eagle:Eagle3", "EAGLE-3 (Li et al., 2025, arXiv 2503.01840)",
                        draft="eagle3"),
    "msd": SpecEntry("mmspec.methods.msd:MSD", "MSD (Lin et al., 2025, arXiv 2505.14260)", draft="msd"),
    "vispec": SpecEntry("mmspec.methods.vispec:ViSpec", "ViSpec (Kang et al., NeurIPS 2025, arXiv 2509.15235)",
                        draft="vispec"),
    "vispec_vskip": SpecEntry("mmspec.methods.viskip:ViSpecSkip", _VSKIP + "vispec", draft="vispec", gate=True),
    "msd_vskip": SpecEntry("mmspec.methods.viskip:MSDSkip", _VSKIP + "msd", draft="msd", gate=True),
    "sam_vskip": SpecEntry("mmspec.methods.viskip:SAMSkip", _VSKIP + "sam", gate=True),
}  # fmt: skip


def spec_entry(name: str) -> SpecEntry:
    """The table entry of ``name`` (close matches suggested on a typo); imports nothing."""
    if name not in SPECS:
        raise unknown("spec", name, SPECS, "specs")
    return SPECS[name]


def get_spec(name: str) -> type:
    """The drafter class registered under ``name`` (imports its module)."""
    return load_object(spec_entry(name).target)


def register_spec(name: str, target: str, summary: str = "", draft: str | None = None) -> None:
    """Plug-in hook: register ``"module:Class"`` under ``name`` (one Python module per method)."""
    SPECS[name] = SpecEntry(target, summary or f"plug-in method {target}", draft=draft)
