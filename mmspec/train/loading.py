"""The target and a speculative method from command-line names, exactly as ``mmspec-harness`` loads them.

``--model NAME --model_args k=v,...`` goes through the adapters' registry (``load_model``) and
``--spec NAME --spec_args k=v,...`` through the methods' registry (``get_spec``), both parsed with
the harness's ``parse_kv``. The user mistakes these raise (an unknown name, key or value, a
checkpoint that cannot be loaded) become :class:`~mmspec.errors.UsageError`, so ``mmspec-train``
prints them as one line; anything else keeps its traceback.
"""

from __future__ import annotations

from typing import Any

from mmspec.errors import UsageError


def parse_args_text(text: str | dict[str, Any] | None, flag: str) -> dict[str, Any]:
    """``"a=1,b=x"`` (or an already parsed dict) -> dict, like the harness's ``--model_args``."""
    if isinstance(text, dict):
        return dict(text)
    from mmspec.cli import parse_kv

    try:
        return parse_kv(text, flag)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


def load_target(model: str, model_args: str | dict[str, Any] | None = None) -> Any:
    """The adapter of ``--model`` with ``--model_args`` (names and keys checked before any loading)."""
    from mmspec.adapters import load_model, resolve_model_args
    from mmspec.adapters.loading import AdapterError
    from mmspec.registry import UnknownNameError

    args = parse_args_text(model_args, "--model_args")
    try:
        resolve_model_args(model, args)
    except (UnknownNameError, ValueError) as exc:
        raise UsageError(str(exc)) from exc
    try:
        return load_model(model, args)
    except AdapterError as exc:
        raise UsageError(f"--model {model}: {exc}") from exc


def load_method(adapter: Any, spec: str, spec_args: str | dict[str, Any] | None = None) -> Any:
    """The drafter of ``--spec`` with ``--spec_args`` on ``adapter`` (e.g. ``checkpoint=DIR``)."""
    from mmspec.methods import get_spec
    from mmspec.methods.base import SpecArgError
    from mmspec.registry import UnknownNameError

    args = parse_args_text(spec_args, "--spec_args")
    try:
        return get_spec(spec)(adapter, **args)
    except (UnknownNameError, SpecArgError) as exc:
        raise UsageError(str(exc)) from exc
