"""The grid file of ``olmo2-lit sweep``: a base config, named variants and seeds, checked before any run.

.. code-block:: yaml

    base: [experiments/quickstart.yaml]        # --config files every run starts from
    seeds: [0, 1, 2]
    overrides: {trainer.max_steps: 200}         # optional, every run
    variants:
      olmo2: []                                 # the base as it is
      olmo0424: [experiments/ablations/olmo0424.yaml]
      high_lr:                                  # fragments and overrides, in order
        - experiments/ablations/no_z_loss.yaml
        - {model.optimizer.init_args.lr: 1.0e-2}

A list item that is a string is a ``--config`` fragment (a path, relative to the working directory as on
the command line); a mapping holds overrides (``--key=value``). Each cell (variant, seed) runs in
``<out>/<variant>/seed<k>/``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from olmo2_lit.errors import ConfigError

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Cell:
    """One run of the grid: its variant, seed, directory and the ``fit`` arguments that make it."""

    variant: str
    seed: int
    run_dir: Path
    args: tuple[str, ...]

    @property
    def key(self) -> str:
        return f"{self.variant}/seed{self.seed}"


@dataclass
class Grid:
    """A parsed grid file (module docstring)."""

    path: Path
    base: list[str]
    seeds: list[int]
    overrides: dict[str, Any]
    variants: dict[str, list[Any]] = field(default_factory=dict)

    def cells(self, out: Path) -> list[Cell]:
        """Every (variant, seed), variants in file order, with the arguments of its ``fit``."""
        return [
            Cell(
                variant,
                seed,
                out / variant / f"seed{seed}",
                self._args(variant, seed, out / variant / f"seed{seed}"),
            )
            for variant in self.variants
            for seed in self.seeds
        ]

    def _args(self, variant: str, seed: int, run_dir: Path) -> tuple[str, ...]:
        args = [a for path in self.base for a in ("--config", path)]
        args += _override_args(self.overrides)
        for item in self.variants[variant]:
            args += ["--config", item] if isinstance(item, str) else _override_args(item)
        return (*args, *run_args(run_dir, seed))

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "base": self.base,
            "seeds": self.seeds,
            "overrides": self.overrides,
            "variants": self.variants,
        }


def run_args(run_dir: Path, seed: int) -> list[str]:
    """Where a sweep run writes (logs in ``tb/version_0``, checkpoints in ``ckpt``), its seed, and
    ``--ckpt_path last``, so a rerun resumes from ``ckpt/last.ckpt`` and a fresh one starts clean."""
    return [
        f"--seed_everything={seed}",
        f"--trainer.default_root_dir={run_dir}",
        f"--trainer.logger.init_args.save_dir={run_dir}",
        "--trainer.logger.init_args.name=tb",
        "--trainer.logger.init_args.version=0",  # a resumed run appends to the same TensorBoard run
        f"--checkpoint.dirpath={run_dir / 'ckpt'}",
        "--ckpt_path=last",
    ]


def _override_args(overrides: dict[str, Any]) -> list[str]:
    """``--key=value``: a string as it is (as typed on the command line), anything else as JSON."""
    return [f"--{key}={v if isinstance(v, str) else json.dumps(v)}" for key, v in overrides.items()]


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses a key given twice in one mapping (PyYAML keeps the last silently)."""


def _unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict:
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise ConfigError(f"duplicate key '{key}' (line {key_node.start_mark.line + 1}); rename one")
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def load_grid(path: str | Path, *, seeds: list[int] | None = None) -> Grid:
    """Read and check a grid file: its keys, names, and that every fragment exists.

    Args:
        path: the grid YAML.
        seeds: replaces the file's ``seeds`` when given.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"grid file not found: {path}")
    try:
        raw = yaml.load(path.read_text(), Loader=_UniqueKeyLoader) or {}
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{path}: a grid is a mapping with base, seeds, overrides, variants, not a {type(raw).__name__}"
        )
    unknown = set(raw) - {"base", "seeds", "overrides", "variants"}
    if unknown:
        raise ConfigError(
            f"{path}: unknown key(s) {sorted(unknown)}; a grid has base, seeds, overrides, variants"
        )
    variants = raw.get("variants") or {}
    if not isinstance(variants, dict) or not variants:
        raise ConfigError(f"{path}: 'variants' must map each variant's name to a list of fragments/overrides")
    raw_seeds = seeds if seeds is not None else raw.get("seeds", [0])
    if not isinstance(raw_seeds, list):
        raise ConfigError(
            f"{path}: 'seeds' must be a list of distinct integers (e.g. [0, 1]), got {raw_seeds!r}"
        )
    grid = Grid(
        path=path,
        base=_str_list(raw.get("base") or [], path, "base"),
        seeds=list(raw_seeds),
        overrides=raw.get("overrides") or {},
        variants={},
    )
    if (
        not grid.seeds
        or not all(isinstance(s, int) for s in grid.seeds)
        or len(set(grid.seeds)) < len(grid.seeds)
    ):
        raise ConfigError(f"{path}: 'seeds' must be a list of distinct integers, got {grid.seeds}")
    if not isinstance(grid.overrides, dict):
        raise ConfigError(f"{path}: 'overrides' must be a mapping of dotted keys to values")
    for name, items in variants.items():
        grid.variants[str(name)] = _variant(str(name), items, path)
    for fragment in grid.base:
        _check_fragment(fragment, path, "base")
    return grid


def _variant(name: str, items: Any, path: Path) -> list[Any]:
    if not NAME.match(name):
        raise ConfigError(
            f"{path}: variant name '{name}' must be letters, digits, '_', '-', '.' (a directory)"
        )
    items = items or []
    if not isinstance(items, list):
        raise ConfigError(f"{path}: variant '{name}' must be a list of fragment paths and override mappings")
    for item in items:
        if isinstance(item, str):
            _check_fragment(item, path, f"variant '{name}'")
        elif not isinstance(item, dict):
            raise ConfigError(f"{path}: variant '{name}': {item!r} is neither a fragment path nor a mapping")
    return items


def _check_fragment(fragment: str, path: Path, where: str) -> None:
    if not Path(fragment).is_file():
        raise FileNotFoundError(
            f"{path}: {where} names a missing fragment: {fragment} (paths are relative to {Path.cwd()})"
        )


def _str_list(value: Any, path: Path, key: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{path}: '{key}' must be a list of config file paths")
    return value
