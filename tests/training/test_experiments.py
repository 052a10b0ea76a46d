"""Every YAML in experiments/ parses through the CLI (fragments layered on a base), without fitting."""

from pathlib import Path

import pytest
import yaml

from olmo2_lit.lightning_cli import OLMo2CLI
from olmo2_lit.model import ModelConfig

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
ONE_B = EXPERIMENTS / "olmo2_1b_stage1.yaml"
QUICKSTART = EXPERIMENTS / "quickstart.yaml"


def _layers(path: Path) -> list[Path]:
    if path in (ONE_B, QUICKSTART):
        return [path]
    if path.parent.name == "ablations":
        return [QUICKSTART, path]
    if path.name == "olmo2_stage2_anneal.yaml":
        return [ONE_B, EXPERIMENTS / "olmo2_7b_stage1.yaml", path]
    if path.name.endswith("_stage2.yaml"):  # after its stage 1 and the anneal (the file's first line)
        stage1 = EXPERIMENTS / path.name.replace("stage2", "stage1")
        return list(dict.fromkeys([ONE_B, stage1, EXPERIMENTS / "olmo2_stage2_anneal.yaml", path]))
    return [ONE_B, path]


def _print_config(layers: list[Path], capsys) -> dict:
    args = ["fit"] + [a for p in layers for a in ("--config", str(p))] + ["--print_config"]
    with pytest.raises(SystemExit) as exit_info:
        OLMo2CLI(args=args)
    assert exit_info.value.code in (0, None)
    return yaml.safe_load(capsys.readouterr().out)


GRIDS = sorted(EXPERIMENTS.rglob("grid.yaml"))  # `olmo2-lit sweep` grids, not fit configs
ALL = sorted(set(EXPERIMENTS.rglob("*.yaml")) - set(GRIDS))


@pytest.mark.parametrize("path", GRIDS, ids=lambda p: str(p.relative_to(EXPERIMENTS)))
def test_sweep_grids_load_with_their_fragments(path):
    from olmo2_lit.research.grid import load_grid

    grid = load_grid(path)  # every fragment it names exists, no duplicate variant
    assert grid.cells(path.parent / "out")


def test_every_recipe_is_covered():
    names = {p.relative_to(EXPERIMENTS).as_posix() for p in ALL}
    assert {
        "quickstart.yaml",
        "olmo2_1b_stage1.yaml",
        "olmo2_7b_stage1.yaml",
        "olmo2_13b_stage1.yaml",
        "olmo2_32b_stage1.yaml",
        "olmo2_stage2_anneal.yaml",
        "ablations/pre_norm.yaml",
        "ablations/no_qk_norm.yaml",
        "ablations/no_z_loss.yaml",
        "ablations/olmo0424.yaml",
    } <= names


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.relative_to(EXPERIMENTS).as_posix())
def test_recipe_parses(path, capsys):
    cfg = _print_config(_layers(path), capsys)
    # the model's vocab is a link target of data.vocab_size, so it is not settable or printed
    assert "vocab_size" not in cfg["model"]["config"] and cfg["data"]["vocab_size"] > 0
    # per-block compile where it pays: on CUDA (auto), in every recipe; none switches it off or forces it
    assert cfg["model"]["parallelize"]["compile"] == "auto"


@pytest.mark.parametrize(
    "name, size, lr, batch",
    [
        ("olmo2_1b_stage1.yaml", (2048, 16, 16, None, 8192), 4e-4, 512),
        ("olmo2_7b_stage1.yaml", (4096, 32, 32, None, 11008), 3e-4, 1024),
        ("olmo2_13b_stage1.yaml", (5120, 40, 40, None, 13824), 9e-4, 2048),
        ("olmo2_32b_stage1.yaml", (5120, 64, 40, 8, 27648), 6e-4, 2048),
    ],
)
def test_stage1_recipes_have_published_hyperparameters(name, size, lr, batch, capsys):
    """OLMO2.md §1.5 (sizes) and §2.2-2.3 (LR, batch, betas, eps, decay, z-loss, sequence 4096)."""
    cfg = _print_config(_layers(EXPERIMENTS / name), capsys)
    m, opt = ModelConfig(**cfg["model"]["config"]), cfg["model"]["optimizer"]["init_args"]
    assert cfg["model"]["config"]["preset"] == name.removesuffix("_stage1.yaml")  # sizes held in ModelConfig
    assert (m.d_model, m.n_layers, m.n_heads, m.n_kv_heads, m.mlp_hidden) == size
    assert (
        opt["lr"] == lr and opt["betas"] == [0.9, 0.95] and opt["eps"] == 1e-8 and opt["weight_decay"] == 0.1
    )
    assert cfg["model"]["z_loss_multiplier"] == 1e-5 and cfg["trainer"]["gradient_clip_val"] == 1.0
    assert cfg["data"]["global_batch_size"] == batch and cfg["data"]["sequence_length"] == 4096
    assert cfg["trainer"]["precision"] == "bf16-mixed"
    schedule = cfg["model"]["schedule"]
    assert schedule["class_path"].endswith("CosineWithWarmup") and schedule["init_args"]["alpha_f"] == 0.1


def test_stage2_anneals_linearly_from_the_checkpoint_lr(capsys):
    cfg = _print_config(_layers(EXPERIMENTS / "olmo2_stage2_anneal.yaml"), capsys)
    assert cfg["model"]["lr_from_checkpoint"] is True
    assert cfg["model"]["schedule"]["class_path"].endswith("LinearDecay")
    assert cfg["model"]["schedule"]["init_args"]["alpha_f"] == 0.0
    assert cfg["seed_everything"] != 42 and cfg["data"]["seed"] == cfg["seed_everything"]


def test_olmo0424_fragment_switches_the_architecture(capsys):
    cfg = _print_config([QUICKSTART, EXPERIMENTS / "ablations" / "olmo0424.yaml"], capsys)
    m = cfg["model"]["config"]
    assert (m["block"], m["norm"], m["qk_norm"], m["clip_qkv"], m["init"]) == (
        "olmo0424",
        "layer_norm_no_affine",
        False,
        8.0,
        "olmo0424_scaled",
    )
    assert cfg["model"]["z_loss_multiplier"] == 0.0 and cfg["model"]["param_groups"] == []
    assert cfg["model"]["optimizer"]["init_args"]["lr"] == 3e-3  # the base's lr survives the layering


@pytest.mark.parametrize("name", ["olmo2_7b_stage1.yaml", "olmo2_13b_stage1.yaml", "olmo2_32b_stage1.yaml"])
def test_large_recipes_default_to_a_strategy_that_fits_80gb(name, capsys):
    """7B and up cannot hold fp32 weights + grads + Adam (16 B/param) on one 80 GB GPU; their recipes shard
    (FSDP2, OLMo 2's bf16/fp32 mixed precision) over the recipe's GPUs, leaving room for activations."""
    import torch

    from olmo2_lit.model import Transformer

    cfg = _print_config(_layers(EXPERIMENTS / name), capsys)
    assert cfg["trainer"]["strategy"]["class_path"] == "olmo2_lit.train.strategies.FSDP2Strategy"
    parallelize = cfg["model"]["parallelize"]
    assert (parallelize["fsdp_param_dtype"], parallelize["fsdp_reduce_dtype"]) == ("bfloat16", "float32")
    assert parallelize["activation_checkpointing"] is True
    config = ModelConfig(preset=cfg["model"]["config"]["preset"], vocab_size=cfg["data"]["vocab_size"])
    with torch.device("meta"):
        params = Transformer(config.resolved(), init_weights=False).num_params()
    state_gb = params * 16 / 1e9
    gpus = cfg["trainer"]["num_nodes"] * cfg["trainer"]["devices"]
    assert state_gb > 80 and state_gb / gpus < 8  # unsharded does not fit; sharded is a small share
