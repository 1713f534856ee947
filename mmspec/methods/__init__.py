"""Speculative methods (drafters), registered by their ``--spec`` name."""

from __future__ import annotations

from mmspec.registry import load_object, unknown

#: ``--spec`` name -> "module:Class" (imported only when used)
SPECS: dict[str, str] = {
    "baseline": "mmspec.methods.baseline:Baseline",
    "oracle": "mmspec.methods.oracle:Oracle",
    "pld": "mmspec.methods.pld:PromptLookup",
    "lookahead": "mmspec.methods.lookahead:Lookahead",
    "recycling": "mmspec.methods.recycling:TokenRecycling",
    "sam": "mmspec.methods.sam:SuffixAutomaton",
    "medusa": "mmspec.methods.medusa:Medusa",
    "eagle": "mmspec.methods.eagle:Eagle",
    "eagle2": "mmspec.methods.eagle:Eagle2",
    "eagle3": "mmspec.methods.eagle:Eagle3",
    "msd": "mmspec.methods.msd:MSD",
    "vispec": "mmspec.methods.vispec:ViSpec",
    "vispec_vskip": "mmspec.methods.viskip:ViSpecSkip",
    "msd_vskip": "mmspec.methods.viskip:MSDSkip",
    "sam_vskip": "mmspec.methods.viskip:SAMSkip",
}


def spec_names() -> list[str]:
    return sorted(SPECS)


def get_spec(name: str) -> type:
    """The drafter class registered under ``name`` (close matches suggested on a typo)."""
    if name not in SPECS:
        raise unknown("spec", name, SPECS, "specs")
    return load_object(SPECS[name])


def register_spec(name: str, target: str) -> None:
    """Plug-in hook: register ``"module:Class"`` under ``name`` (one Python module per method)."""
    SPECS[name] = target
