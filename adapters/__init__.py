"""Model adapters (one per VLM family) and the ``--model`` registry."""

from mmspec.adapters.registry import MODELS, get_model_entry, load_model, model_names, resolve_model_args

__all__ = ["MODELS", "get_model_entry", "load_model", "model_names", "resolve_model_args"]
