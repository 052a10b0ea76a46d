"""DeepSpeed ZeRO-2 and ZeRO-3 runs of ``olmo2-lit fit`` on 2 CPU ranks (gloo), through Lightning's own
``DeepSpeedStrategy`` and DeepSpeed's engine (``cpu_deepspeed.py`` lifts only their CUDA checks).

Guards against:
- a ZeRO run that trains differently from one process at the same global batch: other param groups
  (weight decay on embeddings), clipping skipped or by another norm, a z-loss lost, a loss scaled twice
  by the accumulation (per-step CE and grad norm compared, with clipping active);
- a ZeRO-3 resume that is not exact (bitwise, against the uninterrupted ZeRO-3 run);
- a consolidation that loses, reorders or mis-slices weights or Adam moments: each is compared, bitwise,
  with what DeepSpeed's own API (``safe_get_full_fp32_param`` / ``safe_get_full_optimizer_state``) gathered
  in the live run, and the weights with Lightning's converter;
- a consolidated file that cannot resume: one process continues the ZeRO-3 run from it with its
  optimizer, data position and schedule, matching the ZeRO-3 run's later losses;
- a resume from weights without optimizer state that fails deep in Lightning or silently restarts the
  optimizer (it is refused, naming the weights-only restart, which starts from exactly those weights).
"""

from pathlib import Path

import pytest
import torch
import yaml
from training_helpers import fit, fit_subprocess, make_shards, scalars, tiny_args

from olmo2_lit.errors import CheckpointError
from olmo2_lit.model import ModelConfig, Transformer
from olmo2_lit.train import strategies
from olmo2_lit.train.optim import build_param_groups, olmo2_param_groups
from olmo2_lit.weights.consolidate import consolidate
from olmo2_lit.weights.pretrained import read_checkpoint

pytest.importorskip("deepspeed", reason="pip install deepspeed (olmo2_lit[deepspeed]) to run it")

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CLIP = ("--trainer.gradient_clip_val", "0.05")  # small, so clipping is active and must agree
STEPS = [0, 1, 2, 3]


def zero_fit(root: Path, shards: Path, stage: int, *, max_steps: int = 4, extra: tuple = ()) -> Path:
    """A 2-rank ZeRO fit with a checkpoint every 2 steps and DeepSpeed's own state dumped after step 2."""
    fragment = REPO / f"experiments/strategies/deepspeed_zero{stage}.yaml"
    strategy = ("--trainer.devices", "2", "--config", str(fragment),
                "--checkpoint.every_n_train_steps", "2",
                "--trainer.callbacks+=zero_state_dump.DumpZeroState", "--trainer.callbacks.step=2",
                f"--trainer.callbacks.out={root / 'zero_state.pt'}")  # fmt: skip
    fit_subprocess(
        tiny_args(root, shards, max_steps=max_steps, extra=(*CLIP, *strategy, *extra)),
        root.parent,
        pythonpath=(HERE,),
        script=HERE / "cpu_deepspeed.py",
        env={"DS_ACCELERATOR": "cpu", "OMP_NUM_THREADS": "1"},
    )
    return root


@pytest.fixture(scope="module")
def module_shards(tmp_path_factory):
    return make_shards(tmp_path_factory.mktemp("shards"))


@pytest.fixture(scope="module")
def one_process(module_shards, tmp_path_factory):
    root = tmp_path_factory.mktemp("one")
    fit_subprocess(tiny_args(root, module_shards, max_steps=4, extra=CLIP), root)
    return root


@pytest.fixture(scope="module")
def zero3(module_shards, tmp_path_factory):
    return zero_fit(tmp_path_factory.mktemp("zero3") / "run", module_shards, 3)


def assert_trains_like(run: Path, reference: Path, *, steps=STEPS, rel=1e-5) -> None:
    for tag in ("train/ce_loss", "optim/grad_norm"):
        ours, ref = scalars(run, tag), dict(scalars(reference, tag))
        assert [s for s, _ in ours] == steps, tag
        assert [v for _, v in ours] == pytest.approx([ref[s] for s in steps], rel=rel), tag


def names_in_optimizer_order(state_dict: dict) -> list[str]:
    """Parameter names (``model.`` keys) in the order the resuming run's AdamW numbers them: its own param
    groups (``build_param_groups`` with OLMo 2's, as ``configure_optimizers`` builds them)."""
    config = ModelConfig(d_model=32, n_layers=2, n_heads=4, mlp_hidden=64, vocab_size=256)  # tiny_args'
    model = Transformer(config.resolved())
    assert {f"model.{k}" for k in model.state_dict()} == state_dict.keys()
    name_of = {id(p): f"model.{n}" for n, p in model.named_parameters()}
    return [name_of[id(p)] for g in build_param_groups(model, olmo2_param_groups()) for p in g["params"]]


def assert_consolidated_like_deepspeed(one_file: Path, dumped: Path) -> None:
    """Weights and Adam moments of the consolidated file equal DeepSpeed's own gathered ones, bitwise, each
    under the index the resuming optimizer gives its parameter."""
    ckpt = torch.load(one_file, weights_only=False)
    live = torch.load(dumped, weights_only=True)
    assert ckpt["global_step"] == 2 and ckpt["state_dict"].keys() == live.keys()
    assert all(torch.equal(ckpt["state_dict"][k], live[k]["param"]) for k in live)
    (optim,) = ckpt["optimizer_states"]
    names = names_in_optimizer_order(ckpt["state_dict"])
    assert [i for g in optim["param_groups"] for i in g["params"]] == list(range(len(names)))
    assert [g["weight_decay"] for g in optim["param_groups"]] == [0.1, 0.0]  # embeddings: no decay
    for i, name in enumerate(names):
        state = optim["state"][i]
        assert float(state["step"]) == 2.0
        assert torch.equal(state["exp_avg"], live[name]["exp_avg"]), name
        assert torch.equal(state["exp_avg_sq"], live[name]["exp_avg_sq"]), name
    assert all(bool(live[n]["exp_avg"].abs().sum() > 0) for n in names)  # real moments, not zeros


@pytest.mark.slow
def test_zero3_trains_like_one_process_and_resumes_exactly(zero3, one_process, module_shards, tmp_path):
    assert_trains_like(zero3, one_process, rel=1e-4)
    assert all(v > 0.05 for _, v in scalars(one_process, "optim/grad_norm"))  # clipping was active
    record = yaml.safe_load((zero3 / "runs" / "olmo2" / "version_0" / "strategy.yaml").read_text())
    config = record["strategy"]["config"]  # what the engine ran with, filled in by Lightning's setup
    assert (config["zero_optimization"]["stage"], config["gradient_clipping"]) == (3, 0.05)
    assert config["train_micro_batch_size_per_gpu"] == 4 and record["strategy"]["world_size"] == 2
    assert scalars(zero3, "throughput/tokens_seen")[-1][1] == 4 * 8 * 64

    resumed = tmp_path / "resumed"
    zero_fit(resumed, module_shards, 3, extra=("--ckpt_path", str(zero3 / "ckpt" / "step0000002.ckpt")))
    for tag in ("train/ce_loss", "optim/grad_norm", "optim/lr"):
        assert scalars(resumed, tag) == scalars(zero3, tag)[2:], tag  # bitwise


@pytest.mark.slow
def test_zero3_consolidates_with_adam_state_and_one_process_resumes_from_it(zero3, module_shards, tmp_path):
    ckpt_dir = zero3 / "ckpt" / "step0000002.ckpt"
    one_file = tmp_path / "one.ckpt"
    consolidate(checkpoint=str(ckpt_dir), out=str(one_file))
    assert_consolidated_like_deepspeed(one_file, zero3 / "zero_state.pt")
    from lightning.pytorch.utilities.deepspeed import convert_zero_checkpoint_to_fp32_state_dict

    lightning = convert_zero_checkpoint_to_fp32_state_dict(str(ckpt_dir), str(tmp_path / "lightning.pt"))
    ours = torch.load(one_file, weights_only=False)["state_dict"]
    assert all(torch.equal(ours[k], v) for k, v in lightning["state_dict"].items())

    # one process (no DeepSpeed) continues the ZeRO-3 run: Adam state, schedule and data position
    resumed = tmp_path / "resumed"
    resume = (*CLIP, "--ckpt_path", str(one_file))
    fit_subprocess(tiny_args(resumed, module_shards, max_steps=4, extra=resume), tmp_path)
    assert_trains_like(resumed, zero3, steps=[2, 3], rel=1e-5)
    assert scalars(resumed, "throughput/tokens_seen") == scalars(zero3, "throughput/tokens_seen")[2:]

    from olmo2_lit.cli import main

    hf = tmp_path / "hf"
    main(["convert", "to-hf", "--checkpoint", str(one_file), "--out_dir", str(hf), "--dtype", "float32",
          "--eos_token_id", "0"])  # fmt: skip
    _, exported = read_checkpoint(hf)  # HF names mapped back to ours
    assert all(torch.equal(exported[k], ours[f"model.{k}"]) for k in exported)
    _, direct = read_checkpoint(ckpt_dir)  # what convert to-hf and model.init_from read from the directory
    assert direct.keys() == exported.keys()
    assert all(torch.equal(direct[k], ours[f"model.{k}"]) for k in direct)

    # weights without optimizer state (Lightning's converter): a resume is refused, naming the restart
    weights_only = tmp_path / "lightning.pt"
    with pytest.raises(CheckpointError, match="--model.init_optimizer_state false"):
        fit(tiny_args(tmp_path / "no", module_shards, max_steps=3, extra=("--ckpt_path", str(weights_only))))
    initial = tmp_path / "initial.pt"
    restart = ("--model.init_from", str(weights_only), "--model.init_optimizer_state", "false",
               "--trainer.callbacks+=initial_weights.SaveInitialWeights",
               f"--trainer.callbacks.out={initial}")  # fmt: skip
    fit(tiny_args(tmp_path / "restart", module_shards, max_steps=1, extra=restart))
    started = torch.load(initial, weights_only=True)
    assert all(torch.equal(started[k.removeprefix("model.")], v) for k, v in ours.items())


@pytest.mark.slow
def test_zero2_trains_like_one_process_and_consolidates_with_adam_state(one_process, module_shards, tmp_path):
    zero2 = zero_fit(tmp_path / "zero2", module_shards, 2)
    assert_trains_like(zero2, one_process, rel=1e-4)
    one_file = tmp_path / "one.ckpt"
    consolidate(checkpoint=str(zero2 / "ckpt" / "step0000002.ckpt"), out=str(one_file))
    assert_consolidated_like_deepspeed(one_file, zero2 / "zero_state.pt")


@pytest.mark.slow
def test_zero3_with_activation_checkpointing_trains_like_one_process(one_process, module_shards, tmp_path):
    """ZeRO-3's module hooks and our per-block checkpoint wrapper together (DeepSpeed once took the block's
    backward hooks for the wrapper's and failed in the first backward)."""
    checkpointing = ("--model.parallelize.activation_checkpointing", "true")
    run = zero_fit(tmp_path / "ac", module_shards, 3, extra=checkpointing)
    assert_trains_like(run, one_process, rel=1e-4)


def test_a_checkpoint_of_another_kind_is_refused_naming_consolidate_or_the_strategy(
    zero3, one_process, module_shards, tmp_path, monkeypatch
):
    """Guards against a checkpoint that one strategy wrote failing deep inside another's loader (DCP's
    missing-metadata error, DeepSpeed's "unable to load the checkpoint")."""
    ds_dir = zero3 / "ckpt" / "step0000002.ckpt"
    consolidate_fix = f"olmo2-lit convert consolidate --checkpoint {ds_dir} --out FILE.ckpt"
    with pytest.raises(CheckpointError, match="is a DeepSpeed checkpoint directory, which a strategy") as err:
        fit(tiny_args(tmp_path / "ddp", module_shards, max_steps=3, extra=("--ckpt_path", str(ds_dir))))
    assert consolidate_fix in str(err.value) and "deepspeed_zero<stage>.yaml" in str(err.value)
    with pytest.raises(CheckpointError, match="which FSDP2 cannot load") as err:
        strategies.FSDP2Strategy().load_checkpoint(ds_dir)
    assert consolidate_fix in str(err.value)

    file = one_process / "ckpt" / "step0000003.ckpt"
    monkeypatch.setattr(strategies, "require_cuda", lambda name: None)  # the refusal comes before any CUDA
    with pytest.raises(CheckpointError) as err:
        strategies.DeepSpeedStrategy(stage=3).load_checkpoint(file)
    assert str(err.value).startswith(
        f"{file} is one .ckpt file, which DeepSpeed cannot load; start from its weights with "
        f"--model.init_from {file} --model.init_optimizer_state false"
    )
