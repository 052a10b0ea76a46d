"""Registries of swappable model components.

Each registry maps a short name (used in YAML and on the CLI) to a class. A component that lives
outside the library is selected by its dotted import path instead, e.g.
``model.config.block: my_lab.blocks.ParallelBlock``; the class must subclass the registry's base.

Names are validated when the config is *parsed*: each registry exposes a ``str`` subclass
(``BlockName``, ``AttentionName``, ...) that jsonargparse calls on the value, so a typo fails before
anything is built, with the list of valid names.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Short name -> class, for one kind of component.

    Args:
        kind: what the registry holds, used in error messages ("block", "norm", ...).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, type] = {}
        self._base: type | None = None

    def set_base(self, base: type) -> None:
        """Declare the base class that dotted-path components must subclass."""
        self._base = base

    def register(self, name: str) -> Callable[[type], type]:
        """Class decorator: ``@BLOCKS.register("reordered_norm")``."""

        def decorate(cls: type) -> type:
            if name in self._entries and self._entries[name] is not cls:
                raise ValueError(f"{self.kind} {name!r} is already registered to {self._entries[name]}")
            self._entries[name] = cls
            return cls

        return decorate

    def names(self) -> list[str]:
        """The registered short names, sorted."""
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def get(self, name: str) -> type:
        """Resolve a short name or a dotted import path to a class.

        Raises:
            ValueError: unknown name (the message lists the valid ones), or a dotted path that does
                not import or is not a subclass of the registry's base.
        """
        if name in self._entries:
            return self._entries[name]
        if "." not in name:
            raise ValueError(
                f"unknown {self.kind} {name!r}; valid names: {', '.join(self.names())} "
                f"(or a dotted import path to your own subclass)"
            )
        module_name, _, attr = name.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as err:
            raise ValueError(f"{self.kind} {name!r} could not be imported: {err}") from err
        if self._base is not None and not (isinstance(cls, type) and issubclass(cls, self._base)):
            raise ValueError(f"{self.kind} {name!r} is not a subclass of {self._base.__name__}")
        return cls

    def name_type(self, type_name: str) -> type[str]:
        """A ``str`` subclass whose constructor validates against this registry (for jsonargparse)."""
        registry = self

        def __new__(cls, value: str):  # noqa: N807
            registry.get(str(value))
            return str.__new__(cls, value)

        doc = f"Name of a registered {self.kind}."
        namespace = {"__new__": __new__, "__doc__": doc, "registry": registry}  # registry: for the docs
        return type(type_name, (str,), namespace)


BLOCKS: Registry = Registry("block")
ATTENTION: Registry = Registry("attention backend")
NORMS: Registry = Registry("norm")
MLPS: Registry = Registry("mlp")
INITS: Registry = Registry("init scheme")

BlockName = BLOCKS.name_type("BlockName")
AttentionName = ATTENTION.name_type("AttentionName")
NormName = NORMS.name_type("NormName")
MLPName = MLPS.name_type("MLPName")
InitName = INITS.name_type("InitName")
