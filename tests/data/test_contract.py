"""The datamodule keeps the contract the module and callbacks read it through (``RunData``)."""

import inspect

from olmo2_lit.data.contract import RunData
from olmo2_lit.data.datamodule import TokenShardDataModule


def _members(cls) -> set[str]:
    return {name for name in vars(cls) if not name.startswith("_")} | set(cls.__annotations__)


def test_the_datamodule_satisfies_run_data_member_for_member():
    dm = TokenShardDataModule(vocab_size=300, sequence_length=8, global_batch_size=4, micro_batch_size=2)
    assert isinstance(dm, RunData)
    for name in _members(RunData):
        declared, actual = getattr(RunData, name, None), getattr(TokenShardDataModule, name, None)
        if inspect.isfunction(declared):
            assert inspect.signature(actual) == inspect.signature(declared), name
        elif isinstance(declared, property):
            assert isinstance(actual, property), f"{name}: a property in RunData"
    assert dm.tokenizer_identity() is None and dm.tokens_seen == 0 and dm.batch_plan.micro_batch == 2


def test_an_object_without_the_members_is_not_run_data():
    assert not isinstance(object(), RunData)
