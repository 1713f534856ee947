"""Sandboxed Jinja2 rendering for task templates (`doc_to_text`, paths in `dataset_kwargs`, ...).

Task files may come from anyone, so templates run in Jinja2's immutable sandbox: no access to
dunder attributes or mutating methods, and an undefined variable is an error, not an empty string.
Output is bounded too: a rendered template may hold at most `MAX_TEMPLATE_CHARS` characters, and
the operations that could build a huge value in one step (`*`, `**`, `%`, `+`, padding filters
and string methods with large widths, `replace`) are checked before they run.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError, TemplateSyntaxError, Undefined, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from mmspec.tasks.errors import TaskError

#: Largest rendered template (and largest intermediate string or list), in characters / items.
MAX_TEMPLATE_CHARS = 1_000_000
#: width/precision of a %-format spec, and the spec part of a {}-format field
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-+ #0]*(\d*)(?:\.(\d+))?")
_BRACE_SPEC = re.compile(r"\{[^{}]*:([^{}]*)\}")


class TemplateTooLarge(SecurityError):
    """A template would produce more than `MAX_TEMPLATE_CHARS` characters."""


def _size(value: Any) -> int:
    return len(value) if isinstance(value, (str, bytes, list, tuple)) else 0


def _check_size(value: Any) -> Any:
    if _size(value) > MAX_TEMPLATE_CHARS:
        raise TemplateTooLarge(f"a value of {_size(value)} characters")
    return value


def _check_args(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Widths, counts and exponents larger than the output bound are refused before they run."""
    for arg in (*args, *kwargs.values()):
        if isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) > MAX_TEMPLATE_CHARS:
            raise TemplateTooLarge(f"an argument of {arg}")


def _check_widths(fmt: Any) -> None:
    """Format strings (`'%9999d'`, `'{:>9999}'`) whose width or precision exceeds the bound."""
    if not isinstance(fmt, str):
        return
    numbers = [n for m in _PERCENT_SPEC.finditer(fmt) for n in m.groups() if n]
    numbers += [n for spec in _BRACE_SPEC.findall(fmt) for n in re.findall(r"\d+", spec)]
    if any(len(n) > 7 or int(n) > MAX_TEMPLATE_CHARS for n in numbers):
        raise TemplateTooLarge("a format width")


def _checked(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A filter whose arguments and result are size-checked (keeps Jinja's pass_* markers)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _check_args(args, kwargs)
        if fn.__name__ == "do_replace" and len(args) >= 4:  # (eval_ctx, s, old, new[, count])
            _check_replace(*args[1:4])
        if fn.__name__ == "do_format" and args:
            _check_widths(args[0])
        return _check_size(fn(*args, **kwargs))

    return wrapper


def _check_replace(text: Any, old: Any, new: Any) -> None:
    if isinstance(text, str) and isinstance(old, str) and isinstance(new, str):
        grows = (len(new) - len(old)) * (text.count(old) if old else len(text) + 1)
        if len(text) + grows > MAX_TEMPLATE_CHARS:
            raise TemplateTooLarge("a replace() result")


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, plus size checks on the operations that can blow a value up."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.filters = {name: _checked(fn) for name, fn in self.filters.items()}

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            count = right if isinstance(right, int) else left if isinstance(left, int) else 1
            if max(_size(left), _size(right)) * abs(int(count)) > MAX_TEMPLATE_CHARS:
                raise TemplateTooLarge("a repetition")
        elif operator == "**":
            if (
                isinstance(right, (int, float))
                and abs(right) > 64
                and isinstance(left, (int, float))
                and abs(left) > 1
            ):
                raise TemplateTooLarge(f"a power {left} ** {right}")
        elif operator == "%" and isinstance(left, str):
            _check_widths(left)
        elif operator == "+" and _size(left) + _size(right) > MAX_TEMPLATE_CHARS:
            raise TemplateTooLarge("a concatenation")
        return _check_size(super().call_binop(context, operator, left, right))

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        _check_args(args, kwargs)
        owner = getattr(__obj, "__self__", None)
        name = getattr(__obj, "__name__", "")
        if isinstance(owner, str) and name in ("format", "format_map"):
            _check_widths(owner)
        if isinstance(owner, str) and name == "replace" and len(args) >= 2:
            _check_replace(owner, args[0], args[1])
        return _check_size(super().call(__context, __obj, *args, **kwargs))


_ENV = BoundedSandbox(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False)


def compile_template(source: str, where: str) -> Template:
    """Compile once at task load so a syntax error surfaces before any model is loaded."""
    try:
        return _ENV.from_string(source)
    except TemplateSyntaxError as exc:
        raise TaskError(f"{where}: invalid template (line {exc.lineno}): {exc.message}") from exc


def render(template: Template, variables: dict[str, Any], where: str) -> str:
    """Render with `variables`; sandbox violations and undefined names become a `TaskError`."""
    try:
        return _bounded_render(template, variables)
    except TemplateTooLarge as exc:
        raise TaskError(
            f"{where}: template output is larger than {MAX_TEMPLATE_CHARS} characters ({exc})"
        ) from exc
    except SecurityError as exc:
        raise TaskError(f"{where}: template blocked by the Jinja2 sandbox: {exc}") from exc
    except UndefinedError as exc:
        names = ", ".join(sorted(k for k, v in variables.items() if not isinstance(v, Undefined)))
        raise TaskError(f"{where}: template uses an undefined value: {exc} (available: {names})") from exc
    except (TemplateError, OverflowError, ArithmeticError, ValueError, TypeError) as exc:
        raise TaskError(f"{where}: template error: {type(exc).__name__}: {exc}") from exc


def _bounded_render(template: Template, variables: dict[str, Any]) -> str:
    """`template.render`, streamed, stopping once the output passes `MAX_TEMPLATE_CHARS`."""
    parts, total = [], 0
    for chunk in template.generate(**variables):
        total += len(chunk)
        if total > MAX_TEMPLATE_CHARS:
            raise TemplateTooLarge(f"more than {MAX_TEMPLATE_CHARS} characters rendered")
        parts.append(chunk)
    return "".join(parts)


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
