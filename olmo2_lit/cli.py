"""``olmo2-lit``: the one entry point.

``fit | validate | test | predict`` go through LightningCLI (YAML recipes, ``--print_config``);
``prepare`` and ``convert`` are plain functions whose docstrings are their ``--help``. Heavy imports
happen only once a verb is chosen.
"""

from __future__ import annotations

import sys
from typing import Optional

LIGHTNING_VERBS = ("fit", "validate", "test", "predict")


def _tool_verbs() -> dict:
    from olmo2_lit.prepare.prepare import prepare
    from olmo2_lit.weights import consolidate, pretrained

    return {
        "prepare": prepare,
        "convert": {
            "from-hf": pretrained.from_hf,
            "to-hf": pretrained.to_hf,
            "consolidate": consolidate.consolidate,
        },
    }


HELP = """usage: olmo2-lit VERB [options]

Train, prepare data for, and convert OLMo 2 models.

training (LightningCLI; `olmo2-lit VERB --help`, `--print_config`):
  fit         train: olmo2-lit fit --config experiments/quickstart.yaml
  validate    validation loss and perplexity of a checkpoint
  test        the same on the test dataloader
  predict     greedy next-token predictions

tools (`olmo2-lit VERB --help`):
  prepare     tokenize text/JSONL(.gz/.zst) into OLMo-format token shards
  convert     from-hf: HF OLMo 2 directory -> native weights; to-hf: checkpoint -> HF directory;
              consolidate: sharded (FSDP2) checkpoint directory -> one .ckpt file
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

    CLI(_tool_verbs(), args=argv, as_positional=False)


if __name__ == "__main__":
    main()
