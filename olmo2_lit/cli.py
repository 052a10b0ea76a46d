"""``olmo2-lit``: the one entry point.

``fit | validate | test | predict`` go through LightningCLI (YAML recipes, ``--print_config``);
``prepare``, ``data-paths``, ``convert``, ``soup`` and ``generate`` are plain functions whose docstrings
are their ``--help``. Heavy imports happen only once a verb is chosen.
"""

from __future__ import annotations

import os
import sys
from typing import Optional

LIGHTNING_VERBS = ("fit", "validate", "test", "predict")
#: The arguments of the running ``olmo2-lit`` command (without ``--debug``), for messages that print
#: the command to rerun (e.g. the resume command after a pre-emption).
INVOCATION: Optional[list[str]] = None


#: The tools' verbs, as ``module:function``; ``convert`` has sub-verbs. Only the chosen verb's module is
#: imported, so ``compare`` or ``sweep`` do not pay for torch's import through ``generate`` or ``convert``.
TOOL_VERBS: dict = {
    "prepare": "olmo2_lit.prepare.prepare:prepare",
    "data-paths": "olmo2_lit.data.mirror:data_paths",
    "convert": {
        "from-hf": "olmo2_lit.weights.verbs:from_hf",
        "to-hf": "olmo2_lit.weights.verbs:to_hf",
        "consolidate": "olmo2_lit.weights.consolidate:consolidate",
        "from-olmo-core": "olmo2_lit.weights.olmo_core:from_olmo_core",
        "to-olmo-core": "olmo2_lit.weights.olmo_core:to_olmo_core",
        "from-olmo-trainer": "olmo2_lit.weights.olmo_trainer:from_olmo_trainer",
    },
    "generate": "olmo2_lit.eval.generate_cli:generate",
    "soup": "olmo2_lit.weights.soup:soup",
    "sweep": "olmo2_lit.research.sweep:sweep",
    "compare": "olmo2_lit.research.compare:compare",
    "report": "olmo2_lit.research.report:report",
}


def _tool_verbs(verb: Optional[str] = None) -> dict:
    """The tools' functions for ``verb`` alone (all of them when ``verb`` is not one, for the error)."""
    import importlib

    def load(target):
        if isinstance(target, dict):
            return {name: load(t) for name, t in target.items()}
        module, function = target.split(":")
        return getattr(importlib.import_module(module), function)

    chosen = {verb: TOOL_VERBS[verb]} if verb in TOOL_VERBS else TOOL_VERBS
    return load(chosen)


HELP = """usage: olmo2-lit VERB [options]

Train, prepare data for, and convert OLMo 2 models.

training (LightningCLI; `olmo2-lit VERB --help`, `--print_config`):
  fit         train: olmo2-lit fit --config experiments/quickstart.yaml
  validate    validation loss, perplexity and bits per byte of a checkpoint
  test        the same on the test dataloader
  predict     greedy next-token predictions

tools (`olmo2-lit VERB --help`):
  prepare     tokenize text/JSONL(.gz/.zst) into OLMo-format token shards
  data-paths  a published OLMo/OLMo-core config's data URLs -> your mirror's files, in the published order
  convert     from-hf: HF OLMo 2 directory -> native weights; to-hf: checkpoint -> HF directory;
              consolidate: sharded (FSDP2) checkpoint directory -> one .ckpt file;
              from-olmo-core / to-olmo-core: an OLMo-core step directory <-> a resumable .ckpt;
              from-olmo-trainer: an OLMo-trainer (ai2-olmo) unsharded checkpoint -> a resumable .ckpt
  soup        average checkpoints of one architecture (uniform or --weights) into a native dir
  generate    continue prompts with a checkpoint (KV cache, greedy or sampled), streaming

research (docs/research.md):
  sweep       a grid of variants x seeds as fit runs (here, N at once, or a SLURM job array); resumable
  compare     runs' curves grouped by variant: mean, std and 95% interval over seeds, spike counts, plots
  report      one run's health: loss trend, spikes, interventions, grad norm growth, throughput, verdicts

Bad input ends in a short message (exit status 2); add --debug, or set OLMO2_LIT_DEBUG=1, for the
full traceback and every line Lightning prints (docs/errors.md).
"""


def main(argv: Optional[list[str]] = None) -> None:
    """Console entry point ``olmo2-lit``.

    Bad input (:mod:`olmo2_lit.errors`) ends in a short message and exit status 2; ``--debug`` (anywhere
    in the arguments) or ``OLMO2_LIT_DEBUG=1`` shows the traceback instead.
    """
    global INVOCATION
    from olmo2_lit.errors import DEBUG_ENV, REPORTED, debug_requested, report

    from_command_line = argv is None
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = debug_requested(argv)
    if debug and from_command_line:  # processes that Lightning starts for the other ranks inherit it
        os.environ[DEBUG_ENV] = "1"
    argv = [a for a in argv if a != "--debug"]
    if not debug:
        from olmo2_lit.console import hide_noise

        hide_noise()  # Lightning's lines that do not apply to our runs (olmo2_lit/console.py)
    if from_command_line:  # LightningCLI reads sys.argv itself, and DDP relaunches it
        sys.argv[1:] = argv
    if not argv or argv[0] in ("-h", "--help"):
        print(HELP)
        return
    INVOCATION = argv
    try:
        _run(None if from_command_line else argv)
    except REPORTED as err:
        if debug:
            raise
        sys.exit(report(err))


def _run(args: Optional[list[str]]) -> None:
    argv = sys.argv[1:] if args is None else args
    if argv[0] in LIGHTNING_VERBS:
        from olmo2_lit.lightning_cli import OLMo2CLI

        OLMo2CLI(args=args)
        return
    if argv[0] not in TOOL_VERBS:
        import difflib

        from olmo2_lit.errors import ConfigError

        known = [*LIGHTNING_VERBS, *TOOL_VERBS]
        close = difflib.get_close_matches(argv[0], known, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(f"unknown verb {argv[0]!r}; {hint}the verbs: {', '.join(known)} (olmo2-lit --help)")
    from jsonargparse import CLI

    verbs = _tool_verbs(argv[0])
    args = _positionals(argv)
    function = verbs.get(argv[0])
    if isinstance(function, dict):  # convert: the sub-verb's function
        function = function.get(argv[1]) if len(argv) > 1 else None
    if callable(function):
        _check_list_flags(function, args)
    CLI(verbs, args=args, as_positional=False)


def _is_list(hint) -> bool:
    """True for ``list[...]`` and ``Optional[list[...]]``."""
    import typing

    if typing.get_origin(hint) is list:
        return True
    return typing.get_origin(hint) is typing.Union and any(_is_list(h) for h in typing.get_args(hint))


def _check_list_flags(function, argv: list[str]) -> None:
    """``--prompt hi`` for a list option: say to write ``--prompt+ hi`` (jsonargparse's own message,
    'Does not validate against any of the Union subtypes', says neither)."""
    import typing

    from olmo2_lit.errors import ConfigError

    hints = typing.get_type_hints(function)
    for i, arg in enumerate(argv):
        flag, eq, value = arg.partition("=")
        key = flag[2:]
        if not flag.startswith("--") or key not in hints or not _is_list(hints[key]):
            continue
        value = value if eq else (argv[i + 1] if i + 1 < len(argv) else "")
        if value.strip().startswith("[") or value == "null":
            continue
        shown = value if value and " " not in value else repr(value)
        raise ConfigError(
            f"--{key} takes a list: write --{key}+ {shown} (repeat --{key}+ for each item), "
            f"or --{key} '[...]' (JSON/YAML list)"
        )


#: verbs whose leading positional paths become a list argument (the documented form)
POSITIONALS = {"soup": "--checkpoints+", "compare": "--dirs+", "report": "--run_dir"}


def _positionals(argv: list[str]) -> list[str]:
    """``soup A B --out D`` -> ``soup --checkpoints+ A --checkpoints+ B --out D``; likewise ``compare
    DIR...`` and ``report RUN_DIR``."""
    flag = POSITIONALS.get(argv[0])
    if flag is None:
        return argv
    n = next((i for i, a in enumerate(argv[1:], 1) if a.startswith("-")), len(argv))
    return [argv[0], *[x for path in argv[1:n] for x in (flag, path)], *argv[n:]]


if __name__ == "__main__":
    main()
