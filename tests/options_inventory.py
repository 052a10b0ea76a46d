"""Every option olmo2_lit defines, found by walking the real parsers of ``fit``, ``prepare``, ``convert``,
``generate`` and ``soup`` (the objects behind their ``--help``), for ``tests/test_options_coverage.py``.

An option is olmo2_lit's when the ``__init__`` (or dataclass, or tool function) that declares the parameter
lives in ``olmo2_lit``: Lightning's own options (``trainer.*``, ``ModelCheckpoint``'s under ``checkpoint.``,
``seed_everything``, ``ckpt_path``) are left out and listed by :func:`lightning_options`. Options that
take a class (``model.optimizer``, ``model.schedule``, ``trainer.callbacks``, ``trainer.strategy``, ...)
are walked into every concrete olmo2_lit class that fits; a list of dataclasses (``data.train_sources``,
``DownstreamEval.tasks``) into the dataclass's fields. An option with a finite set of values (a
``Literal``, a component registry) gives one entry per non-default value (``model.config.block=pre_norm``);
any other option is one entry (a bool's non-default value is the other one).

Option ids: ``fit model.config.d_model``, ``fit model.schedule:WarmupStableDecay.decay``,
``fit model.param_groups[].lr_scale``, ``fit trainer.callbacks:DownstreamEval.tasks[].limit``,
``convert to-hf dtype=float32``, ``generate top_k``.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import inspect
import pkgutil
import sys
import typing
from argparse import SUPPRESS
from dataclasses import dataclass
from functools import cache
from pathlib import Path

TOOL_VERBS = ("prepare", "convert", "generate", "soup")
PACKAGES = ("olmo2_lit", "olmo2_lit.callbacks")


@dataclass(frozen=True)
class Option:
    """One option (or one non-default value of it) that olmo2_lit defines."""

    id: str
    owner: str  # module.Class (or module.function) that declares it
    default: str


# --- the parsers --------------------------------------------------------------------------------


def _config_reference():
    """docs/hooks/config_reference.py, the site's generator: its parsers are the ones ``--help`` prints."""
    spec = importlib.util.spec_from_file_location(
        "olmo2_lit_config_reference",
        Path(__file__).resolve().parents[1] / "docs" / "hooks" / "config_reference.py",
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # as mkdocs loads a hook (its dataclass needs the module)
    spec.loader.exec_module(module)
    return module


_REFERENCE = _config_reference()
#: ``olmo2-lit fit``'s parser, built by OLMo2CLI exactly as the command builds it (cached there).
fit_parser = _REFERENCE.fit_parser


@cache
def tool_parser():
    """The parser of the tool verbs (``olmo2-lit prepare|convert|generate|soup|...``)."""
    from jsonargparse import CLI, capture_parser

    from olmo2_lit.cli import _tool_verbs

    return capture_parser(lambda: CLI(_tool_verbs(), args=["prepare", "--help"], as_positional=False))


#: the parser a class given by ``class_path`` gets (a callback, a strategy, an optimizer, a schedule)
class_parser = _REFERENCE.class_parser


def _actions(parser, prefix: str = "") -> list:
    """The parser's option actions under ``prefix`` (help, config-file and print_config actions left out)."""
    from jsonargparse import ActionConfigFile

    found = []
    for action in parser._actions:
        dest = action.dest
        if not dest.startswith(prefix) or dest.endswith(".help") or dest in ("help", "config"):
            continue
        if isinstance(action, ActionConfigFile) or type(action).__name__ in (
            "_ActionConfigLoad",
            "_ActionPrintConfig",
            "_ActionHelpClassPath",
        ):
            continue
        if type(action).__name__ == "ActionLink":  # set from another option (data.vocab_size)
            continue
        found.append(action)
    return found


# --- who declares an option ---------------------------------------------------------------------


def _declarer(cls: type, name: str) -> str:
    """``module.Class`` whose own ``__init__`` (or dataclass fields) declares parameter ``name``."""
    if dataclasses.is_dataclass(cls):
        for klass in cls.__mro__:
            if name in getattr(klass, "__annotations__", {}):
                return f"{klass.__module__}.{klass.__qualname__}"
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is not None and name in inspect.signature(init).parameters:
            return f"{klass.__module__}.{klass.__qualname__}"
    return "?"


def _ours(owner: str) -> bool:
    return owner.startswith("olmo2_lit.")


# --- classes that an option taking a class can name ----------------------------------------------


@cache
def _all_classes() -> tuple[type, ...]:
    found = []
    for package in PACKAGES:
        pkg = importlib.import_module(package)
        for info in pkgutil.walk_packages(pkg.__path__, package + "."):
            if info.name.endswith("__main__") or (
                package == "olmo2_lit" and info.name.startswith(PACKAGES[1])
            ):
                continue
            module = importlib.import_module(info.name)
            for _, cls in inspect.getmembers(module, inspect.isclass):
                if cls.__module__ == module.__name__ and not cls.__name__.startswith("_"):
                    found.append(cls)
    return tuple(found)


def subclasses_in_olmo2_lit(base: type) -> list[type]:
    """Concrete olmo2_lit classes (abstract ones left out) that subclass ``base``, by name."""
    found = [c for c in _all_classes() if issubclass(c, base) and c is not base and not inspect.isabstract(c)]
    return sorted(set(found), key=lambda c: c.__name__)


def _classes_in_hint(hint) -> list[type]:
    """Every class named in a type hint (through Optional, Union, list, Callable[..., R])."""
    if isinstance(hint, type) and typing.get_origin(hint) is None:
        return [hint]
    out = []
    for arg in typing.get_args(hint):
        if isinstance(arg, list):  # Callable's argument list
            continue
        out += _classes_in_hint(arg)
    return out


_PLAIN = (str, int, float, bool, type(None), dict, list, tuple, bytes)


def _finite_values(hint) -> list | None:
    """The values of a Literal (through Optional/Union) or a registry name type; None if not finite."""
    registry = getattr(hint, "registry", None)
    if registry is not None:  # olmo2_lit.model.registry name types; entries olmo2_lit itself registers
        return [n for n in registry.names() if _ours(registry.get(n).__module__)]
    if typing.get_origin(hint) is typing.Literal:
        return list(typing.get_args(hint))
    values = []
    for arg in typing.get_args(hint):
        if arg is bool:  # Union[bool, Literal["auto"]]
            values += [True, False]
        elif typing.get_origin(arg) is typing.Literal:
            values += list(typing.get_args(arg))
        elif getattr(arg, "registry", None) is not None:
            values += _finite_values(arg)
    return values or None


# --- the walk -----------------------------------------------------------------------------------


def _entries(option_id: str, owner: str, hint, default) -> list[Option]:
    values = _finite_values(hint)
    if values is None:
        return [Option(option_id, owner, str(default))]
    return [Option(f"{option_id}={v}", owner, str(default)) for v in values if str(v) != str(default)]


def _expand(option_id: str, owner: str, hint, default, *, skip_classes: frozenset = frozenset()) -> list:
    """One option, or, for an option that takes olmo2_lit classes or dataclasses, their options."""
    found = []
    nested = False
    for cls in _classes_in_hint(hint):
        if cls in _PLAIN:
            continue
        if dataclasses.is_dataclass(cls) and _ours(cls.__module__):
            nested = True
            found += _class_options(f"{option_id}[]" if _is_list(hint) else option_id, cls)
            continue
        for sub in subclasses_in_olmo2_lit(cls):
            nested = True
            if sub not in skip_classes:
                found += _class_options(f"{option_id}:{sub.__name__}", sub)
    if nested:
        return list(dict.fromkeys(found))  # Union[list[C], C] names C twice
    return _entries(option_id, owner, hint, default)


def _is_list(hint) -> bool:
    if typing.get_origin(hint) is list:
        return True
    return any(_is_list(a) for a in typing.get_args(hint) if not isinstance(a, list))


def _class_options(prefix: str, cls: type) -> list[Option]:
    out = []
    for action in _actions(class_parser(cls), "init_args."):
        name = action.dest[len("init_args.") :]
        owner = _declarer(cls, name.split(".")[0])
        if not _ours(owner):
            continue
        out += _expand(f"{prefix}.{name}", owner, getattr(action, "_typehint", None), action.default)
    return out


def _group_class(parser, dest: str):
    """The class of the longest group of ``parser`` that holds ``dest``, with the parameter's name."""
    parts = dest.split(".")
    for n in range(len(parts) - 1, 0, -1):
        group = parser.groups.get(".".join(parts[:n]))
        cls = getattr(group, "group_class", None)
        if cls is not None:
            return cls, parts[n]
    return None, dest


@cache
def fit_options() -> tuple[Option, ...]:
    parser = fit_parser()
    keyed = frozenset(
        g.group_class for g in parser.groups.values() if getattr(g, "group_class", None) is not None
    )
    out = []
    for action in _actions(parser):
        dest, hint = action.dest, getattr(action, "_typehint", None)
        cls, name = _group_class(parser, dest)
        if dest.startswith("trainer."):  # Lightning's flags; the olmo2_lit classes they can take
            out += [
                o
                for o in _expand(f"fit {dest}", "lightning", hint, action.default, skip_classes=keyed)
                if o.owner != "lightning"
            ]
            continue
        owner = _declarer(cls, name) if cls is not None else "lightning.pytorch.cli.LightningCLI"
        if _ours(owner):
            default = action.default if action.default != SUPPRESS else None
            out += _expand(f"fit {dest}", owner, hint, default)
    return tuple(out)


@cache
def lightning_options() -> tuple[str, ...]:
    """``fit`` options outside ``trainer.*`` that Lightning declares (left out of the inventory)."""
    parser = fit_parser()
    out = []
    for action in _actions(parser):
        if action.dest.startswith("trainer."):
            continue
        cls, name = _group_class(parser, action.dest)
        owner = _declarer(cls, name) if cls is not None else "lightning.pytorch.cli.LightningCLI"
        if not _ours(owner):
            out.append(f"fit {action.dest}")
    return tuple(out)


@cache
def tool_options() -> tuple[Option, ...]:
    from olmo2_lit.cli import _tool_verbs

    verbs = _tool_verbs()
    out = []

    def walk(parser, path: list[str], function) -> None:
        sub = getattr(parser, "_subcommands_action", None)
        if sub is not None:
            for name, child in sub.choices.items():
                target = function[name] if isinstance(function, dict) else function
                walk(child, [*path, name], target)
            return
        owner = f"{function.__module__}.{function.__qualname__}"
        for action in _actions(parser):
            hint = getattr(action, "_typehint", None)
            out.extend(_expand(" ".join([*path, action.dest]), owner, hint, action.default))

    top = tool_parser()._subcommands_action.choices
    for verb in TOOL_VERBS:
        walk(top[verb], [verb], verbs[verb])
    return tuple(out)


def all_options() -> tuple[Option, ...]:
    """Every olmo2_lit option of fit, prepare, convert, generate and soup, in parser order."""
    return fit_options() + tool_options()


if __name__ == "__main__":
    for option in all_options():
        print(f"{option.id:70s} {option.owner}")
    print(len(all_options()), "options;", len(lightning_options()), "Lightning's left out")
