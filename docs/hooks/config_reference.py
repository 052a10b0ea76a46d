"""MkDocs hook: the configuration reference, generated at build time from the parser ``--help`` prints.

Every page under ``reference/`` is written here, never by hand: the ``fit`` parser is built by
:class:`olmo2_lit.lightning_cli.OLMo2CLI` itself (so its defaults are the CLI's), and each option's
type, default and text come from the same jsonargparse actions and help formatter that
``olmo2-lit fit --help`` uses. Optimizers, schedules and callbacks are found by walking their packages,
registry names are read from the registries, and each strategy fragment is read from
``experiments/strategies/``, so a new class, component or fragment appears without touching this file.

The pages are added as generated files (``on_files``) and listed in the nav under "Configuration
reference" (``on_config``).
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
import re
from argparse import SUPPRESS
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
NAV_TITLE = "Configuration reference"
GENERATED_NOTE = (
    "_Generated when the site is built, from the parser behind `olmo2-lit fit --help` "
    "(`docs/hooks/config_reference.py`): edit the docstring, not this page._"
)


@dataclass
class Page:
    """One generated page: its path under docs/, nav title and markdown."""

    path: str
    title: str
    text: str


# --- reading the parser -------------------------------------------------------------------------


class _Captured(Exception):
    pass


@cache
def fit_parser():
    """The ``fit`` subcommand's parser, built by OLMo2CLI exactly as ``olmo2-lit fit`` builds it."""
    from olmo2_lit.lightning_cli import OLMo2CLI

    class ParserOnly(OLMo2CLI):
        def parse_arguments(self, parser, args):
            raise _Captured(parser)

    try:
        ParserOnly(args=[])  # empty: every verb, and the attribute docstrings (lightning_cli.wants_help)
    except _Captured as captured:
        return captured.args[0]._subcommands_action.choices["fit"]
    raise RuntimeError("OLMo2CLI built no parser")


def class_parser(cls):
    """The parser ``--...help CLASS`` prints for a class given by ``class_path`` (a callback, a
    strategy, an optimizer, a schedule)."""
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(cls, "init_args", skip={"params"}, fail_untyped=False)  # an optimizer's
    return parser


def _options(parser, prefix: str) -> list:
    """The parser's actions for the options directly under ``prefix`` (no deeper groups)."""
    from jsonargparse import ActionConfigFile

    found = []
    for action in parser._actions:
        dest = action.dest
        if not dest.startswith(prefix) or dest.endswith(".help") or dest in ("help", "config"):
            continue
        if isinstance(action, ActionConfigFile) or action.help == SUPPRESS:
            continue
        if type(action).__name__ == "_ActionConfigLoad":  # --section CONFIG_FILE
            continue
        if "." in dest[len(prefix) :] or dest == prefix.rstrip("."):
            continue
        found.append(action)
    return found


def _default(action) -> str:
    from jsonargparse import Namespace

    value = action.default
    if value == SUPPRESS:
        return ""
    if value is None:
        return "null"
    if isinstance(value, Namespace):
        value = value.as_dict()
    if hasattr(value, "__dataclass_fields__"):
        return type(value).__name__ + "()"
    return str(value)


# --- markdown -----------------------------------------------------------------------------------


def md(text: str) -> str:
    """Docstring text -> one markdown paragraph: RST ``code`` to `code`, roles dropped, angle
    brackets outside code escaped, lines joined."""
    text = re.sub(r":(?:class|func|meth|mod|attr):`~?([^`]+)`", r"``\1``", text or "")
    parts = re.split(r"(``.*?``|`[^`]*`)", " ".join(text.split()), flags=re.S)
    out = []
    for part in parts:
        if part.startswith("``") and part.endswith("``") and len(part) > 4:
            out.append("`" + part[2:-2] + "`")
        elif part.startswith("`"):
            out.append(part)
        else:
            out.append(part.replace("<", "&lt;").replace(">", "&gt;"))
    return "".join(out)


def _code(text: str) -> str:
    return "`` " + text + " ``" if "`" in text else "`" + text + "`"


def option_block(
    parser,
    action,
    prefix: str,
    *,
    flag: str | None = "--",
    key: str = "",
    anchor_prefix: str = "",
    registries: bool = False,
) -> str:
    """One option: a heading with its anchor, the flag, type, default and the docstring text.

    ``flag`` prefixes the dotted name in the flag shown (None: show the YAML key, ``key`` + name,
    instead: for a class given by ``class_path`` or an entry of a list).
    """
    name = action.dest[len(prefix) :]
    fmt = parser._get_formatter()
    type_str = fmt._get_type_str(action)
    facts = [f"`{flag}{action.dest}`" if flag else f"`{key}{name}`"]
    if type_str:
        facts.append("type " + _code(type_str))
    link = type(action).__name__ == "ActionLink"
    if link:
        source = ", ".join(f"`{s[0]}`" if isinstance(s, tuple) else str(s) for s in action.source)
        facts.append(f"set from {source} (linked)")
        text = ""
    else:
        default = _default(action)
        if action.required:
            facts.append("**required**")
        elif default:
            facts.append("default " + _code(default))
        text = md(action.help or "")
    heading = f"### `{name}` {{ #{anchor_prefix}{name} }}"
    lines = [heading, "", " · ".join(facts), "", text]
    extra = action.extra_help() if hasattr(action, "extra_help") else ""
    if extra:  # known subclasses of a class_path option, as --help lists them
        lines += ["", md(extra.strip(", "))]
    if registries:
        lines += _registry_names(action)
    return "\n".join(lines) + "\n"


def _registry_names(action) -> list[str]:
    registry = getattr(getattr(action, "_typehint", None), "registry", None)
    if registry is None:
        return []
    rows = ["", "| name | class | what |", "|---|---|---|"]
    for name in registry.names():
        cls = registry.get(name)
        summary = md((inspect.getdoc(cls) or "").split("\n\n")[0])
        rows.append(
            f"| `{name}` | `{cls.__module__}.{cls.__qualname__}` | {summary.replace('|', '&#124;')} |"
        )
    base = registry._base.__name__ if registry._base is not None else "its base"
    rows += [
        "",
        f"Or a dotted import path to your own subclass of `{base}` ([guide](../custom_components.md)).",
    ]
    return rows


def section(parser, prefix: str, **kwargs) -> str:
    return "\n".join(option_block(parser, a, prefix, **kwargs) for a in _options(parser, prefix))


def class_section(cls, *, key: str | None = None, intro: str = "") -> str:
    """Options of a class selected by ``class_path`` (or, with ``key``, kept under its own fit key)."""
    doc = re.split(r" (?:Args|Attributes|Raises|Returns|Example|Examples): ", md(inspect.getdoc(cls) or ""))[
        0
    ]
    head = [f"`{cls.__module__}.{cls.__qualname__}`", "", doc, ""]
    if intro:
        head += [intro, ""]
    anchor = cls.__name__.lower() + "-"
    if key is not None:
        body = section(fit_parser(), key + ".", anchor_prefix=anchor)
    else:
        yaml_key = "" if dataclasses.is_dataclass(cls) else "init_args."
        body = section(class_parser(cls), "init_args.", flag=None, key=yaml_key, anchor_prefix=anchor)
    return "\n".join(head) + "\n" + (body or "_No options._\n")


# --- discovery ----------------------------------------------------------------------------------


def classes_in(package: str, base: type) -> list[type]:
    """Public, concrete classes defined in ``package``'s modules (walked, not listed) that subclass
    ``base``; an abstract base class of several (``inspect.isabstract``) is left out."""
    pkg = importlib.import_module(package)
    found = []
    for info in pkgutil.iter_modules(pkg.__path__, package + "."):
        module = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and issubclass(cls, base) and cls is not base:
                found += [] if cls.__name__.startswith("_") or inspect.isabstract(cls) else [cls]
    return found


def keyed_callbacks() -> dict[type, str]:
    """Callback class -> its own ``fit`` key (``throughput:``, ``nonfinite:``, ...), read off the parser."""
    return {
        group.group_class: key
        for key, group in fit_parser().groups.items()
        if "." not in key and getattr(group, "group_class", None) is not None
    }


# --- the pages ----------------------------------------------------------------------------------


def _page(path: str, title: str, body: str, intro: str = "") -> Page:
    text = f"# {title}\n\n{GENERATED_NOTE}\n\n" + (intro + "\n\n" if intro else "") + body
    return Page(path, title, text)


def fit_pages() -> list[Page]:
    """model, model.config, parallelize, data, trainer, checkpoint, and the top-level options."""
    p = fit_parser()
    from olmo2_lit.data.mixture import DataSource
    from olmo2_lit.train.optim import ParamGroup

    return [
        _page(
            "reference/fit.md",
            "fit (top level)",
            section(p, ""),
            "Options outside any section: `olmo2-lit fit --config RECIPE.yaml [--section.option VALUE ...]`.",
        ),
        _page(
            "reference/model.md",
            "model",
            section(p, "model.")
            + "\n## `param_groups` entries { #paramgroup }\n\n"
            + class_section(ParamGroup),
            "The training module (`model:`). Its nested sections: [model.config](model.config.md), "
            "[optimizer](optimizer.md), [schedule](schedule.md), [parallelize](parallelize.md).",
        ),
        _page(
            "reference/model.config.md",
            "model.config",
            section(p, "model.config.", registries=True),
            "The model's shape and components (`model.config:`). The component fields take a registry "
            "name (each table lists the registered names, read from `olmo2_lit.model.registry`) or a "
            "dotted import path.",
        ),
        _page("reference/parallelize.md", "model.parallelize", section(p, "model.parallelize.")),
        _page(
            "reference/data.md",
            "data",
            section(p, "data.")
            + "\n## `train_sources` entries { #datasource }\n\n"
            + class_section(DataSource)
            + "\n## `prepare_if_missing` { #preparespec }\n\n"
            + class_section(_prepare_spec()),
            "The datamodule (`data:`).",
        ),
        _page(
            "reference/trainer.md",
            "trainer",
            section(p, "trainer."),
            "Lightning's `Trainer` (`trainer:`), with this CLI's defaults (logger, checkpoint IO plugin, "
            "clipping). The text is Lightning's docstring.",
        ),
        _page(
            "reference/checkpoint.md",
            "checkpoint",
            section(p, "checkpoint."),
            "Lightning's `ModelCheckpoint`, always on, under its own key (`checkpoint:`), with this CLI's "
            "defaults (every 1000 steps, `last.ckpt`, keep all).",
        ),
    ]


def _prepare_spec():
    from olmo2_lit.data.datamodule import PrepareSpec

    return PrepareSpec


def class_path_pages() -> list[Page]:
    """One page per optimizer and per LR schedule class in ``olmo2_lit.train`` (found by walking it)."""
    import torch

    from olmo2_lit.train.schedules import Schedule

    pages = []
    for kind, base, key in (
        ("optimizer", torch.optim.Optimizer, "model.optimizer"),
        ("schedule", Schedule, "model.schedule"),
    ):
        classes = sorted(classes_in("olmo2_lit.train", base), key=lambda c: c.__name__)
        section_key, option = key.split(".")
        body = "\n".join(
            f"## {cls.__name__} {{ #{cls.__name__.lower()} }}\n\n```yaml\n{section_key}:\n  {option}:\n"
            f"    class_path: {cls.__module__}.{cls.__name__}\n```\n\n" + class_section(cls)
            for cls in classes
        )
        field = _options(fit_parser(), "model.")
        (action,) = [a for a in field if a.dest == key]
        intro = md(action.help) + f" Default: `{_default(action)}`."
        pages.append(_page(f"reference/{kind}.md", key, body, intro))
    return pages


def callback_pages() -> list[Page]:
    """One page per module of ``olmo2_lit.callbacks`` (found by walking the package)."""
    from lightning.pytorch import Callback

    keys = keyed_callbacks()
    by_module: dict[str, list[type]] = {}
    for cls in classes_in("olmo2_lit.callbacks", Callback):
        by_module.setdefault(cls.__module__, []).append(cls)
    pages = []
    for module in sorted(by_module):
        parts = []
        for cls in by_module[module]:
            key = keys.get(cls)
            if key:
                how = f"Always on, under its own key: `{key}:` in YAML, `--{key}.OPTION` on the command line."
            elif cls.__name__ in _ADDED_BY_CLI:
                how = _ADDED_BY_CLI[cls.__name__]
            else:
                how = (
                    "Add it to a run:\n\n```yaml\ntrainer:\n  callbacks+:\n"
                    f"    - class_path: {module}.{cls.__name__}\n```"
                )
            parts.append(
                f"## {cls.__name__} {{ #{cls.__name__.lower()} }}\n\n"
                + class_section(cls, key=key, intro=how)
            )
        name = module.rsplit(".", 1)[1]
        doc = md(inspect.getdoc(importlib.import_module(module)) or "")
        pages.append(_page(f"reference/callbacks/{name}.md", name, "\n".join(parts), doc))
    return pages


#: Callbacks the CLI adds itself, without a key: how each is switched (read from lightning_cli.py).
_ADDED_BY_CLI = {
    "StepProgressBar": "Added by the CLI unless `trainer.enable_progress_bar: false` or you give one.",
    "OLMo2ModelSummary": "Added by the CLI unless `trainer.enable_model_summary: false` or you give another.",
    "StrategyRecord": "Always added by the CLI (writes `strategy.yaml` into the log directory).",
    "SLURMRequeue": "Always added by the CLI; inert outside SLURM.",
    "StepPublisher": "Always added by `OLMo2LitModule` itself (`configure_callbacks`); nothing to configure.",
}


def strategy_pages() -> list[Page]:
    """One page per fragment in ``experiments/strategies/`` (found by listing the directory)."""
    pages = []
    for fragment in sorted((ROOT / "experiments" / "strategies").glob("*.yaml")):
        text = fragment.read_text()
        comment = " ".join(line.lstrip("# ").strip() for line in text.splitlines() if line.startswith("#"))
        strategy = yaml.safe_load(text)["trainer"]["strategy"]
        body = f"```yaml\n{text.strip()}\n```\n\n"
        if isinstance(strategy, dict):
            module, _, name = strategy["class_path"].rpartition(".")
            cls = getattr(importlib.import_module(module), name)
            body += "## Options of the strategy class\n\n" + class_section(cls)
        else:
            body += f"`{strategy}` is Lightning's own strategy ([trainer](../trainer.md#strategy)).\n"
        path = fragment.relative_to(ROOT)
        use = f"Layer it on a recipe: `olmo2-lit fit --config RECIPE.yaml --config {path}`."
        pages.append(
            _page(f"reference/strategies/{fragment.stem}.md", fragment.name, body, md(comment) + "\n\n" + use)
        )
    return pages


def index_page(children: list[Page], callbacks: list[Page], strategies: list[Page]) -> Page:
    rows = "\n".join(f"- [{p.title}]({p.path.removeprefix('reference/')})" for p in children)
    rows += "\n- callbacks: " + ", ".join(
        f"[{p.title}]({p.path.removeprefix('reference/')})" for p in callbacks
    )
    rows += "\n- strategy fragments: " + ", ".join(
        f"[{p.title}]({p.path.removeprefix('reference/')})" for p in strategies
    )
    body = (
        "Every option of `olmo2-lit fit`, section by section. The YAML key "
        "`model: {config: {block: pre_norm}}` is the flag `--model.config.block pre_norm`; "
        "`olmo2-lit fit --config RECIPE.yaml --print_config` prints a recipe with every value resolved.\n\n"
        + rows
        + "\n"
    )
    return _page("reference/index.md", NAV_TITLE, body)


@cache
def pages() -> tuple[Page, ...]:
    fit = fit_pages()
    classes = class_path_pages()
    callbacks = callback_pages()
    strategies = strategy_pages()
    flat = [*fit[:3], *classes, *fit[3:]]
    return (index_page(flat, callbacks, strategies), *flat, *callbacks, *strategies)


def nav() -> list:
    """The nav entries of the reference section."""
    all_pages = pages()
    index, rest = all_pages[0], all_pages[1:]
    top = [{p.title: p.path} for p in rest if p.path.count("/") == 1]
    callbacks = [{p.title: p.path} for p in rest if p.path.startswith("reference/callbacks/")]
    strategies = [{p.title: p.path} for p in rest if p.path.startswith("reference/strategies/")]
    return [{"Overview": index.path}, *top, {"callbacks": callbacks}, {"strategies": strategies}]


# --- mkdocs events ------------------------------------------------------------------------------


def on_config(config, **kwargs):
    """Fill the nav entry named NAV_TITLE with the generated pages."""
    for entry in config["nav"] or []:
        if isinstance(entry, dict) and NAV_TITLE in entry:
            entry[NAV_TITLE] = nav()
    return config


def on_files(files, config, **kwargs):
    from mkdocs.structure.files import File

    for page in pages():
        files.append(File.generated(config, page.path, content=page.text))
    return files
