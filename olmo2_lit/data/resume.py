"""Reading a checkpoint's data position back: what must match, what may change, and where to start.

``TokenShardDataModule.load_state_dict`` applies these once the shards are open (docs/data.md, "Resume").
"""

from __future__ import annotations

from lightning.pytorch.utilities import rank_zero_warn

from olmo2_lit.data.sources import TrainingSet, fingerprint_difference
from olmo2_lit.errors import CheckpointError


def check_saved_data(
    state: dict,
    training_set: TrainingSet,
    *,
    order: str,
    max_target_sequence_length,
    ignore_fingerprint_mismatch: bool,
) -> None:
    """Refuse (or, when told to, warn about) a checkpoint's data position saved on other data or order."""
    if state["fingerprint"] is None:  # converted from another trainer (olmo2_lit/weights/olmo_core*.py)
        fingerprint = state.get("olmo_core_fingerprint")
        rank_zero_warn(
            f"the data position was converted from {state.get('converted_from', 'OLMo-core')}"
            + (f" (its dataset fingerprint {fingerprint})" if fingerprint else "")
            + "; check train_sources lists that run's files, in order"
        )
    elif state["fingerprint"] != training_set.fingerprint:
        message = fingerprint_difference(state["shards"], training_set.shard_list)
        if not ignore_fingerprint_mismatch:
            raise CheckpointError(
                f"the checkpoint's data position is for another shard set: {message}. Set "
                "ignore_fingerprint_mismatch=True to resume at the same token position anyway"
            )
        rank_zero_warn(f"resuming on a different shard set ({message}); ignore_fingerprint_mismatch is set")
    saved = (state.get("order", "olmo"), state.get("max_target_sequence_length"))
    if saved != (order, max_target_sequence_length):
        raise ValueError(
            f"the checkpoint's data position is in the order {saved[0]!r} with max_target_sequence_length "
            f"{saved[1]}; this run has {order!r} and {max_target_sequence_length}: "
            "set data.order and data.max_target_sequence_length as the checkpoint's run did"
        )


def check_converted_batch(state: dict, *, sequence_length: int, global_batch_tokens: int) -> None:
    """Refuse a position converted from another trainer into a run with another instance length or global
    batch: the data order and the LR schedule's step would then not continue that run."""
    if "global_batch_tokens" not in state:
        return
    if state["sequence_length"] != sequence_length:
        raise CheckpointError(
            f"data.sequence_length: the converted checkpoint has {state['sequence_length']}, this run "
            f"{sequence_length}; set it as the converted run did"
        )
    if state["global_batch_tokens"] != global_batch_tokens:
        saved = state["global_batch_tokens"] // sequence_length
        raise CheckpointError(
            f"data.global_batch_size: the converted checkpoint has {saved} instances, this run "
            f"{global_batch_tokens // sequence_length}; set it as the converted run did"
        )


def saved_seed(state: dict, *, seed: int, sequence_length: int) -> int:
    """The seed to go on with (the checkpoint's, as OLMo-core does), warning about what changed."""
    if state["seed"] != seed:
        rank_zero_warn(f"the checkpoint's data seed {state['seed']} replaces the configured seed {seed}")
    if state["sequence_length"] != sequence_length:
        rank_zero_warn(
            f"sequence_length changed from {state['sequence_length']} to {sequence_length}; "
            "resuming at the same token position of a different instance set"
        )
    return state["seed"]


def saved_position(state: dict, *, sequence_length: int, step: int) -> tuple[int, int, int]:
    """``(epoch, instances into it, tokens seen)`` to resume at, rounded down to a position every rank
    reaches together (``step`` = micro batch x world size); the rounded-off instances (and, after a
    change of sequence length, the part of an instance) are replayed, and taken off the tokens seen."""
    instances = state["tokens"] // sequence_length
    aligned = instances // step * step
    if aligned != instances:
        rank_zero_warn(
            f"the saved position ({instances} instances) is not a multiple of micro_batch_size x world "
            f"size = {step}; replaying {instances - aligned} instances"
        )
    replayed = state["tokens"] - aligned * sequence_length
    return state["epoch"], aligned, state["total_tokens"] - replayed
