"""Resume positions around the multiples that matter, at k-1, k and k+1: the micro-step every rank takes
together, the end of a data epoch (whole global batches only), a skip, and a token position that is not a
whole instance of the new sequence length (docs/data.md, "Resume").

The rule (``olmo2_lit/data/resume.py``): the saved token position becomes ``tokens // sequence_length``
instances, rounded down to a multiple of ``micro_batch_size x world size``; what is rounded off is replayed
and taken off ``tokens_seen``, so the run's token counter and its place in the data move together.
Expectations are computed here with small numbers (T = 16 tokens per instance).

Guards against a resume that skips instances it never trained on (rounding up), replays without saying so,
counts replayed tokens twice, rolls over to the next epoch one micro-step early or late, and a datamodule
whose first batch after such a resume is not the first unconsumed micro-step.
"""

import warnings

import numpy as np
import pytest

from olmo2_lit.data.batch_plan import BatchPlan
from olmo2_lit.data.datamodule import TokenShardDataModule
from olmo2_lit.data.mixture import DataSource
from olmo2_lit.data.position import PositionTracker
from olmo2_lit.data.resume import saved_position
from olmo2_lit.prepare.writer import RollingShardWriter

T = 16
EARLIER = 5 * T  # tokens of earlier epochs in the saved total


def state(instances: int, *, epoch: int = 1, tokens: int | None = None) -> dict:
    tokens = instances * T if tokens is None else tokens
    return {"epoch": epoch, "tokens": tokens, "total_tokens": EARLIER + tokens, "sequence_length": T}


def resumed(saved: dict, *, sequence_length: int = T, step: int = 4):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = saved_position(saved, sequence_length=sequence_length, step=step)
    return out, [str(w.message) for w in caught]


# --- saved_position --------------------------------------------------------------------------------
@pytest.mark.parametrize(("instances", "aligned"), [(7, 4), (8, 8), (9, 8), (11, 8), (12, 12)])
def test_a_position_is_rounded_down_to_the_micro_step_and_the_rest_replayed(instances, aligned):
    """micro x world = 4: 7 -> 4 (3 replayed), 8 stays, 9 -> 8 (1 replayed); tokens seen lose the replay."""
    (epoch, at, seen), messages = resumed(state(instances))
    assert (epoch, at) == (1, aligned)
    assert seen == EARLIER + aligned * T  # the counter and the position move together
    replayed = instances - aligned
    if replayed:
        assert messages == [
            f"the saved position ({instances} instances) is not a multiple of micro_batch_size x world "
            f"size = 4; replaying {replayed} instances"
        ]
    else:
        assert messages == []


@pytest.mark.parametrize(("tokens", "aligned"), [(2 * 32 - 1, 1), (2 * 32, 2), (2 * 32 + 1, 2)])
def test_a_token_position_that_is_not_a_whole_new_instance_is_rounded_down(tokens, aligned):
    """Saved at T = 16 (tokens 63, 64, 65 are possible there only with odd positions of another run; the
    arithmetic is the same), resumed at sequence length 32 with one instance per micro-step: 1, 2, 2
    instances; the 31, 0, 1 tokens in front of the new position are replayed and not counted twice."""
    (epoch, at, seen), _ = resumed(state(0, tokens=tokens), sequence_length=32, step=1)
    assert (epoch, at) == (1, aligned)
    assert seen == EARLIER + aligned * 32


# --- PositionTracker: the epoch's end, skips, restores ----------------------------------------------
PLAN = BatchPlan(sequence_length=T, global_batch=8, micro_batch=2, world_size=2)  # 4 per micro-step


@pytest.mark.parametrize(("epoch_size", "end"), [(23, 16), (24, 24), (25, 24)])
def test_an_epoch_ends_after_its_last_whole_global_batch(epoch_size, end):
    """Global batch 8: an epoch of 23 instances uses 16, of 24 or 25 uses 24. One micro-step before the
    end is still epoch 0; the end itself is epoch 1 at 0; one micro-step on is epoch 1 at 4."""
    tracker = PositionTracker(plan=PLAN, epoch_size=epoch_size)
    tracker.advance(end - 4)
    assert (tracker.position.epoch, tracker.position.instances) == (0, end - 4)
    tracker.advance(4)
    assert (tracker.position.epoch, tracker.position.instances) == (1, 0)
    tracker.advance(4)
    assert (tracker.position.epoch, tracker.position.instances, tracker.tokens_seen) == (1, 4, (end + 4) * T)


@pytest.mark.parametrize(("tokens", "instances"), [(0, 0), (8 * T - 1, 8), (8 * T, 8), (8 * T + 1, 12)])
def test_a_skip_rounds_up_to_the_next_micro_step(tokens, instances):
    """Micro-steps of 4 instances (64 tokens): 127 and 128 tokens skip 8 instances, 129 skips 12."""
    tracker = PositionTracker(plan=PLAN, epoch_size=40)
    tracker.skip_tokens(tokens)
    assert (tracker.position.instances, tracker.tokens_seen) == (instances, instances * T)


@pytest.mark.parametrize(
    ("saved", "position", "seen"),
    [(15, (0, 12), 12), (16, (1, 0), 16), (17, (1, 0), 16), (20, (1, 4), 20)],
)
def test_a_restored_position_at_or_past_the_epoch_end_starts_the_next_epoch(saved, position, seen):
    """A position saved by a run with a longer epoch (21 instances, global batch 4: end 20), restored
    with global batch 8 (end 16): 15 -> 12 (rounded to 4), 16 and 17 -> epoch 1 at 0, 20 -> epoch 1 at 4."""
    saved_state = {"epoch": 0, "tokens": saved * T, "total_tokens": saved * T, "sequence_length": T}
    tracker = PositionTracker(plan=PLAN, epoch_size=21)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the replay warning, tested above
        tracker.load_state_dict(saved_state)
    assert (tracker.position.epoch, tracker.position.instances) == position
    assert tracker.tokens_seen == seen * T


# --- the datamodule: the first batch after such a resume ------------------------------------------
VOCAB = 512


@pytest.fixture
def train_shards(tmp_path):
    """680 tokens in shards of 300: 42 instances of 16."""
    rng = np.random.default_rng(0)
    tokens = rng.integers(1, VOCAB, 680)
    writer = RollingShardWriter(
        tmp_path / "train",
        prefix="part",
        shard_size_tokens=300,
        vocab_size=VOCAB,
        eos_token_id=0,
        tokenizer="t.json",
        tokenizer_sha256="0" * 64,
    )
    writer.write(tokens)
    writer.close()
    return str(tmp_path / "train")


def datamodule(path: str, **kw) -> TokenShardDataModule:
    args = dict(
        vocab_size=VOCAB,
        train_sources=[DataSource(paths=[path])],
        sequence_length=T,
        global_batch_size=8,
        micro_batch_size=2,
        seed=3,
    )
    dm = TokenShardDataModule(**{**args, **kw})

    class Trainer:  # one rank, training
        global_rank, world_size, training = 0, 1, True

    dm.trainer = Trainer()
    dm.setup("fit")
    return dm


@pytest.mark.parametrize(("saved", "start"), [(13, 12), (14, 14), (15, 14)])
def test_a_run_resumed_off_the_batch_starts_at_the_first_unconsumed_micro_step(train_shards, saved, start):
    """Saved by a run with global batch 5 and micro-batch 1 (positions 5, 10, 15 happen there; 13 and 14
    under other layouts), resumed with global batch 8 and micro-batch 2: the first micro-batch is
    instances ``start, start + 1`` of the epoch's order, not a multiple of the global batch."""
    before = datamodule(train_shards, global_batch_size=5, micro_batch_size=1)
    saved_state = before.state_dict()
    saved_state.update(tokens=saved * T, total_tokens=saved * T)
    after = datamodule(train_shards)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        after.load_state_dict(saved_state)
    assert after.tokens_seen == start * T
    # the epoch's order as a run from the start consumes it
    order = [i for batch in datamodule(train_shards).train_dataloader() for i in batch["index"].tolist()]
    first = next(iter(after.train_dataloader()))["index"].tolist()
    assert first == order[start : start + 2]
