"""Model adapters (one per VLM family) and the ``--model`` registry."""

from mmspec.adapters.registry import (
    MODELS,
    check_model,
    get_model_entry,
    load_model,
    resolve_model_args,
)

__all__ = ["MODELS", "check_model", "get_model_entry", "load_model", "resolve_model_args"]
