"""Config dataclasses: YAML sets defaults, command-line flags override, unknown keys fail.

Every runnable module defines a frozen dataclass, builds its parser with
:func:`build_parser`, and turns ``argv`` into a config with :func:`parse_config`.
Field docs come from ``field(metadata={"help": ...})``.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Sequence, TypeVar

import yaml

from afcu.errors import AfcuError

C = TypeVar("C")


def _base_type(tp: Any) -> tuple[Any, bool]:
    """Strip ``Optional``; return (type, is_optional)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return (args[0] if len(args) == 1 else str), True
    return tp, False


def _coerce(tp: Any, value: Any, where: str) -> Any:
    base, optional = _base_type(tp)
    if value is None:
        if optional:
            return None
        raise AfcuError(f"{where}: null is not allowed; give a {getattr(base, '__name__', base)}")
    origin = typing.get_origin(base)
    try:
        if origin in (list, tuple):
            (inner,) = typing.get_args(base)[:1] or (str,)
            items = value if isinstance(value, (list, tuple)) else [value]
            out = [_coerce(inner, v, where) for v in items]
            return tuple(out) if origin is tuple else out
        if origin is dict or base is dict:
            if isinstance(value, str):  # a flag: inline YAML, e.g. --rewards '{compliance: 1.0}'
                try:
                    value = yaml.safe_load(value)
                except yaml.YAMLError:
                    raise ValueError("expected an inline YAML mapping such as '{name: 1.0}'") from None
            if not isinstance(value, dict):
                raise ValueError("expected a mapping such as '{name: 1.0}'")
            return dict(value)
        if base is bool:
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("true", "1", "yes"):
                return True
            if str(value).lower() in ("false", "0", "no"):
                return False
            raise ValueError("expected true or false")
        if base in (int, float, str):
            if base is int and isinstance(value, float) and not value.is_integer():
                raise ValueError("expected an integer")
            return base(value)
        return value
    except (TypeError, ValueError) as exc:
        raise AfcuError(f"{where}: cannot read {value!r} ({exc})") from None


def config_from_dict(cls: type[C], data: dict[str, Any], source: str = "config") -> C:
    """Build ``cls`` from a mapping; unknown keys raise ``AfcuError`` naming ``source``."""
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise AfcuError(
            f"{source}: unknown key(s) {', '.join(unknown)}; "
            f"valid keys for {cls.__name__}: {', '.join(sorted(names))}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {k: _coerce(hints[k], v, f"{source}: field '{k}'") for k, v in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise AfcuError(f"{source}: {exc}") from None


def load_yaml(path: str | Path, what: str = "config") -> dict[str, Any]:
    """Read a YAML mapping; a missing, folder, non-UTF-8 or malformed file raises ``AfcuError``
    (an empty file is an empty mapping)."""
    from afcu.userfiles import read_text

    p = Path(path)
    text = read_text(p, what, suffixes=(".yaml", ".yml"), encoding_flag=None, allow_empty=True)
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise AfcuError(f"{p}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise AfcuError(f"{p}: expected a mapping of config keys at the top level")
    return data


def build_parser(cls: type, parser: argparse.ArgumentParser | None = None, **kw: Any) -> argparse.ArgumentParser:
    """Add ``--config FILE`` and one ``--field-name`` flag per dataclass field."""
    parser = parser or argparse.ArgumentParser(
        formatter_class=argparse.ArgumentDefaultsHelpFormatter, **kw
    )
    parser.add_argument("--config", help="YAML file with defaults for the flags below")
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        base, _ = _base_type(hints[f.name])
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None  # type: ignore[misc]
        )
        helptext = f.metadata.get("help", "") + (f" (default: {default})" if default not in (None, "") else "")
        if base is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction,
                                default=argparse.SUPPRESS, help=helptext)
        elif typing.get_origin(base) in (list, tuple):
            parser.add_argument(flag, dest=f.name, nargs="+", default=argparse.SUPPRESS, help=helptext)
        else:
            parser.add_argument(flag, dest=f.name, default=argparse.SUPPRESS, help=helptext,
                                metavar=f.name.upper())
    parser.set_defaults(_config_cls=cls)
    return parser


def config_from_args(cls: type[C], args: argparse.Namespace, defaults: dict[str, Any] | None = None) -> C:
    """``defaults`` (field values, e.g. from the environment), YAML from ``args.config`` (if any) on top,
    then every flag the user gave."""
    data: dict[str, Any] = dict(defaults or {})
    data.update(load_yaml(args.config) if getattr(args, "config", None) else {})
    source = str(args.config) if getattr(args, "config", None) else "command line"
    names = {f.name for f in dataclasses.fields(cls)}
    for key, value in vars(args).items():
        if key in names:
            data[key] = value
    return config_from_dict(cls, data, source)


def parse_config(cls: type[C], argv: Sequence[str] | None = None, **kw: Any) -> C:
    """Parse ``argv`` into ``cls`` (a convenience for ``python -m module``)."""
    return config_from_args(cls, build_parser(cls, **kw).parse_args(argv))


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A YAML-safe dict of a config dataclass (tuples become lists, paths strings)."""
    def plain(v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, Path):
            return str(v)
        return v
    return {k: plain(v) for k, v in dataclasses.asdict(cfg).items()}
