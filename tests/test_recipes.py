"""The recipes in experiments/ carry the published runs' values: data order, seeds, instance filter, steps.

Each expected value below names its source: OL = allenai/OLMo at 59a53e3f (``configs/official-*``, the
trainer that ran the 1B 0425, 7B and 13B 1124), OC = allenai/OLMo-core at fa6c5014
(``src/scripts/official/OLMo2/``, the 32B 0325). Every recipe chain is parsed by our CLI itself
(``olmo2-lit fit --config ... --print_config``), so jsonargparse's merging of layered files is what is
checked, not a re-implementation of it.
"""

import contextlib
import io
import math

import pytest
import yaml

from olmo2_lit.cli import main

OL_1B = "OL configs/official-0425/OLMo2-1B-stage1.yaml"
OL_7B = "OL configs/official-1124/OLMo2-7B-stage1.yaml"
OL_13B = "OL configs/official-1124/OLMo2-13B-stage1.yaml"
OC_32B = "OC src/scripts/official/OLMo2/OLMo-2-0325-32B-train.py"
FILTER = "data.instance_filter {repetition_min_period 1, max_period 13, max_count 32}"
S1, S2 = "olmo2_1b_stage1", "olmo2_stage2_anneal"

RECIPES = {
    "1B stage 1": (
        [S1],
        {
            "seed_everything": (6198, f"{OL_1B} seed: 6198"),
            "data.seed": (6198, f"{OL_1B} seed: 6198 (OL uses cfg.seed when data.seed is unset)"),
            "data.order": ("olmo", "OLMo trainer"),
            "data.max_target_sequence_length": (None, "OLMo trainer has none"),
            "data.instance_filter": (True, f"{OL_1B} {FILTER}"),
            "trainer.max_steps": (1907359, "OL official-0425/OLMo-2-0425-1B.csv last step"),
            "model.schedule.init_args.warmup": (8388608000, f"{OL_1B} t_warmup: 8388608000"),
            "model.schedule.init_args.t_max": (5e12, f"{OL_1B} t_max: 5e12"),
            "model.schedule.init_args.units": ("tokens", f"{OL_1B} units: tokens"),
            "data.global_batch_size": (512, f"{OL_1B} global_train_batch_size: 512"),
        },
    ),
    "7B stage 1": (
        [S1, "olmo2_7b_stage1"],
        {
            "seed_everything": (6198, f"{OL_7B} seed: 6198"),
            "data.seed": (6198, f"{OL_7B} seed: 6198"),
            "data.order": ("olmo", "OLMo trainer"),
            "data.max_target_sequence_length": (None, "OLMo trainer has none"),
            "data.instance_filter": (True, f"{OL_7B} {FILTER}"),
            "trainer.max_steps": (928646, "OL OLMo2-7B-stage2-seed42.yaml load_path step928646"),
            "model.schedule.init_args.t_max": (5e12, f"{OL_7B} t_max: 5e12"),
            "data.global_batch_size": (1024, f"{OL_7B} global_train_batch_size: 1024"),
        },
    ),
    "13B stage 1": (
        [S1, "olmo2_13b_stage1"],
        {
            "seed_everything": (6198, f"{OL_13B} seed: 6198"),
            "data.seed": (6198, f"{OL_13B} seed: 6198"),
            "data.order": ("olmo", "OLMo trainer"),
            "data.instance_filter": (True, f"{OL_13B} {FILTER}"),
            "trainer.max_steps": (596057, "OL configs/official-1124/OLMo-2-1124-13B.csv last step"),
            "data.global_batch_size": (2048, f"{OL_13B} global_train_batch_size: 2048"),
        },
    ),
    "32B stage 1": (
        [S1, "olmo2_32b_stage1"],
        {
            "seed_everything": (12536, "OC olmo_core/script_utils.py ExperimentConfig.init_seed = 12536"),
            "data.seed": (34521, f"{OC_32B} NumpyDataLoaderConfig(seed=34521)"),
            "data.order": ("olmo_core", "OLMo-core"),
            "data.max_target_sequence_length": (8192, f"{OC_32B} max_target_sequence_length=max(8192, 4096)"),
            "data.instance_filter": (False, f"{OC_32B} no instance_filter_config"),
            "trainer.max_steps": (721901, "OC src/scripts/official/OLMo2/OLMo-2-0325-32B.csv last step"),
            "model.schedule.init_args.warmup": (2000, f"{OC_32B} CosWithWarmup(warmup_steps=2000)"),
            "model.schedule.init_args.t_max": (774861, "OC _get_max_steps: ceil(6.5e12 / (2048*4096))"),
            "model.schedule.init_args.units": ("steps", f"{OC_32B} scheduler in steps"),
            "data.global_batch_size": (2048, f"{OC_32B} global_batch_size=2048 * 4096 tokens"),
        },
    ),
    "1B stage 2": (
        [S1, S2, "olmo2_1b_stage2"],
        {
            "seed_everything": (42, "OL configs/official-0425/OLMo2-1B-stage2-seed42.yaml seed: 42"),
            "data.seed": (42, "OL OLMo2-1B-stage2-seed42.yaml seed: 42"),
            "data.order": ("olmo", "OLMo trainer"),
            "data.instance_filter": (True, f"OL OLMo2-1B-stage2-seed42.yaml {FILTER}"),
            "trainer.max_steps": (23852, "OL OLMo2-1B-stage2-seed42.yaml stop_at: 23852"),
            "model.lr_from_checkpoint": (False, "OL OLMo2-1B-stage2-seed42.yaml states its start LR"),
            "model.optimizer.init_args.lr": (
                7.4487e-5,
                "OL OLMo2-1B-stage2-seed42.yaml learning_rate: 0.000074487",
            ),
            "model.schedule.class_path": ("olmo2_lit.train.schedules.LinearDecay", "OL linear_with_warmup"),
            "model.schedule.init_args.warmup": (0, "OL t_warmup: 0"),
            "model.schedule.init_args.alpha_f": (0.0, "OL alpha_f: 0"),
            "model.schedule.init_args.t_max": (math.ceil(50e9 / (512 * 4096)), "OL max_duration: 50e9T"),
            "model.schedule.init_args.units": ("steps", "OL scheduler units default: steps"),
        },
    ),
    "7B stage 2": (
        [S1, "olmo2_7b_stage1", S2, "olmo2_7b_stage2"],
        {
            "seed_everything": (42, "OL configs/official-1124/OLMo2-7B-stage2-seed42.yaml seed: 42"),
            "data.seed": (42, "OL OLMo2-7B-stage2-seed42.yaml seed: 42"),
            "data.order": ("olmo", "OLMo trainer"),
            "data.instance_filter": (True, f"OL OLMo2-7B-stage2-seed42.yaml {FILTER}"),
            "trainer.max_steps": (11931, "OL OLMo2-7B-stage2-seed42.yaml stop_at: 11931"),
            "model.lr_from_checkpoint": (False, "OL OLMo2-7B-stage2-seed42.yaml states its start LR"),
            "model.optimizer.init_args.lr": (
                6.1499e-5,
                "OL OLMo2-7B-stage2-seed42.yaml learning_rate: 0.000061499",
            ),
            "model.schedule.init_args.warmup": (0, "OL t_warmup: 0"),
            "model.schedule.init_args.t_max": (math.ceil(50e9 / (1024 * 4096)), "OL max_duration: 50e9T"),
            "model.schedule.init_args.units": ("steps", "OL scheduler units default: steps"),
        },
    ),
    "13B stage 2": (
        [S1, "olmo2_13b_stage1", S2, "olmo2_13b_stage2"],
        {
            "seed_everything": (1110, "OL OLMo2-13B-stage2-seed1110-100B.yaml seed: 1110"),
            "data.seed": (1110, "OL OLMo2-13B-stage2-seed1110-100B.yaml seed: 1110"),
            "data.order": ("olmo", "OLMo trainer"),
            "data.instance_filter": (True, f"OL OLMo2-13B-stage2-seed1110-100B.yaml {FILTER}"),
            "trainer.max_steps": (11931, "OL OLMo2-13B-stage2-seed1110-100B.yaml stop_at: 11931"),
            "model.lr_from_checkpoint": (False, "OL OLMo2-13B-stage2-seed1110-100B.yaml states its start LR"),
            "model.optimizer.init_args.lr": (
                9e-5,
                "OL OLMo2-13B-stage2-seed1110-100B.yaml learning_rate: 9e-5",
            ),
            "model.schedule.init_args.warmup": (0, "OL t_warmup: 0"),
            "model.schedule.init_args.t_max": (math.ceil(100e9 / (2048 * 4096)), "OL max_duration: 100e9T"),
            "model.schedule.init_args.units": ("steps", "OL units: steps"),
        },
    ),
    "32B stage 2": (
        [S1, "olmo2_32b_stage1", S2, "olmo2_32b_stage2"],
        {
            "data.seed": (1110, "OC src/scripts/official/OLMo2/README.md ingredient 1: random seed 1110"),
            "data.order": ("olmo_core", "OLMo-core"),
            "data.max_target_sequence_length": (None, "OC OLMo-2-0325-32B-anneal.py sets none"),
            "data.instance_filter": (False, "OC OLMo-2-0325-32B-anneal.py no instance_filter_config"),
            "trainer.max_steps": (11921, "OC OLMo-2-0325-32B-stage2.csv last step"),
            "model.lr_from_checkpoint": (True, "OC OLMo-2-0325-32B-anneal.py get_lr_from_checkpoint"),
            "model.schedule.init_args.warmup": (0, "OC LinearWithWarmup(warmup_steps=0)"),
            "model.schedule.init_args.alpha_f": (0.0, "OC LinearWithWarmup(alpha_f=0.0)"),
            "model.schedule.init_args.t_max": (11921, "OC scheduler over Trainer.max_steps"),
            "model.schedule.init_args.units": ("steps", "OC scheduler in steps"),
        },
    ),
}


def _parsed(chain: list[str]) -> dict:
    """The config our CLI builds from the layered recipe files."""
    args = ["fit", *sum((["--config", f"experiments/{name}.yaml"] for name in chain), []), "--print_config"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        main(args)
    return yaml.safe_load(out.getvalue())


def _get(config: dict, dotted: str):
    for key in dotted.split("."):
        config = config[key]
    return config


@pytest.mark.filterwarnings("ignore:LightningCLI.s args parameter")
@pytest.mark.parametrize("recipe", list(RECIPES))
def test_recipe_values_are_the_published_ones(recipe):
    """Guards against a recipe drifting from the published run it reproduces (seed, order, instance filter,
    step counts, schedule lengths), including through jsonargparse's merging of the layered files (a
    class change keeps compatible init_args of the earlier file unless the later one sets them)."""
    chain, expected = RECIPES[recipe]
    config = _parsed(chain)
    wrong = {
        key: (_get(config, key), value, source)
        for key, (value, source) in expected.items()
        if _get(config, key) != value
    }
    assert not wrong, "\n".join(
        f"{k}: recipe has {got!r}, published {want!r} ({src})" for k, (got, want, src) in wrong.items()
    )


def test_stage2_recipes_do_not_change_the_sharding_strategy():
    """Guards the division of work: stage-1/2 value files set no trainer.strategy (sharding is elsewhere)."""
    for name in ("olmo2_1b_stage2", "olmo2_7b_stage2", "olmo2_13b_stage2", "olmo2_32b_stage2", S2):
        with open(f"experiments/{name}.yaml") as f:
            assert "strategy" not in (yaml.safe_load(f).get("trainer") or {}), name
