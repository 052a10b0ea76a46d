"""Callbacks use only what the module and the datamodule declare: the members of ``RunModule``
(olmo2_lit/train/contract.py) on ``pl_module`` and of ``RunData`` (olmo2_lit/data/contract.py) on the
datamodule. Read from each callback's source with ``ast``, so a new callback is held to it too.

Guards against a callback that grows a dependency on an attribute nobody declared (the way
``step_loss``, ``token_bytes`` and the datamodule's ``_train`` were read before issue 20).
"""

import ast
from pathlib import Path

from olmo2_lit.data.contract import RunData
from olmo2_lit.train.contract import RunModule
from olmo2_lit.train.lit_module import OLMo2LitModule

CALLBACKS = Path(__file__).resolve().parents[1] / "callbacks"


def _members(protocol: type) -> set[str]:
    names = set(getattr(protocol, "__annotations__", {}))
    names |= {n for n in vars(protocol) if not n.startswith("_")}
    return names


def _reads(tree: ast.AST, owner) -> set[str]:
    """Attribute names read on expressions that ``owner`` accepts (e.g. the name ``pl_module``)."""
    return {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute) and owner(node.value)}


def _is_pl_module(node: ast.expr) -> bool:
    return isinstance(node, ast.Name) and node.id == "pl_module"


def _is_datamodule(node: ast.expr) -> bool:
    """``datamodule`` or ``<anything>.datamodule``."""
    return (isinstance(node, ast.Name) and node.id == "datamodule") or (
        isinstance(node, ast.Attribute) and node.attr == "datamodule"
    )


def test_callbacks_read_only_the_declared_members_of_the_module_and_the_datamodule():
    module, data = _members(RunModule), _members(RunData)
    bad = []
    for path in sorted(CALLBACKS.glob("*.py")):
        tree = ast.parse(path.read_text())
        bad += [f"{path.name}: pl_module.{n}" for n in sorted(_reads(tree, _is_pl_module) - module)]
        bad += [f"{path.name}: datamodule.{n}" for n in sorted(_reads(tree, _is_datamodule) - data)]
    assert not bad, "undeclared reads (declare them in a contract first):\n" + "\n".join(bad)


def test_the_module_satisfies_its_contract():
    missing = [
        n
        for n in _members(RunModule)
        if not hasattr(OLMo2LitModule, n) and n not in ("config", "model", "last_step", "device", "training")
    ]  # fmt: skip  (instance fields)
    assert not missing, missing
    module = OLMo2LitModule()
    assert isinstance(module, RunModule)


def test_the_reader_finds_an_undeclared_read():
    tree = ast.parse("pl_module.step_loss\ntrainer.datamodule._train\nself.x\n")
    assert _reads(tree, _is_pl_module) == {"step_loss"}
    assert _reads(tree, _is_datamodule) == {"_train"}
