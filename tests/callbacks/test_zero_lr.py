"""``lr: 0`` and schedules that are 0 over a whole fit (``olmo2_lit/train/zero_lr.py``, warned by
``Housekeeping``): one warning naming the LR.

Guards against a fit that trains nothing without a word (``lr: 0`` for AdamW or SkipStepAdamW, a schedule
at 0 from the first step of the fit), against a false warning for a run whose LR reaches 0 only at its
last step or after it, and against the check reading the schedule at the wrong step (a resumed fit).
"""

import pytest
import torch
from training_helpers import fit, load_weights, tiny_args

from olmo2_lit.train.schedules import Constant, LinearDecay, ScheduledLR
from olmo2_lit.train.zero_lr import zero_lr_message

FROM = "model.optimizer.init_args.lr"


def scheduler(schedule, *, lr=1e-3, done=0, tokens_seen=0, tokens_per_step=100) -> ScheduledLR:
    """A scheduler as a fit holds it after ``done`` optimizer steps (a resume restores that count)."""
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=lr)
    sched = ScheduledLR(
        optimizer, schedule=schedule, tokens_per_step=tokens_per_step, tokens_seen=lambda: tokens_seen
    )
    sched.last_epoch = done
    return sched


def test_a_zero_peak_lr_is_named():
    message = zero_lr_message(scheduler(Constant(), lr=0.0), steps=10, peak_from=FROM)
    assert (
        message
        == "the learning rate is 0 (model.optimizer.init_args.lr: 0.0): nothing will train; set a positive lr"
    )
    assert zero_lr_message(scheduler(Constant(), lr=1e-9), steps=10, peak_from=FROM) is None


K = 4  # LinearDecay over K steps: steps 1..K-1 train, step K and after run at 0 (alpha_f 0)


@pytest.mark.parametrize("done, warned", [(K - 2, False), (K - 1, True), (K, True)])
def test_a_schedule_at_zero_from_the_next_step_on_is_named(done, warned):
    # the fit's next step is done + 1: K - 1 still trains, K is the first at 0
    message = zero_lr_message(scheduler(LinearDecay(t_max=K), done=done), steps=3, peak_from=FROM)
    assert (message is not None) == warned
    if warned:
        assert message == (
            f"the learning rate is 0 at every step of this fit (steps {done + 1}..{done + 3}): "
            "model.schedule (LinearDecay) is 0 there, from a peak of 0.001; nothing will train; check its "
            "t_max, alpha_f and units"
        )


@pytest.mark.parametrize("steps", [1, K - 1, K, K + 1])
def test_a_run_whose_lr_reaches_zero_before_its_end_is_not_warned(steps):
    assert zero_lr_message(scheduler(LinearDecay(t_max=K)), steps=steps, peak_from=FROM) is None


@pytest.mark.parametrize("tokens_seen, warned", [(250, False), (300, True)])
def test_a_token_schedule_is_read_at_the_data_position(tokens_seen, warned):
    # t_max 400 tokens, 100 per step: the next step is at tokens_seen + 100; 400 is the first at 0
    sched = scheduler(LinearDecay(t_max=400, units="tokens"), tokens_seen=tokens_seen)
    assert (zero_lr_message(sched, steps=2, peak_from=FROM) is not None) == warned


SKIP_STEP = ("--model.optimizer", "olmo2_lit.train.skip_step.SkipStepAdamW")
EVERY_STEP = ("--checkpoint.every_n_train_steps", "1")


@pytest.mark.parametrize(
    "extra, message",
    [
        (
            ("--model.optimizer.init_args.lr", "0"),
            "the learning rate is 0 (model.optimizer.init_args.lr: 0.0)",
        ),
        ((*SKIP_STEP, "--model.optimizer.init_args.lr", "0"), "the learning rate is 0 (model.optimizer"),
        (
            (
                "--model.schedule",
                "olmo2_lit.train.schedules.LinearDecay",
                "--model.schedule.t_max",
                "1",
                "--model.schedule.warmup",
                "0",
            ),  # fmt: skip
            "the learning rate is 0 at every step of this fit (steps 1..2): model.schedule (LinearDecay)",
        ),
    ],
    ids=["adamw", "skip_step_adamw", "schedule"],
)
def test_a_fit_with_every_lr_zero_warns_and_changes_no_weight(shards, tmp_path, extra, message):
    with pytest.warns(UserWarning, match="nothing will train") as warned:
        fit(tiny_args(tmp_path, shards, max_steps=2, extra=(*EVERY_STEP, *extra)))
    (line,) = [str(w.message) for w in warned if "nothing will train" in str(w.message)]
    assert line.startswith(message)
    one, two = (load_weights(tmp_path / "ckpt" / f"step000000{s}.ckpt") for s in (1, 2))
    assert all(torch.equal(one[k], two[k]) for k in one)  # the second step changed nothing


def test_a_fit_that_trains_is_not_warned(shards, tmp_path, recwarn):
    fit(tiny_args(tmp_path, shards, max_steps=2, extra=EVERY_STEP))
    assert not [w for w in recwarn if "nothing will train" in str(w.message)]
    one, two = (load_weights(tmp_path / "ckpt" / f"step000000{s}.ckpt") for s in (1, 2))
    assert not torch.equal(one["model.lm_head.weight"], two["model.lm_head.weight"])


def test_a_resumed_fit_whose_remaining_steps_are_all_at_zero_warns(shards, tmp_path, recwarn):
    """The check reads only the steps a resumed fit still runs. The schedule is 0 at steps 3 and 4 and
    trains at every other step (``paused_schedule.PausedConstant``): a fit of steps 1..2 is not warned;
    resumed from step 2 with max_steps 4 it runs only steps 3..4, all at 0, and is warned, although the
    schedule trains again from step 5 (past the fit's end), and those two steps change no weight."""
    paused = ("--model.schedule", '{"class_path": "paused_schedule.PausedConstant", "init_args": '
              '{"start": 3, "end": 5}}')  # fmt: skip
    fit(tiny_args(tmp_path, shards, max_steps=2, extra=(*EVERY_STEP, *paused)))
    assert not [w for w in recwarn if "nothing will train" in str(w.message)]
    resume = (*EVERY_STEP, *paused, "--ckpt_path", str(tmp_path / "ckpt" / "step0000002.ckpt"))
    with pytest.warns(UserWarning, match="nothing will train") as warned:
        fit(tiny_args(tmp_path, shards, max_steps=4, extra=resume))
    (line,) = [str(w.message) for w in warned if "nothing will train" in str(w.message)]
    assert line.startswith(
        "the learning rate is 0 at every step of this fit (steps 3..4): model.schedule (PausedConstant)"
    )
    three, four = (load_weights(tmp_path / "ckpt" / f"step000000{s}.ckpt") for s in (3, 4))
    assert all(torch.equal(three[k], four[k]) for k in three)
