"""``olmo2-lit``: the one entry point.

``fit | validate | test | predict`` go through LightningCLI (YAML recipes, ``--print_config``);
``prepare``, ``convert``, ``soup`` and ``generate`` are plain functions whose docstrings are their
``--help``. Heavy imports happen only once a verb is chosen.
"""

from __future__ import annotations

import sys
from typing import Optional

LIGHTNING_VERBS = ("fit", "validate", "test", "predict")


def _tool_verbs() -> dict:
    from olmo2_lit.eval.generate_cli import generate
    from olmo2_lit.prepare.prepare import prepare
    from olmo2_lit.weights import pretrained
    from olmo2_lit.weights.soup import soup

    return {
        "prepare": prepare,
        "convert": {"from-hf": pretrained.from_hf, "to-hf": pretrained.to_hf},
        "generate": generate,
        "soup": soup,
    }


HELP = """usage: olmo2-lit VERB [options]

Train, prepare data for, and convert OLMo 2 models.

training (LightningCLI; `olmo2-lit VERB --help`, `--print_config`):
  fit         train: olmo2-lit fit --config experiments/quickstart.yaml
  validate    validation loss, perplexity and bits per byte of a checkpoint
  test        the same on the test dataloader
  predict     greedy next-token predictions

tools (`olmo2-lit VERB --help`):
  prepare     tokenize text/JSONL(.gz/.zst) into OLMo-format token shards
  convert     from-hf: HF OLMo 2 directory -> native weights; to-hf: checkpoint -> HF directory
  soup        average checkpoints of one architecture (uniform or --weights) into a native dir
  generate    continue prompts with a checkpoint (KV cache, greedy or sampled), streaming
"""


def main(argv: Optional[list[str]] = None) -> None:
    """Console entry point ``olmo2-lit``."""
    from_command_line = argv is None
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(HELP)
        return
    if argv[0] in LIGHTNING_VERBS:
        from olmo2_lit.lightning_cli import OLMo2CLI

        OLMo2CLI(args=None if from_command_line else argv)
        return
    from jsonargparse import CLI

    CLI(_tool_verbs(), args=_soup_positionals(argv), as_positional=False)


def _soup_positionals(argv: list[str]) -> list[str]:
    """``soup A B --out D`` -> ``soup --checkpoints+ A --checkpoints+ B --out D`` (the documented form)."""
    if argv[0] != "soup":
        return argv
    n = next((i for i, a in enumerate(argv[1:], 1) if a.startswith("-")), len(argv))
    return ["soup", *[x for path in argv[1:n] for x in ("--checkpoints+", path)], *argv[n:]]


if __name__ == "__main__":
    main()
