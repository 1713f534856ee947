"""The keys a task or group YAML may hold, their type checks and defaults.

Checked when the task folders are indexed, so a typo fails `--list tasks` and every run with a
message naming the file and the key instead of being silently ignored.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mmspec.registry import did_you_mean
from mmspec.tasks.errors import TaskError
from mmspec.tasks.yaml_loader import FunctionRef

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
BUILTIN_BUILDERS = ("mmspec_chat",)


def _str(v: Any) -> str | None:
    return None if isinstance(v, str) else "a string"


def _opt_str(v: Any) -> str | None:
    return None if v is None or isinstance(v, str) else "a string or null"


def _name(v: Any) -> str | None:
    return None if isinstance(v, str) and NAME_RE.match(v) else "a name of letters, digits, `_`, `.`, `-`"


def _names(v: Any) -> str | None:
    items = v if isinstance(v, list) else [v]
    ok = items and all(_name(x) is None for x in items)
    return None if ok else "a name or a list of names"


def _str_list(v: Any) -> str | None:
    ok = isinstance(v, list) and all(isinstance(x, str) and x for x in v)
    return None if ok else "a list of folder paths"


def _mapping(v: Any) -> str | None:
    return None if isinstance(v, dict) else "a mapping"


def _function(v: Any) -> str | None:
    return None if isinstance(v, FunctionRef) else "`!function module.fn`"


def _builder(v: Any) -> str | None:
    ok = isinstance(v, FunctionRef) or v in BUILTIN_BUILDERS
    return None if ok else f"one of {', '.join(BUILTIN_BUILDERS)} or `!function module.fn`"


def _generated(v: Any) -> str | None:
    from mmspec.tasks.generated import GENERATED

    return None if v in GENERATED else f"one of the built-in generated datasets: {', '.join(GENERATED)}"


def _filter(v: Any) -> str | None:
    ok = isinstance(v, dict) and all(
        isinstance(k, str) and (v_ is None or isinstance(v_, (str, int, float, bool))) for k, v_ in v.items()
    )
    return None if ok else "a mapping of field names to plain values (e.g. {topic: general vqa})"


def _positive_int(v: Any) -> str | None:
    return None if isinstance(v, int) and not isinstance(v, bool) and v >= 1 else "an integer >= 1"


def _non_negative(v: Any) -> str | None:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0
    return None if ok else "a number >= 0"


def _bool(v: Any) -> str | None:
    return None if isinstance(v, bool) else "true or false"


Check = Callable[[Any], str | None]

TASK_KEYS: dict[str, Check] = {
    "task": _name,
    "tag": _names,
    "group": _names,
    "dataset_path": _str,
    "dataset_name": _opt_str,
    "dataset_kwargs": _mapping,
    "test_split": _str,
    "mmspec_split": _str,
    "generated_dataset": _generated,
    "process_docs": _function,
    "filter": _filter,
    "id_field": _str,
    "turns_field": _str,
    "image_field": _opt_str,
    "image_dir": _str,
    "image_roots": _str_list,
    "category_field": _opt_str,
    "subcategory_field": _opt_str,
    "system_prompt": _opt_str,
    "doc_to_messages": _builder,
    "doc_to_text": _opt_str,
    "generation_kwargs": _mapping,
    "metadata": _mapping,
}
GROUP_KEYS: dict[str, Check] = {"group": _name, "task": _names, "metadata": _mapping}
GENERATION_KEYS: dict[str, Check] = {
    "max_new_tokens": _positive_int,
    "temperature": _non_negative,
    "do_sample": _bool,
}
#: lm-eval keys we refuse on purpose, with the reason.
REJECTED_KEYS: dict[str, str] = {
    "generation_kwargs.until": (
        "stop strings are not supported: a turn ends at the model's own stop tokens or at "
        "`max_new_tokens`, as in MMSpec's protocol; remove it"
    ),
}
REQUIRED_TASK_KEYS = ("dataset_path", "test_split")

# What a task gets for a key it does not set (resolved into `Task.config`).
TASK_DEFAULTS: dict[str, Any] = {
    "dataset_name": None,
    "generated_dataset": None,
    "dataset_kwargs": {},
    "filter": {},
    "id_field": "id",
    "turns_field": "turns",
    "image_field": None,
    "image_dir": "{{ task_dir }}",
    "image_roots": [],
    "category_field": None,
    "subcategory_field": None,
    "system_prompt": None,
    "doc_to_messages": "mmspec_chat",
    "doc_to_text": None,
    "generation_kwargs": {},
    "metadata": {},
}


def _check_keys(
    config: dict[str, Any], origins: dict[str, Path], source: Path, keys: dict[str, Check], prefix: str = ""
) -> None:
    for key, value in config.items():
        where = origins.get(key, source)
        if f"{prefix}{key}" in REJECTED_KEYS:
            raise TaskError(f"{where}: `{prefix}{key}`: {REJECTED_KEYS[prefix + key]}")
        if key not in keys:
            raise TaskError(
                f"{where}: unknown key `{prefix}{key}`{did_you_mean(str(key), keys, n=1)}; "
                f"known keys: {', '.join(keys)}"
            )
        expected = keys[key](value)
        if expected is not None:
            raise TaskError(f"{where}: `{prefix}{key}` must be {expected}, got {value!r}")


def validate_task(config: dict[str, Any], origins: dict[str, Path], source: Path) -> None:
    """Raise `TaskError` (naming the file that set the key) for unknown or mistyped keys."""
    _check_keys(config, origins, source, TASK_KEYS)
    gen = config.get("generation_kwargs", {})
    gen_origins = dict.fromkeys(gen, origins.get("generation_kwargs", source))
    _check_keys(gen, gen_origins, source, GENERATION_KEYS, prefix="generation_kwargs.")
    for key in REQUIRED_TASK_KEYS:
        if key not in config:
            raise TaskError(
                f"{source}: task {config['task']!r} has no `{key}` (set it here or in an include)"
            )


def validate_group(config: dict[str, Any], origins: dict[str, Path], source: Path) -> None:
    """Raise `TaskError` for a group file with unknown or mistyped keys."""
    _check_keys(config, origins, source, GROUP_KEYS)
    if "group" not in config:
        raise TaskError(f"{source}: a `task:` list makes this a group file, but it has no `group:` name")
