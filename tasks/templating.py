"""Sandboxed Jinja2 rendering for task templates (`doc_to_text`, paths in `dataset_kwargs`, ...).

Task files may come from anyone, so templates run in Jinja2's immutable sandbox: no access to
dunder attributes or mutating methods, and an undefined variable is an error, not an empty string.
"""

from __future__ import annotations

from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError, TemplateSyntaxError, Undefined, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from mmspec.tasks.errors import TaskError

_ENV = ImmutableSandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False)


def compile_template(source: str, where: str) -> Template:
    """Compile once at task load so a syntax error surfaces before any model is loaded."""
    try:
        return _ENV.from_string(source)
    except TemplateSyntaxError as exc:
        raise TaskError(f"{where}: invalid template (line {exc.lineno}): {exc.message}") from exc


def render(template: Template, variables: dict[str, Any], where: str) -> str:
    """Render with `variables`; sandbox violations and undefined names become a `TaskError`."""
    try:
        return template.render(**variables)
    except SecurityError as exc:
        raise TaskError(f"{where}: template blocked by the Jinja2 sandbox: {exc}") from exc
    except UndefinedError as exc:
        names = ", ".join(sorted(k for k, v in variables.items() if not isinstance(v, Undefined)))
        raise TaskError(f"{where}: template uses an undefined value: {exc} (available: {names})") from exc
    except TemplateError as exc:
        raise TaskError(f"{where}: template error: {exc}") from exc


def render_value(value: Any, variables: dict[str, Any], file: object, key: str) -> Any:
    """Render every string inside nested lists/mappings under `key` of `file`; other plain values pass."""
    where = f"{file}: `{key}`"
    if isinstance(value, str):
        return render(compile_template(value, where), variables, where) if "{" in value else value
    if isinstance(value, list):
        return [render_value(v, variables, file, key) for v in value]
    if isinstance(value, dict):
        return {k: render_value(v, variables, file, f"{key}.{k}") for k, v in value.items()}
    if value is None or isinstance(value, (int, float, bool)):
        return value
    raise TaskError(f"{where}: {value!s} is not allowed here (only plain strings, numbers, lists, mappings)")
