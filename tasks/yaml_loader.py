"""Safe YAML loading for task files: `!function` tags, `include:` overlays, errors that name the file.

Only `yaml.SafeLoader` plus one tag is used, so a task file can never construct arbitrary Python
objects; code runs only through an explicit `!function module.fn` reference, and only when a task
that uses it is loaded (indexing never imports user code).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from mmspec.tasks.errors import TaskError

_FUNCTION_REF = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$")
_LOCAL_MODULES: dict[Path, ModuleType] = {}


@dataclass(frozen=True)
class FunctionRef:
    """A `!function module.fn` reference, resolved lazily next to the YAML file that wrote it."""

    ref: str
    yaml_file: Path

    def __str__(self) -> str:
        return f"!function {self.ref}"

    @property
    def local_file(self) -> Path:
        """Where `module` would be as a file next to the YAML (`a.b.fn` -> `<dir>/a/b.py`)."""
        module = self.ref.rsplit(".", 1)[0]
        return self.yaml_file.parent.joinpath(*module.split(".")).with_suffix(".py")

    def resolve(self) -> Callable[..., Any]:
        """The callable: from the `.py` file next to the YAML first, else an importable module."""
        module_name, fn_name = self.ref.rsplit(".", 1)
        where = f"{self.yaml_file}: {self}"
        if self.local_file.is_file():
            module = _load_local_module(self.local_file, where)
        else:
            try:
                module = importlib.import_module(module_name)
            except ImportError as exc:
                raise TaskError(
                    f"{where}: no {self.local_file.name} next to the YAML file ({self.yaml_file.parent}) "
                    f"and no importable module {module_name!r} ({exc})"
                ) from exc
        fn = getattr(module, fn_name, None)
        if not callable(fn):
            raise TaskError(f"{where}: module {module.__name__!r} has no function {fn_name!r}")
        return fn

    def identity(self) -> dict[str, str]:
        """What goes into a task fingerprint: the reference and, for a local file, its content hash."""
        out = {"function": self.ref}
        if self.local_file.is_file():
            out["sha256"] = hashlib.sha256(self.local_file.read_bytes()).hexdigest()
        return out


def _load_local_module(path: Path, where: str) -> ModuleType:
    """Import a `.py` file by path once per process, under a name unique to that path."""
    path = path.resolve()
    if path in _LOCAL_MODULES:
        return _LOCAL_MODULES[path]
    name = f"mmspec_task_code_{hashlib.sha256(str(path).encode()).hexdigest()[:12]}_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise TaskError(f"{where}: cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise TaskError(f"{where}: importing {path} failed: {type(exc).__name__}: {exc}") from exc
    _LOCAL_MODULES[path] = module
    return module


class TaskYamlLoader(yaml.SafeLoader):
    """`SafeLoader` + `!function`; duplicate mapping keys are an error instead of last-one-wins."""

    yaml_file: Path

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        self.flatten_mapping(node)
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _construct_function(loader: TaskYamlLoader, node: yaml.Node) -> FunctionRef:
    ref = loader.construct_scalar(node)
    if not isinstance(ref, str) or not _FUNCTION_REF.match(ref):
        raise yaml.constructor.ConstructorError(
            None, None, f"!function needs `module.function`, got {ref!r}", node.start_mark
        )
    return FunctionRef(ref, loader.yaml_file)


TaskYamlLoader.add_constructor("!function", _construct_function)


def read_yaml(path: Path) -> dict[str, Any]:
    """Parse one YAML file into a mapping; any problem is a `TaskError` naming the file (and line)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TaskError(f"{path}: cannot read task file ({exc.strerror or exc})") from exc
    loader = TaskYamlLoader(text)
    loader.yaml_file = path
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        raise TaskError(f"{path}{line}: invalid YAML: {problem}") from exc
    except yaml.YAMLError as exc:
        raise TaskError(f"{path}: invalid YAML: {exc}") from exc
    finally:
        loader.dispose()
    if data is None:
        raise TaskError(f"{path}: the file is empty")
    if not isinstance(data, dict):
        raise TaskError(f"{path}: a task file must hold a mapping of keys, got {type(data).__name__}")
    return data


def load_config(path: Path, roots: Sequence[Path] = ()) -> tuple[dict[str, Any], dict[str, Path]]:
    """The file with its `include:` chain applied, and for every key the file that set it.

    The including file wins; when both hold a mapping under one key, the two merge shallowly
    (so a task can change one generation setting of its template). An `include:` must stay
    inside `roots` (the task folders being indexed; default: the file's own folder), symlinks
    resolved, so a task file cannot pull in files from elsewhere on the machine.
    """
    path = path.resolve()
    roots = tuple(Path(r).resolve() for r in roots) or (path.parent,)
    return _load(path, (), roots)


def _load(
    path: Path, chain: tuple[Path, ...], roots: tuple[Path, ...]
) -> tuple[dict[str, Any], dict[str, Path]]:
    if path in chain:
        cycle = " -> ".join(str(p) for p in (*chain, path))
        raise TaskError(f"{chain[-1]}: include cycle: {cycle}")
    data = read_yaml(path)
    include = data.pop("include", None)
    if include is None:
        return data, dict.fromkeys(data, path)
    if not isinstance(include, str):
        raise TaskError(f"{path}: `include` must be a file path, got {include!r}")
    base_path = (path.parent / include).resolve()
    if not any(base_path.is_relative_to(root) for root in roots):
        raise TaskError(
            f"{path}: `include: {include}` is outside the task folders ({', '.join(map(str, roots))}); "
            "copy the file into the task folder"
        )
    if not base_path.is_file():
        raise TaskError(f"{path}: `include: {include}` not found (looked at {base_path})")
    merged, origins = _load(base_path, (*chain, path), roots)
    for key, value in data.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
        origins[key] = path
    return merged, origins
