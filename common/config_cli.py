"""Command-line flags generated from the typed dataclass configs, so each option is declared once.

A config field is one flag. Its name is the field's (``max_episode_steps`` ->
``--max-episode-steps``) unless ``metadata["flag"]`` names it (a field whose bare name would
mean two things across commands, such as the TSDF's and the field grid's ``resolution``); its
help text, choices and default are the field's own (declare it with ``option``); its type
comes from the annotation: ``int``, ``float``, ``str`` and ``X | None`` take one value, a
``bool`` is a switch (``--x`` when it defaults to False, ``--no-x`` when it defaults to True),
``list[X]`` / ``tuple[X, ...]`` take one or more values and ``dict[str, Any]`` collects
``KEY=VALUE`` pairs (values read as JSON). ``metadata["parse"]`` checks a value while the
command line is parsed, so a malformed value fails before any stage runs.

A command exposes configs with ``add_config`` (which fields, which are positional) and gets the
typed config back from the parsed arguments with ``make_config``, which runs the config's own
validation (``__post_init__``, ``validate()``); its project errors end ``driveenv`` with one line.

Why not tyro, which nerfstudio uses: tried, and it builds the whole parser itself (its own
parser class and boxed help, sub-commands from ``Union`` types, nested configs as
``--env.image-size``), so it cannot add a config's fields to the existing argparse sub-commands
with their examples, positional arguments and README spellings; this module is the small
dataclass-to-argparse layer those commands need.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from common.errors import DriveEnvError

_SCALARS = (int, float, str)


def option(
    default: Any = dataclasses.MISSING,
    help: str = "",
    *,
    factory: Callable[[], Any] | Any = dataclasses.MISSING,
    choices: Iterable[str] | None = None,
    flag: str | None = None,
    parse: Callable[[str], Any] | None = None,
    metavar: str | None = None,
) -> Any:
    """A dataclass field that carries its command-line help (and optionally choices, flag name,
    a parse-time check and a metavar); without a default it is a required option."""
    metadata = {"help": help, "choices": tuple(choices) if choices else None}
    metadata.update(flag=flag, parse=parse, metavar=metavar)
    return dataclasses.field(default=default, default_factory=factory, metadata=metadata)


def flag_name(field: dataclasses.Field) -> str:
    """``--max-episode-steps`` for ``max_episode_steps``, or the field's declared flag."""
    return "--" + (field.metadata.get("flag") or field.name.replace("_", "-"))


def config_fields(cls: type, include=None, exclude: Iterable[str] = ()) -> list[dataclasses.Field]:
    """The init fields of ``cls`` a command exposes, in declaration order."""
    chosen = [f for f in dataclasses.fields(cls) if f.init and f.name not in set(exclude)]
    if include is not None:
        unknown = set(include) - {f.name for f in chosen}
        if unknown:
            raise TypeError(f"{cls.__name__} has no field(s) {', '.join(sorted(unknown))}")
        chosen = [f for f in chosen if f.name in set(include)]
    return chosen


def add_config(
    parser,
    cls: type,
    *,
    include: Iterable[str] | None = None,
    exclude: Iterable[str] = (),
    positional: Iterable[str] = (),
    required: Iterable[str] = (),
    title: str | None = None,
) -> None:
    """Add one flag (or positional argument) per chosen field of the dataclass ``cls``.

    A field whose name the parser already has (``seed`` of both the training and the
    environment config) is shared, not added twice.
    """
    hints = typing.get_type_hints(cls)
    target = parser.add_argument_group(title) if title else parser
    taken = {action.dest for action in parser._actions}
    for field in config_fields(cls, include, exclude):
        if field.name in taken:
            continue
        names = [field.name] if field.name in positional else [flag_name(field)]
        kwargs = _argument(field, hints[field.name], cls, positional=field.name in positional)
        if kwargs.get("action") == "store_false":  # a switch that is on by default
            names = ["--no-" + names[0][2:]]
        if field.name in required:
            kwargs.update(required=True, default=None)
        target.add_argument(*names, **kwargs)


def make_config(cls: type, args: argparse.Namespace, **overrides: Any):
    """The ``cls`` instance built from the parsed arguments (fields the command does not expose
    keep their defaults), then validated by the config itself."""
    hints = typing.get_type_hints(cls)
    values = {}
    for field in dataclasses.fields(cls):
        if field.init and field.name not in overrides and hasattr(args, field.name):
            value = getattr(args, field.name)
            if isinstance(value, list) and typing.get_origin(_inner(hints[field.name])) is tuple:
                value = tuple(value)
            values[field.name] = value
    config = cls(**values, **overrides)
    validate = getattr(config, "validate", None)
    if callable(validate):
        validate()
    return config


def _argument(field: dataclasses.Field, hint: Any, cls: type, positional: bool) -> dict[str, Any]:
    meta = field.metadata
    help_text = (meta.get("help") or "").replace("%", "%%")
    kwargs: dict[str, Any] = {"help": help_text}
    if field.default is not dataclasses.MISSING:
        kwargs["default"] = field.default
    elif field.default_factory is not dataclasses.MISSING:
        kwargs["default"] = field.default_factory()
    elif not positional:
        kwargs["required"] = True
    if not positional:
        kwargs["dest"] = field.name
    inner = _inner(hint)
    origin = typing.get_origin(inner)
    if inner is bool:
        if kwargs.get("default"):
            return {**kwargs, "action": "store_false", "help": "turn off: " + help_text}
        return {**kwargs, "action": "store_true"}
    if inner is dict or origin is dict:
        return {**kwargs, "action": _KeyValues, "metavar": meta.get("metavar") or "KEY=VALUE"}
    if origin in (list, tuple):
        kwargs["nargs"] = "+"
        inner = typing.get_args(inner)[0]
    if inner not in _SCALARS:
        raise TypeError(f"{cls.__name__}.{field.name}: type {hint} has no command-line form")
    kwargs["type"] = _checked(meta.get("parse") or inner)
    if meta.get("choices"):
        kwargs["choices"] = meta["choices"]
    if meta.get("metavar") or (meta.get("flag") and not positional):
        kwargs["metavar"] = meta.get("metavar") or meta["flag"].upper().replace("-", "_")
    return kwargs


def _inner(hint: Any) -> Any:
    """``int`` for ``int | None``; ``str`` for ``str | Path`` (paths stay text until used)."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        if str in options and all(a in (str, Path) for a in options):
            return str
        return options[0] if len(options) == 1 else hint
    return str if hint is Path else hint


def _checked(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """``parse`` with a project error turned into argparse's usage error for that flag."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except DriveEnvError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    convert.__name__ = getattr(parse, "__name__", "value")
    return convert


class _KeyValues(argparse.Action):
    """``--hp KEY=VALUE`` (repeatable) into one dict; VALUE is JSON when it parses as JSON."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=None, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        key, sep, text = values.partition("=")
        if not sep or not key:
            raise argparse.ArgumentError(
                self, f"{values!r}: write KEY=VALUE, e.g. learning_rate=3e-4"
            )
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        setattr(namespace, self.dest, {**(getattr(namespace, self.dest) or {}), key: value})
