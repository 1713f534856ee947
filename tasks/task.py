"""A loaded task: resolved config, validated samples, and the chat messages of each turn."""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from jinja2 import StrictUndefined

from mmspec.hashing import file_sha256
from mmspec.registry import did_you_mean
from mmspec.tasks.data import GET_MMSPEC, DataRoot, load_data, local_data_files
from mmspec.tasks.errors import TaskError
from mmspec.tasks.generated import ensure_generated, generated_dir
from mmspec.tasks.messages import mmspec_chat
from mmspec.tasks.sample import Sample
from mmspec.tasks.schema import TASK_DEFAULTS
from mmspec.tasks.templating import compile_template, render, render_value
from mmspec.tasks.yaml_loader import FunctionRef

log = logging.getLogger(__name__)

TEMPLATED_KEYS = ("dataset_path", "dataset_kwargs", "image_dir", "image_roots")
TEXT_BUILDERS = ("json", "csv", "text")
_NO_SPLIT = "`split` is undefined: set `mmspec_split` in the task file"
_NO_GENERATED = "`generated_dir` is undefined: set `generated_dataset` in the task file"


class Task:
    """One task of a run. Built by `TaskManager.load`; data is read on the first `samples()`."""

    def __init__(
        self, name: str, raw_config: dict[str, Any], origins: dict[str, Path], source: Path, root: DataRoot
    ) -> None:
        self.name = name
        self.source = source
        self.dataset_root = root
        self._origins = origins
        self._raw = raw_config
        self.config = self._resolve()
        text = self.config["doc_to_text"]
        self._doc_to_text = compile_template(text, self._where("doc_to_text")) if text is not None else None
        builder = self.config["doc_to_messages"]
        self._builder = builder.resolve() if isinstance(builder, FunctionRef) else None
        process = self.config.get("process_docs")
        self._process_docs = process.resolve() if process is not None else None
        self._samples: list[Sample] | None = None
        self._data_label = ""
        self._data_identity: Any = None
        self._fingerprint: str | None = None

    def __repr__(self) -> str:
        return f"Task({self.name!r}, source={str(self.source)!r})"

    def _where(self, key: str) -> str:
        return f"{self._origins.get(key, self.source)}: `{key}`"

    def _resolve(self) -> dict[str, Any]:
        """Defaults filled in and the path templates rendered (`dataset_root`, `split`, `task_dir`)."""
        config = copy.deepcopy({"task": self.name, **TASK_DEFAULTS, **self._raw})
        for key in TEMPLATED_KEYS:
            config[key] = render_value(
                config[key], self._variables(), self._origins.get(key, self.source), key
            )
        return config

    def _variables(self, dataset_root: str | None = None) -> dict[str, Any]:
        """What path templates may use; `split` is the task's `mmspec_split`."""
        split = self._raw.get("mmspec_split")
        generated = self._raw.get("generated_dataset")
        return {
            "dataset_root": dataset_root or str(self.dataset_root.path),
            "task_dir": str(self.source.parent),
            "split": split if split is not None else StrictUndefined(hint=_NO_SPLIT),
            "generated_dir": str(generated_dir(generated))
            if generated
            else StrictUndefined(hint=_NO_GENERATED),
        }

    # ------------------------------------------------------------------ settings
    @property
    def generation_kwargs(self) -> dict[str, Any]:
        """The task's generation settings (`max_new_tokens`, `temperature`, `do_sample`)."""
        gen = dict(self.config["generation_kwargs"])
        if "temperature" in gen:
            gen["temperature"] = float(gen["temperature"])
        return gen

    @property
    def fingerprint(self) -> str:
        """sha256 of the resolved config and the data files' identity (path, size, content hash).

        Two runs may share records only if this matches: editing the YAML, its `!function` code,
        or the data file, or pointing at another data root, changes it.
        """
        if self._fingerprint is None:
            self.samples()
            payload = {"task": self.name, "config": self.config, "data": self._data_identity}
            blob = json.dumps(
                payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_json
            )
            self._fingerprint = hashlib.sha256(blob.encode()).hexdigest()
        return self._fingerprint

    # ------------------------------------------------------------------ data
    def samples(self) -> list[Sample]:
        """The validated samples in data order (read once per `Task`)."""
        if self._samples is None:
            self._samples = self._make_samples(self._load_records())
        return list(self._samples)

    def _load_records(self) -> list[tuple[int, dict[str, Any]]]:
        """(1-based record number, record) pairs after `process_docs` and `filter`."""
        cfg = self.config
        if cfg["generated_dataset"]:
            ensure_generated(cfg["generated_dataset"])  # built-in generator: made once, cached
        files = local_data_files(cfg["dataset_path"], cfg["dataset_kwargs"])
        for f in files:
            if not f.is_file():
                raise TaskError(self._missing_file_message(f))
            if cfg["dataset_path"] in TEXT_BUILDERS:
                self._check_text_file(f)
        name = f" ({cfg['dataset_name']})" if cfg["dataset_name"] else ""
        self._data_label = ", ".join(str(f) for f in files) or f"dataset {cfg['dataset_path']!r}{name}"
        try:
            data = load_data(
                cfg["dataset_path"], cfg["dataset_name"], cfg["test_split"], cfg["dataset_kwargs"]
            )
        except Exception as exc:
            raise TaskError(
                f"task {self.name} ({self.source}): cannot load {self._data_label} "
                f"(split {cfg['test_split']!r}): {_explain(exc)}"
            ) from exc
        if self._process_docs is not None:
            try:
                data = self._process_docs(data)
            except Exception as exc:
                raise TaskError(
                    f"{self._where('process_docs')} failed on {self._data_label}: {type(exc).__name__}: {exc}"
                ) from exc
        records = data.to_list() if hasattr(data, "to_list") else list(data)
        self._data_identity = (
            [_file_identity(f) for f in files] if files else {"dataset": getattr(data, "_fingerprint", None)}
        )
        return self._apply_filter(list(enumerate(records, 1)))

    def _apply_filter(self, numbered: list[tuple[int, Any]]) -> list[tuple[int, Any]]:
        flt = self.config["filter"]
        if not flt:
            return numbered
        fields = {k for _, r in numbered if isinstance(r, dict) for k in r}
        for key in flt:
            if key not in fields:
                raise TaskError(
                    f"{self._where('filter')}: no record of {self._data_label} has a field {key!r}"
                    f"{did_you_mean(key, fields, n=1)}"
                )
        kept = [
            (n, r) for n, r in numbered if isinstance(r, dict) and all(r.get(k) == v for k, v in flt.items())
        ]
        if not kept:
            key = next(iter(flt))
            seen = sorted({str(r.get(key)) for _, r in numbered if isinstance(r, dict)})
            raise TaskError(
                f"{self._where('filter')}: {flt} matches no record of {self._data_label}; "
                f"values of {key!r} there: {', '.join(seen[:12])}"
            )
        return kept

    def _check_text_file(self, path: Path) -> None:
        """A local text data file is not empty and is UTF-8 throughout (else an error naming the line)."""
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise TaskError(
                f"{path}: cannot read the data file ({exc.strerror or exc}) [task {self.name}]"
            ) from exc
        if not data.strip():
            raise TaskError(f"{path}: the data file is empty [task {self.name}, {self.source}]")
        for lineno, line in enumerate(data.split(b"\n"), 1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise TaskError(
                    f"{path}:{lineno}: not valid UTF-8 ({exc.reason} at byte {exc.start + 1} of the line); "
                    f"save the file as UTF-8 [task {self.name}]"
                ) from None

    def _missing_file_message(self, path: Path) -> str:
        """Where we looked and, for a `{{ dataset_root }}` task, how to point it elsewhere."""
        msg = f"task {self.name}: data file not found: {path}"
        raw_kwargs = self._raw.get("dataset_kwargs", {})
        if "dataset_root" not in json.dumps(raw_kwargs, default=str):
            return f"{msg} (set by `dataset_kwargs` in {self._origins.get('dataset_kwargs', self.source)})"
        layout = [
            str(f)
            for f in local_data_files(self.config["dataset_path"], self._render_as("DIR", "dataset_kwargs"))
        ]
        if self.config["image_field"]:
            layout.append(f"{self._render_as('DIR', 'image_dir')}/<image files>")
        return (
            f"{msg} (dataset root {self.dataset_root.path}, from {self.dataset_root.origin}; "
            f"expected layout: {', '.join(layout)}). {GET_MMSPEC}"
        )

    def _render_as(self, dataset_root: str, key: str) -> Any:
        value = {**TASK_DEFAULTS, **self._raw}[key]
        return render_value(value, self._variables(dataset_root), self.source, key)

    def _make_samples(self, numbered: list[tuple[int, Any]]) -> list[Sample]:
        cfg = self.config
        id_field, turns_field = cfg["id_field"], cfg["turns_field"]
        image_dir = Path(cfg["image_dir"])
        seen: dict[str, int] = {}
        samples = []
        for n, doc in numbered:
            if not isinstance(doc, dict):
                raise self._record_error(n, None, f"is not a mapping: {doc!r:.80}")
            raw_id = doc.get(id_field)
            if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)) or str(raw_id).strip() == "":
                raise self._record_error(n, None, f"has no `{id_field}` (got {raw_id!r})")
            sid = str(raw_id)
            if sid in seen:
                raise self._record_error(n, sid, f"duplicate id (also record {seen[sid]})")
            seen[sid] = n
            turns = doc.get(turns_field)
            if not (
                isinstance(turns, list) and turns and all(isinstance(t, str) and t.strip() for t in turns)
            ):
                raise self._record_error(
                    n,
                    sid,
                    f"`{turns_field}` must be a non-empty list of non-empty strings, got {turns!r:.80}",
                )
            samples.append(
                Sample(
                    id=sid,
                    category=self._label(n, sid, doc, "category_field") or self.name,
                    subcategory=self._label(n, sid, doc, "subcategory_field"),
                    turns=list(turns),
                    doc=doc,
                    image_paths=self._image_paths(n, sid, doc, image_dir),
                    task=self.name,
                )
            )
        return samples

    def _record_error(self, n: int, sid: str | None, problem: str) -> TaskError:
        ident = f" (id {sid!r})" if sid is not None else ""
        return TaskError(f"{self._data_label}: record {n}{ident} {problem} [task {self.name}, {self.source}]")

    def _label(self, n: int, sid: str, doc: dict[str, Any], key: str) -> str | None:
        field = self.config[key]
        if field is None:
            return None
        value = doc.get(field)
        if value is None and key == "subcategory_field":
            return None
        if not isinstance(value, (str, int, float)) or isinstance(value, bool) or str(value) == "":
            raise self._record_error(n, sid, f"has no usable `{field}` ({key}), got {value!r}")
        return str(value)

    def _image_paths(self, n: int, sid: str, doc: dict[str, Any], image_dir: Path) -> list[Path]:
        """The record's image files, each inside the image folder or an `image_roots` folder.

        Data files may come from anyone: a name is refused when, taken lexically (`..` resolved,
        links not followed), it points outside those folders — e.g. an absolute path or `../`.
        """
        field = self.config["image_field"]
        if field is None:
            return []
        value = doc.get(field)
        names = value if isinstance(value, list) else [value]
        if not names or not all(isinstance(x, str) and x and "\0" not in x for x in names):
            raise self._record_error(
                n, sid, f"`{field}` must be an image file name or a list of them, got {value!r:.80}"
            )
        roots = [os.path.normpath(image_dir), *(os.path.normpath(r) for r in self.config["image_roots"])]
        paths = []
        for name in names:
            path = os.path.normpath(os.path.join(image_dir, name))  # an absolute `name` replaces image_dir
            if not any(_inside(path, root) for root in roots):
                raise self._record_error(
                    n, sid, f"image {name!r} is outside the image folder {image_dir} (absolute paths and `..` "
                    f"are refused; list other allowed folders in the task's `image_roots`)",
                )  # fmt: skip
            paths.append(Path(path))
        return paths

    # ------------------------------------------------------------------ checks
    def check(self, limit: int | None = None) -> None:
        """Everything a run needs, checked before a model loads: data, image folder, templates.

        Reads the samples (data file and record errors), requires the image folder and at least
        one of the images of the first ``limit`` samples (a wrong `--dataset_root` or a download
        without images), warns about the others that are missing (those samples will fail), and
        renders every turn of the first sample (template errors). Raises `TaskError`.
        """
        samples = self.samples()[:limit]
        if not samples:
            raise TaskError(f"task {self.name}: {self._data_label} holds no records [{self.source}]")
        if self.config["image_field"]:
            self._check_images(samples)
        self.preview(samples[0])

    def _check_images(self, samples: list[Sample]) -> None:
        image_dir = Path(self.config["image_dir"])
        hint = (
            GET_MMSPEC
            if "dataset_root" in json.dumps(self._raw.get("image_dir", ""), default=str)
            else (f"check `image_dir` in {self._origins.get('image_dir', self.source)}")
        )
        if not image_dir.is_dir():
            raise TaskError(f"task {self.name}: image folder not found: {image_dir}. {hint}")
        paths = [p for s in samples for p in s.image_paths]
        missing = [p for p in paths if not p.is_file()]
        if paths and len(missing) == len(paths):
            raise TaskError(
                f"task {self.name}: none of the {len(paths)} images is in {image_dir} (first: "
                f"{missing[0].name}). {hint}"
            )
        if missing:
            log.warning(
                "task %s: %d of %d image files are missing (first: %s); those samples will fail",
                self.name, len(missing), len(paths), missing[0],
            )  # fmt: skip

    def preview(self, sample: Sample) -> list[list[dict[str, Any]]]:
        """The messages of every turn of `sample`, earlier answers shown as `<answer to turn k>`.

        Renders the task's templates without a model (`--show_prompt`, and the check before a run).
        """
        history = [f"<answer to turn {k}>" for k in range(len(sample.turns))]
        return [self.build_messages(sample, i, history[:i]) for i in range(len(sample.turns))]

    # ------------------------------------------------------------------ prompts
    def build_messages(self, sample: Sample, turn_index: int, history: list[str]) -> list[dict[str, Any]]:
        """HF chat messages for `turn_index` of `sample`; `history[k]` is the answer given to turn k."""
        if not 0 <= turn_index < len(sample.turns):
            raise ValueError(
                f"sample {sample.id} has {len(sample.turns)} turn(s); turn_index {turn_index} is out of range"
            )
        if len(history) < turn_index:
            raise ValueError(
                f"turn {turn_index} of sample {sample.id} needs {turn_index} earlier answers, got {len(history)}"
            )
        past = list(history[:turn_index])
        if self._builder is None:
            texts = [self._user_text(sample, k) for k in range(turn_index + 1)]
            return mmspec_chat(self.config["system_prompt"], texts, past, len(sample.image_paths))
        where = f"{self._where('doc_to_messages')} (sample {sample.id}, turn {turn_index})"
        try:
            messages = self._builder(sample.doc, turn_index, past, self.config)
        except Exception as exc:
            raise TaskError(f"{where} failed: {type(exc).__name__}: {exc}") from exc
        if not isinstance(messages, list) or not all(isinstance(m, dict) and "role" in m for m in messages):
            raise TaskError(
                f"{where} must return a list of {{'role': ..., 'content': ...}} dicts, got {messages!r:.80}"
            )
        return messages

    def _user_text(self, sample: Sample, k: int) -> str:
        if self._doc_to_text is None:
            return sample.turns[k]
        where = f"{self._where('doc_to_text')} (sample {sample.id}, turn {k})"
        return render(self._doc_to_text, {"turn": sample.turns[k], "doc": sample.doc, "turn_index": k}, where)


def _inside(path: str, root: str) -> bool:
    """Lexically, ``path`` is ``root`` or below it (both normalised; links are not followed)."""
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:  # one absolute and one relative, or different drives
        return False


def _file_identity(path: Path) -> dict[str, Any]:
    return {"path": str(path.resolve()), "size": path.stat().st_size, "sha256": file_sha256(path)}


def _json(value: Any) -> Any:
    if isinstance(value, FunctionRef):
        return value.identity()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot fingerprint a {type(value).__name__}")


def _explain(exc: BaseException) -> str:
    """The messages along an exception chain (datasets wraps the useful parser error)."""
    parts: list[str] = []
    while exc is not None and len(parts) < 4:
        text = str(exc).strip() or type(exc).__name__
        if text not in parts:
            parts.append(text)
        exc = exc.__cause__ or exc.__context__
    return ": ".join(parts)
