"""The task index: every task and group YAML of the built-in folder and of the user's include paths.

Indexing parses and checks every file (keys, types, names, group members) but imports no user
code and reads no data; that happens in `TaskManager.load` / `Task.samples`.
"""

from __future__ import annotations

import fnmatch
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmspec.registry import did_you_mean
from mmspec.tasks.data import resolve_dataset_root
from mmspec.tasks.errors import TaskError
from mmspec.tasks.schema import validate_group, validate_task
from mmspec.tasks.task import Task
from mmspec.tasks.yaml_loader import load_config

log = logging.getLogger(__name__)

BUILTIN_DIR = Path(__file__).resolve().parent


@dataclass
class _Entry:
    """A task or group definition and where it came from."""

    name: str
    source: Path
    folder: int  # index in the searched folders: built-in 0, then the include paths in order
    config: dict[str, Any] = field(repr=False)
    origins: dict[str, Path] = field(repr=False)
    members: list[str] = field(default_factory=list)  # groups and tags only


class TaskManager:
    """Finds tasks and groups by name: `*.yaml` under the built-in folder, then each include path.

    Files whose name does not end in `.yaml` (like `_mmspec_template_yaml`) are include-only
    templates. A name defined twice inside one folder is an error; a later folder (an include
    path) may override an earlier one's task or group, with a warning.

    A broken file under an include path (invalid YAML, unknown key, a group listing an unknown
    task ...) does not stop the others: it is logged once, listed in `problems`, and a request
    for a name it would have defined fails with its error (or, for a name it cannot be tied to,
    with the list of files to fix). Problems in the built-in tasks are errors.
    """

    def __init__(self, include_paths: list[str | Path] | None = None) -> None:
        self._tasks: dict[str, _Entry] = {}
        self._groups: dict[str, _Entry] = {}
        self._broken: dict[str, str] = {}  # name -> why it cannot be used
        self.problems: dict[Path, str] = {}  # include-path file -> its error
        folders = [BUILTIN_DIR, *(Path(p).expanduser().resolve() for p in include_paths or [])]
        self._roots = [f if f.is_dir() else f.parent for f in folders]  # where `include:` may point
        for i, folder in enumerate(folders):
            for path in _yaml_files(folder):
                try:
                    self._index(path, i)
                except TaskError as exc:
                    if i == 0:
                        raise
                    self._problem(path, str(exc))
        self._tags = self._collect_tags()
        self._check_members()

    def _problem(self, path: Path, message: str, name: str | None = None) -> None:
        """Record a broken include-path file (and the name it makes unusable); warn once."""
        self.problems[path] = message
        if name is not None:
            self._broken[name] = message
        log.warning("skipping a task file: %s", message)

    # ------------------------------------------------------------------ index
    def _index(self, path: Path, folder: int) -> None:
        config, origins = load_config(path, self._roots)
        is_group = isinstance(config.get("task"), list)
        name = config.get("group") if is_group else config.get("task")
        try:
            if is_group:
                validate_group(config, origins, path)
            elif "task" in config:
                validate_task(config, origins, path)
            else:
                raise TaskError(
                    f"{path}: neither a task (`task: name`) nor a group (`group: name` + `task: [...]`)"
                )
        except TaskError as exc:
            if folder == 0 or not isinstance(name, str):
                raise
            self._problem(path, str(exc), name)  # a request for `name` gets this error
            return
        if is_group:
            self._add(
                self._groups, _Entry(name, path, folder, config, origins, list(config["task"])), "group"
            )
        else:
            self._add(self._tasks, _Entry(name, path, folder, config, origins), "task")

    def _add(self, table: dict[str, _Entry], entry: _Entry, kind: str) -> None:
        other = self._tasks.get(entry.name) or self._groups.get(entry.name)
        if other is None:
            table[entry.name] = entry
            return
        if entry.name not in table or other.folder == entry.folder:
            message = f"{kind} name {entry.name!r} is defined twice: in {other.source} and in {entry.source}"
            if entry.folder == 0:
                raise TaskError(message)
            self._tasks.pop(entry.name, None)
            self._groups.pop(entry.name, None)
            self._problem(entry.source, message, entry.name)
            return
        log.warning("%s %r from %s overrides the one in %s", kind, entry.name, entry.source, other.source)
        table[entry.name] = entry

    def _collect_tags(self) -> dict[str, list[str]]:
        """`tag:` / `group:` membership declared inside task files (lm-eval `tag` convention)."""
        tags: dict[str, list[str]] = {}
        for name, entry in self._tasks.items():
            for key in ("tag", "group"):
                value = entry.config.get(key, [])
                for tag in [value] if isinstance(value, str) else value:
                    if tag in self._tasks or tag in self._groups:
                        message = (
                            f"{entry.origins[key]}: `{key}: {tag}` reuses the name of a task or group file"
                        )
                        if entry.folder == 0:
                            raise TaskError(message)
                        self._problem(entry.source, message)
                        continue
                    tags.setdefault(tag, []).append(name)
        return tags

    def _check_members(self) -> None:
        """A group listing an unknown name is unusable (an error for built-in groups)."""
        changed = True
        while changed:  # dropping a group can break a group that lists it
            changed = False
            for entry in list(self._groups.values()):
                for member in entry.members:
                    if member not in self._tasks and member not in self._groups and member not in self._tags:
                        message = f"{entry.source}: group {entry.name!r} lists {member!r}, {self._unknown(member, problems=False)}"
                        if entry.folder == 0:
                            raise TaskError(message)
                        del self._groups[entry.name]
                        self._problem(entry.source, message, entry.name)
                        changed = True
                        break

    def _unknown(self, name: str, problems: bool = True) -> str:
        """The tail of an unknown-name error: close matches, and the include-path files to fix."""
        text = (
            f"which is not a known task or group{did_you_mean(name, self.task_names() + self.group_names())}."
        )
        if not problems:
            return text
        if len(self.problems) == 1:
            text += (
                f" A task file under --include_path could not be read: {next(iter(self.problems.values()))}."
            )
        elif self.problems:
            files = ", ".join(str(p) for p in self.problems)
            text += f" These task files could not be read (see the warnings above): {files}."
        return text + " Run `mmspec-harness --list tasks` to see them all."

    # ------------------------------------------------------------------ queries
    def task_names(self) -> list[str]:
        """All task names, sorted."""
        return sorted(self._tasks)

    def group_names(self) -> list[str]:
        """All group names (group files and tags), sorted."""
        return sorted({*self._groups, *self._tags})

    def resolve(self, names: list[str]) -> list[str]:
        """Task names in request order, groups expanded (nested ok), duplicates dropped.

        A name with `*`, `?` or `[` is a pattern over task names (`mmspec_testmini_*`).
        """
        out: dict[str, None] = {}
        for name in names:
            self._expand(name, (), out)
        return list(out)

    def _expand(self, name: str, chain: tuple[str, ...], out: dict[str, None]) -> None:
        if name in self._tasks:
            out[name] = None
        elif name in self._groups or name in self._tags:
            if name in chain:
                raise TaskError(f"group cycle: {' -> '.join((*chain, name))} ({self._groups[name].source})")
            members = self._groups[name].members if name in self._groups else self._tags[name]
            for member in members:
                self._expand(member, (*chain, name), out)
        elif any(c in name for c in "*?["):
            matches = fnmatch.filter(self.task_names(), name)
            if not matches:
                raise TaskError(
                    f"no task matches {name!r}. Run `mmspec-harness --list tasks` to see them all."
                )
            out.update(dict.fromkeys(matches))
        elif name in self._broken:
            raise TaskError(f"{name!r} cannot be used: {self._broken[name]}")
        else:
            raise TaskError(f"unknown task {name!r}, {self._unknown(name)}")

    def load(self, name: str, dataset_root: str | Path | None = None) -> Task:
        """The task `name`; `{{ dataset_root }}` is `dataset_root`, else `$MMSPEC_ROOT`, else `./dataset/MMSpec`."""
        entry = self._tasks.get(name)
        if entry is None:
            if name in self._groups or name in self._tags:
                raise TaskError(
                    f"{name!r} is a group; expand it with TaskManager.resolve() and load each task"
                )
            if name in self._broken:
                raise TaskError(f"{name!r} cannot be used: {self._broken[name]}")
            raise TaskError(f"unknown task {name!r}, {self._unknown(name)}")
        return Task(name, entry.config, entry.origins, entry.source, resolve_dataset_root(dataset_root))


def _yaml_files(folder: Path) -> list[Path]:
    """`*.yaml` under `folder`, recursively, in a stable order (a single `.yaml` file is allowed too)."""
    if folder.is_file() and folder.suffix == ".yaml":
        return [folder]
    if not folder.is_dir():
        raise TaskError(f"include path {folder} is not a folder or a .yaml file")
    return sorted(folder.rglob("*.yaml"))
