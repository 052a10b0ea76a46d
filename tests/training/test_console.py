"""What a new user sees: Lightning's lines that do not apply to our runs are hidden
(``olmo2_lit/console.py``), and a stage-2 recipe given alone says which files to layer it after
(``olmo2_lit/recipe_layers.py``).

Guards against the cloud-logger tip, the "Trainer already configured with model summary callbacks" line,
torch's ``_pytree`` deprecation warning and, on a resume, Lightning's "your dataloader is not resumable"
warning (ours resumes exactly) reaching the console of ``olmo2-lit fit``; against a filter that hides
nothing (``--debug`` shows every one of them on the same resume, so a Lightning upgrade that rewords a
line fails here by name); and against ``Option 't_max' is not accepted`` for a stage-2 recipe alone.
"""

from pathlib import Path

import pytest
from training_helpers import fit_subprocess, tiny_args

from olmo2_lit.console import HIDDEN_INFO, HIDDEN_WARNINGS
from olmo2_lit.lightning_cli import OLMo2CLI

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


def shown(proc) -> list[str]:
    """The hidden lines' starts that appear in a run's output."""
    output = proc.stdout + proc.stderr
    return [start for start in [*HIDDEN_INFO, *HIDDEN_WARNINGS] if start in output]


@pytest.mark.slow
def test_a_fit_and_its_resume_show_none_of_lightnings_off_topic_lines(shards, tmp_path):
    # as a new user runs it: model summary on; a checkpoint at step 3, resumed mid-epoch to step 4
    args = tiny_args(tmp_path, shards, max_steps=3, extra=("--trainer.enable_model_summary", "true"))
    fresh = fit_subprocess(args, tmp_path)
    assert shown(fresh) == [] and "training FLOPs per token" in fresh.stdout  # our summary still prints
    assert "~-" not in fresh.stderr  # the start-up line (tests/test_startup.py) never says a negative time

    resume = [*args, "--trainer.max_steps", "4", "--ckpt_path", str(tmp_path / "ckpt" / "step0000003.ckpt")]
    everything = fit_subprocess([*resume, "--debug"], tmp_path)  # --debug: nothing hidden
    assert shown(everything) == [*HIDDEN_INFO, *HIDDEN_WARNINGS]
    quiet = fit_subprocess(resume, tmp_path)
    assert shown(quiet) == [] and "Restored all states from the checkpoint" in quiet.stderr


@pytest.mark.parametrize("size", ["1b", "7b", "13b", "32b"])
def test_a_stage2_recipe_alone_names_its_layers_and_the_command(size, capsys, monkeypatch):
    monkeypatch.chdir(EXPERIMENTS.parent)  # as the docs run it, from the repository root
    recipe = f"experiments/olmo2_{size}_stage2.yaml"
    with pytest.raises(SystemExit) as exit_info:
        OLMo2CLI(args=["fit", "--config", recipe, "--print_config"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    base = "" if size == "1b" else "--config experiments/olmo2_1b_stage1.yaml "
    assert (
        f"error: {recipe} is layered after olmo2_{size}_stage1.yaml and olmo2_stage2_anneal.yaml, not given "
        f"before it; run:\n  olmo2-lit fit {base}--config experiments/olmo2_{size}_stage1.yaml "
        f"--config experiments/olmo2_stage2_anneal.yaml --config {recipe} --print_config\n"
    ) in err
    assert "t_max" not in err


def test_the_command_it_names_parses(capsys, monkeypatch):
    monkeypatch.chdir(EXPERIMENTS.parent)
    with pytest.raises(SystemExit):
        OLMo2CLI(args=["fit", "--config", "experiments/olmo2_7b_stage2.yaml", "--print_config"])
    command = capsys.readouterr().err.split("run:\n", 1)[1].split()
    assert command[:2] == ["olmo2-lit", "fit"]
    with pytest.raises(SystemExit) as exit_info:
        OLMo2CLI(args=command[1:])
    assert exit_info.value.code in (0, None)
    assert "max_steps: 11931" in capsys.readouterr().out  # the 7B stage 2's (OL stop_at: 11931)


def test_a_stage2_recipe_after_only_part_of_its_layers_names_the_missing_one(capsys):
    stage1, stage2 = EXPERIMENTS / "olmo2_1b_stage1.yaml", EXPERIMENTS / "olmo2_1b_stage2.yaml"
    with pytest.raises(SystemExit):
        OLMo2CLI(args=["fit", "--config", str(stage1), "--config", str(stage2), "--print_config"])
    assert (
        f"{stage2} is layered after olmo2_stage2_anneal.yaml, not given before it" in capsys.readouterr().err
    )
