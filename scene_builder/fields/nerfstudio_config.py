"""Reading nerfstudio's ``config.yml`` without letting the file run code.

nerfstudio writes its config with ``yaml.dump`` of its dataclasses, so the file carries Python
tags (``!!python/object:nerfstudio...TrainerConfig``, ``!!python/name:torch.optim.adam.Adam``,
``!!python/object/apply:pathlib.PosixPath``, ``!!python/tuple``). PyYAML's full ``yaml.Loader``
builds whatever such tags name: ``!!python/object/apply:os.system [...]`` in a downloaded field
would run a shell command. Here the file is read in two steps:

1. ``read_config``: a ``yaml.SafeLoader`` that turns the python tags into plain records
   (``PythonObject``, ``PythonName``, ``PythonApply``) and refuses, with the line, any tag that
   names something outside nerfstudio's own classes, torch's optimisers and ``pathlib`` paths.
   Nothing is imported or called; this step needs PyYAML only, not nerfstudio.
2. ``build_config``: with nerfstudio installed, the records become nerfstudio's config objects:
   a ``PythonObject`` only for a nerfstudio dataclass (created with ``__new__`` and its fields set,
   as PyYAML does, never ``__init__``), a ``PythonApply`` only for a ``pathlib`` path or a
   nerfstudio ``Enum`` member, a ``PythonName`` only for a class of nerfstudio or torch.optim.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import pathlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scene_builder.errors import FieldError

TAG = "tag:yaml.org,2002:python/"
OBJECT_PREFIXES = ("nerfstudio.",)
NAME_PREFIXES = ("nerfstudio.", "torch.optim.")
PATH_CLASSES = ("pathlib.Path", "pathlib.PosixPath", "pathlib.WindowsPath", "pathlib.PurePath")
APPLY_PREFIXES = (*OBJECT_PREFIXES, *PATH_CLASSES)


@dataclass
class PythonObject:
    """``!!python/object:NAME`` with its fields, not yet built."""

    name: str
    state: dict[str, Any]


@dataclass
class PythonName:
    """``!!python/name:NAME``: a reference to a class or function, not yet resolved."""

    name: str


@dataclass
class PythonApply:
    """``!!python/object/apply:NAME`` with its arguments, not yet called."""

    name: str
    args: list[Any]


def _allowed(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or (p.endswith(".") and name.startswith(p)) for p in prefixes)


def _loader_class():
    import yaml

    class ConfigLoader(yaml.SafeLoader):
        """SafeLoader plus nerfstudio's python tags, as plain records."""

    def refuse(node, name: str, kind: str):
        raise yaml.constructor.ConstructorError(
            None, None, f"python/{kind} tag naming {name!r} refused", node.start_mark
        )

    def construct_object(loader, suffix, node):
        if not _allowed(suffix, OBJECT_PREFIXES) or not isinstance(node, yaml.MappingNode):
            refuse(node, suffix, "object")
        return PythonObject(suffix, loader.construct_mapping(node, deep=True))

    def construct_name(loader, suffix, node):
        if not _allowed(suffix, NAME_PREFIXES):
            refuse(node, suffix, "name")
        return PythonName(suffix)

    def construct_apply(loader, suffix, node):
        if not _allowed(suffix, APPLY_PREFIXES) or not isinstance(node, yaml.SequenceNode):
            refuse(node, suffix, "object/apply")
        return PythonApply(suffix, loader.construct_sequence(node, deep=True))

    def construct_tuple(loader, node):
        return tuple(loader.construct_sequence(node, deep=True))

    ConfigLoader.add_multi_constructor(TAG + "object:", construct_object)
    ConfigLoader.add_multi_constructor(TAG + "name:", construct_name)
    ConfigLoader.add_multi_constructor(TAG + "object/apply:", construct_apply)
    ConfigLoader.add_constructor(TAG + "tuple", construct_tuple)
    return ConfigLoader


def read_config(config_path: Path) -> Any:
    """``config_path`` as plain data and records; ``FieldError`` for anything else it names."""
    try:
        import yaml
    except ImportError:
        raise FieldError(
            f"{config_path}: reading a nerfstudio config needs PyYAML "
            "(pip install driveenv[nerfstudio])"
        ) from None
    if not config_path.is_file():
        raise FieldError(f"{config_path}: no such file")
    try:
        return yaml.load(config_path.read_text(encoding="utf-8"), Loader=_loader_class())  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(error, "problem", None) or type(error).__name__
        if isinstance(error, yaml.constructor.ConstructorError):  # a tag it may not build
            raise FieldError(f"{config_path}: refused{where}: {problem}") from None
        raise FieldError(f"{config_path}: not a nerfstudio config{where}: {problem}") from None
    except (UnicodeDecodeError, ValueError, TypeError, RecursionError) as error:
        raise FieldError(
            f"{config_path}: not a nerfstudio config ({type(error).__name__})"
        ) from None


def _resolve(name: str, config_path: Path) -> Any:
    """The module attribute ``name`` (``package.module.Attr``), importing its module."""
    module_name, _, attribute = name.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError):
        raise FieldError(f"{config_path}: names {name!r}, which this nerfstudio lacks") from None


def build_config(data: Any, config_path: Path, memo: dict[int, Any] | None = None) -> Any:
    """nerfstudio's config objects from ``read_config``'s records (needs nerfstudio)."""
    memo = {} if memo is None else memo
    if id(data) in memo:  # YAML anchors: one object, referenced twice
        return memo[id(data)]
    if isinstance(data, PythonObject):
        cls = _resolve(data.name, config_path)
        if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
            raise FieldError(f"{config_path}: {data.name!r} is not a nerfstudio config class")
        built = memo[id(data)] = cls.__new__(cls)
        built.__dict__.update(
            {k: build_config(v, config_path, memo) for k, v in data.state.items()}
        )
        return built
    if isinstance(data, PythonName):
        value = _resolve(data.name, config_path)
        if not isinstance(value, type):
            raise FieldError(f"{config_path}: {data.name!r} is not a class")
        built = value
    elif isinstance(data, PythonApply):
        built = _apply(data, config_path, [build_config(a, config_path, memo) for a in data.args])
    elif isinstance(data, dict):
        built = {k: build_config(v, config_path, memo) for k, v in data.items()}
    elif isinstance(data, list | tuple):
        built = type(data)(build_config(v, config_path, memo) for v in data)
    else:
        return data
    memo[id(data)] = built
    return built


def _apply(data: PythonApply, config_path: Path, args: list[Any]) -> Any:
    if data.name in PATH_CLASSES:
        if not all(isinstance(a, str) for a in args):
            raise FieldError(f"{config_path}: a path made of something other than strings")
        return pathlib.Path(*args)
    cls = _resolve(data.name, config_path)
    if not (isinstance(cls, type) and issubclass(cls, enum.Enum)) or len(args) != 1:
        raise FieldError(f"{config_path}: {data.name!r} is not a nerfstudio enumeration")
    try:
        return cls(args[0])
    except ValueError:
        raise FieldError(f"{config_path}: {args[0]!r} is not a {data.name}") from None
