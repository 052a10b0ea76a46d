"""``PrintSamples`` (the quickstart's end-of-fit samples) under a sharded strategy: every rank must join
each forward's gather of the sharded weights, so the samples are generated on every rank and printed by
rank 0. Before, rank 0 generated alone and failed at the end of a finished run (its gather met a peer that
had exited)."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from training_helpers import fit_subprocess, tiny_args

TOKENIZER = Path(__file__).parents[1] / "eval" / "fixtures" / "tokenizer.json"  # a 512-token BPE
FSDP2 = {
    "class_path": "lightning.pytorch.strategies.ModelParallelStrategy",
    "init_args": {"data_parallel_size": 2, "tensor_parallel_size": 1, "save_distributed_checkpoint": False},
}
PROMPTS = ["def ", "import "]


@pytest.mark.slow
def test_print_samples_under_fsdp2_prints_once_what_generate_gives_from_the_checkpoint(shards, tmp_path):
    """2 ranks, FSDP2: the fit ends with exit status 0, one "=== samples ===" block, and for each prompt
    the greedy continuation ``olmo2-lit generate`` gives from the saved ``last.ckpt``."""
    samples = {"prompts": PROMPTS, "max_new_tokens": 6, "temperature": 0.0, "tokenizer": str(TOKENIZER)}
    callback = {"class_path": "olmo2_lit.callbacks.samples.PrintSamples", "init_args": samples}
    trainer = {"devices": 2, "strategy": FSDP2, "callbacks": [callback]}
    layer = {"trainer": trainer, "data": {"vocab_size": 512}}
    (tmp_path / "layer.yaml").write_text(yaml.safe_dump(layer))
    args = tiny_args(tmp_path, shards, max_steps=2, extra=("--config", str(tmp_path / "layer.yaml")))
    proc = fit_subprocess(args, tmp_path, timeout=420)

    assert proc.stdout.count("=== samples ===") == 1, proc.stdout[-2000:]
    printed = proc.stdout.split("=== samples ===\n", 1)[1]
    generated = subprocess.run(
        [sys.executable, "-m", "olmo2_lit", "generate", "--checkpoint", str(tmp_path / "ckpt" / "last.ckpt"),
         "--tokenizer", str(TOKENIZER), "--max_new_tokens", "6", "--temperature", "0",
         *[a for p in PROMPTS for a in ("--prompt+", p)]],
        capture_output=True, text=True, check=True, timeout=300,
    ).stdout  # fmt: skip
    for i, prompt in enumerate(PROMPTS):
        text = generated.split(f"=== {i}\n", 1)[1].split("\n=== ", 1)[0].rstrip("\n")
        assert text.startswith(prompt) and len(text) > len(prompt)
        assert f"--- {prompt!r}\n{text}\n" in printed
