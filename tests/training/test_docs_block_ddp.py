"""The own-block example of docs/custom_components.md, copied out of the page, trains under 2-process DDP.

DDP (without ``find_unused_parameters``) fails at the second step when a block leaves one of its
parameters out of the forward pass, as an earlier version of the example did with
``feed_forward_norm``. Two ranks on CPU (gloo), run as a subprocess like tests/training/test_ddp_fit.py.
"""

import math
import re
from pathlib import Path

from training_helpers import fit_subprocess, scalars, tiny_args

DOCS = Path(__file__).parents[2] / "docs" / "custom_components.md"


def doc_example(marker: str) -> tuple[str, str]:
    """(path, code) of the ```python block of docs/custom_components.md that contains ``marker``; the path is
    the block's first-line comment (``# my_lab/blocks.py``)."""
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(), re.S)
    (code,) = [b for b in blocks if marker in b]
    first = code.splitlines()[0]
    assert first.startswith("# ") and first.endswith(".py"), (
        f"docs/custom_components.md example lacks its path: {first}"
    )
    return first[2:], code


def test_docs_parallel_block_trains_under_ddp(shards, tmp_path):
    """Guards the docs' own-block example: copied verbatim from docs/custom_components.md, selected by dotted
    path, it runs 2 steps of a 2-rank DDP fit (an unused parameter fails the second step)."""
    path, code = doc_example("class ParallelBlock(Block)")
    target = tmp_path / "user" / path
    target.parent.mkdir(parents=True)
    target.write_text(code)
    (target.parent / "__init__.py").write_text("")
    module = path.removesuffix(".py").replace("/", ".")
    args = tiny_args(
        tmp_path / "run",
        shards,
        max_steps=2,
        extra=(
            "--trainer.devices",
            "2",
            "--trainer.strategy",
            "ddp",
            "--model.config.block",
            f"{module}.ParallelBlock",
        ),
    )
    fit_subprocess(args, tmp_path, pythonpath=(tmp_path / "user",))
    losses = scalars(tmp_path / "run", "train/ce_loss")
    assert [s for s, _ in losses] == [0, 1] and all(math.isfinite(v) for _, v in losses)
