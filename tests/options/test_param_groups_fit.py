"""Several parameter groups in a real fit (``model.param_groups``): each group's LR follows the schedule times
its own ``lr_scale``, and each parameter's update is AdamW with its own group's LR and weight decay, written
out by hand, over every step of the fit and across a resume."""

from __future__ import annotations

import math

import torch
from lightning.pytorch import Callback
from training_helpers import tiny_args

from olmo2_lit.lightning_cli import OLMo2CLI

PEAK = 0.01
GROUPS = (
    '[{patterns: ["embeddings.weight"], weight_decay: 0.0},'
    ' {patterns: ["lm_head.weight"], lr_scale: 0.5, weight_decay: 0.3},'
    ' {patterns: ["blocks.0.*"], lr_scale: 2.0}]'
)
#: group name -> (lr_scale, weight_decay); "default" holds every parameter no pattern matches
EXPECTED = {"default": (1.0, 0.1), "group0": (1.0, 0.0), "group1": (0.5, 0.3), "group2": (2.0, 0.1)}


def factor(step: int) -> float:
    """tiny_args' CosineWithWarmup(warmup 2, t_max 20, alpha_f 0.1) at step ``step`` (from 1)."""
    if step < 2:
        return step / 2
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - 2) / 18))


class StepRecorder(Callback):
    """Per optimizer step: each group's LR and weight decay, and each parameter's gradient and value after
    the step (a post-step hook of the torch optimizer: the gradients it stepped with are still there)."""

    def __init__(self) -> None:
        self.start: dict[str, torch.Tensor] = {}
        self.steps: list[dict] = []

    def on_train_start(self, trainer, pl_module) -> None:
        names = {p: n for n, p in pl_module.model.named_parameters()}
        self.start = {n: p.detach().clone() for p, n in names.items()}
        optimizer = trainer.optimizers[0]

        def after(opt, args, kwargs) -> None:
            self.steps.append(
                {
                    "groups": {g["name"]: (g["lr"], g["weight_decay"]) for g in opt.param_groups},
                    "group_of": {names[p]: g["name"] for g in opt.param_groups for p in g["params"]},
                    "grads": {names[p]: p.grad.detach().clone() for p in names},
                    "params": {names[p]: p.detach().clone() for p in names},
                }
            )

        optimizer.register_step_post_hook(after)


def _fit(root, shards, *, max_steps: int, ckpt_path=None) -> StepRecorder:
    extra = ("--model.optimizer.init_args.lr", str(PEAK), "--model.param_groups", GROUPS)
    args = tiny_args(root, shards, max_steps=max_steps, extra=extra)
    cli = OLMo2CLI(args=args, run=False)  # run=False: no subcommand
    recorder = StepRecorder()
    cli.trainer.callbacks.append(recorder)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt_path)
    return recorder


def _check_lrs(steps: list[dict], first_step: int) -> None:
    for k, step in enumerate(steps, first_step):
        assert set(step["groups"]) == set(EXPECTED)
        for name, (scale, wd) in EXPECTED.items():
            lr, decay = step["groups"][name]
            assert lr == PEAK * scale * factor(k) or math.isclose(
                lr, PEAK * scale * factor(k), rel_tol=1e-12
            ), (
                k,
                name,
                lr,
            )
            assert decay == wd, (k, name)


def _check_updates(start: dict, steps: list[dict], first_step: int, moments=None) -> dict:
    """Hand AdamW (betas 0.9/0.95, eps 1e-8, float64) per parameter with its group's expected LR and decay;
    returns the moments for a continuation."""
    moments = moments or {n: (torch.zeros_like(p, dtype=torch.float64),) * 2 for n, p in start.items()}
    params = {n: p.double() for n, p in start.items()}
    for k, step in enumerate(steps, first_step):
        for name in params:
            scale, wd = EXPECTED[step["group_of"][name]]
            lr, g = PEAK * scale * factor(k), step["grads"][name].double()
            m, v = moments[name]
            m, v = 0.9 * m + 0.1 * g, 0.95 * v + 0.05 * g * g
            moments[name] = (m, v)
            p = params[name] * (1 - lr * wd)
            params[name] = p - lr * (m / (1 - 0.9**k)) / ((v / (1 - 0.95**k)).sqrt() + 1e-8)
            torch.testing.assert_close(step["params"][name].double(), params[name], atol=2e-7, rtol=1e-5)
    return moments


def test_each_group_steps_with_its_own_lr_and_decay_and_keeps_them_on_resume(shards, tmp_path):
    """Four groups (default decay 0.1; embeddings without decay; lm_head at half the LR with decay 0.3;
    block 0 at twice the LR): at every step of a 4-step fit each group's LR is peak x scale x the cosine's
    factor at that step (0.5, 1, 0.9931, ...), and every parameter equals AdamW computed by hand with its
    group's values. A fit of 2 steps resumed to 4 runs steps 3 and 4 at the same per-group LRs."""
    whole = _fit(tmp_path / "whole", shards, max_steps=4)
    assert len(whole.steps) == 4
    _check_lrs(whole.steps, 1)
    assert {whole.steps[0]["group_of"][n] for n in ("embeddings.weight", "lm_head.weight")} == {
        "group0",
        "group1",
    }
    assert sum(g == "group2" for g in whole.steps[0]["group_of"].values()) > 5
    assert sum(g == "default" for g in whole.steps[0]["group_of"].values()) > 5
    _check_updates(whole.start, whole.steps, 1)

    first = _fit(tmp_path / "resumed", shards, max_steps=2)
    resumed = _fit(
        tmp_path / "resumed", shards, max_steps=4, ckpt_path=str(tmp_path / "resumed/ckpt/last.ckpt")
    )
    assert len(first.steps) == 2 and len(resumed.steps) == 2
    _check_lrs(resumed.steps, 3)
    for name, value in resumed.steps[-1]["params"].items():
        assert torch.equal(value, whole.steps[-1]["params"][name]), name
