"""Typer's parameter coercion, without pydantic for the plain values the commands take.

Typer (0.2x) converts each parameter value of the command that runs through a pydantic
``TypeAdapter`` it builds at that moment: importing pydantic and building the adapters was about a
third of what ``indexer search`` spent beyond importing sqlalchemy and typer (bench/startup.py).
The values the commands take are mostly a string, a whole number, a decimal number or one of a few
choices, and converting those is one expression. :class:`PlainCoercionGroup` gives each
parameter of the command that runs a coercion that converts such a value itself and hands
everything else (a malformed or out-of-range number, a Path, any other type) to typer's own
coercion, built then: every result and every error message stays typer's (tests/test_startup.py
compares them), and pydantic is imported only when typer's coercion is needed.

This relies on two internals of typer: the lazily built ``_runtime_param`` of its parameters, and
``typer._coercion.build_runtime_param``. A typer without them (before pydantic coercion) is left
alone: its parameters have no ``_runtime_param``.
"""

from __future__ import annotations

import re
from typing import Any

from typer.core import TyperGroup

#: Values whose conversion by int() / float() is the one pydantic makes (short enough that neither
#: reaches a digit limit or an infinity); anything else goes to typer.
_WHOLE = re.compile(r"[0-9]{1,18}")
_DECIMAL = re.compile(r"[0-9]{1,15}(\.[0-9]{1,15})?")


class _NotPlain:
    """Marks a value this module leaves to typer."""


NOT_PLAIN = _NotPlain()


def plain_value(descriptor: Any, value: Any, ctx: Any) -> Any:
    """``value`` converted as typer would convert it for ``descriptor`` (typer's ``TypeDescriptor``),
    or NOT_PLAIN when the conversion is not one this module makes."""
    if value is None:
        return None
    info = descriptor.parameter_info
    if info.parser is not None or info.clamp:
        return NOT_PLAIN
    if descriptor.choices is not None:
        from typer._param_types import coerce_cli_choice

        try:
            return coerce_cli_choice(value, choices=descriptor.choices, case_sensitive=descriptor.case_sensitive, ctx=ctx)
        except ValueError:
            return NOT_PLAIN
    annotation = descriptor.annotation
    if annotation is str:
        return value if type(value) is str else NOT_PLAIN
    if annotation is int:
        number = value if type(value) is int else _parsed(value, _WHOLE, int)
    elif annotation is float:
        number = value if type(value) is float else _parsed(value, _DECIMAL, float)
    else:
        return NOT_PLAIN
    if number is NOT_PLAIN or (info.min is not None and number < info.min) or (info.max is not None and number > info.max):
        return NOT_PLAIN
    return number


def _parsed(value: Any, pattern: re.Pattern[str], kind: type) -> Any:
    return kind(value) if type(value) is str and pattern.fullmatch(value) else NOT_PLAIN


class PlainFirstCoercion:
    """A parameter's coercion: plain values here, the rest by typer's own (built on first need)."""

    def __init__(self) -> None:
        self._typers: Any = None

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        if not (param.multiple or param.nargs == -1):
            plain = plain_value(param.type_descriptor, value, ctx)
            if plain is not NOT_PLAIN:
                return plain
        if self._typers is None:
            from typer._coercion import build_runtime_param

            self._typers = build_runtime_param(param.type_descriptor)
        return self._typers.coerce(value, param=param, ctx=ctx)


class PlainCoercionGroup(TyperGroup):
    """A command group whose parameters, and its commands', coerce plain values without pydantic."""

    def get_params(self, ctx: Any) -> Any:
        params = super().get_params(ctx)
        _coerce_plainly(params)
        return params

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None and not isinstance(command, PlainCoercionGroup):
            # get_params adds the --help option, named after the context's help option names: the
            # command's context inherits this one's unless the command names its own.
            own_help_names = "help_option_names" in (command.context_settings or {})
            _coerce_plainly(command.params if own_help_names else command.get_params(ctx))
        return command


def _coerce_plainly(params: Any) -> None:
    for param in params:
        if getattr(param, "_runtime_param", False) is None:  # typer would build its own on first use
            param._runtime_param = PlainFirstCoercion()
