"""The torch floor declared in pyproject.toml is the newest release among the torch APIs we use.

Only one torch (the CI's pin) is installed, so the floor cannot be tested by installing it. Instead each
torch API the package relies on is listed with the release that introduced it (from the PyTorch release
notes), the test checks that every listed API exists in the installed torch and is still used by the
source, and that the declared floor is the newest of those releases. Guards against a floor that names a
torch missing a function we call (``>=2.5`` while ``clip_grads_with_norm_`` arrived in 2.6).
"""

import importlib
import inspect
import re
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]

#: (what we use, how to find it in the installed torch, the string the source uses, torch release)
REQUIRED = [
    ("torch.nn.utils.get_total_norm", "torch.nn.utils:get_total_norm", "get_total_norm", (2, 6)),
    (
        "torch.nn.utils.clip_grads_with_norm_",
        "torch.nn.utils:clip_grads_with_norm_",
        "clip_grads_with_norm_",
        (2, 6),
    ),
    # FSDP2 moved from torch.distributed._composable.fsdp to the public path in 2.6 (pytorch#141868).
    ("torch.distributed.fsdp.fully_shard", "torch.distributed.fsdp:fully_shard", "fully_shard", (2, 6)),
    (
        "torch.distributed.fsdp.MixedPrecisionPolicy",
        "torch.distributed.fsdp:MixedPrecisionPolicy",
        "MixedPrecisionPolicy",
        (2, 6),
    ),
    # torch.distributed._tensor became the public torch.distributed.tensor in 2.5.
    (
        "torch.distributed.tensor.experimental.implicit_replication",
        "torch.distributed.tensor.experimental:implicit_replication",
        "implicit_replication",
        (2, 5),
    ),
    ("scaled_dot_product_attention(enable_gqa=...)", None, "enable_gqa", (2, 5)),
    ("nn.Module.compile()", "torch.nn:Module.compile", ".compile()", (2, 2)),
    # the public spelling of torch._dynamo.disable (private names live in olmo2_lit/compat.py)
    ("torch.compiler.disable", "torch.compiler:disable", "torch.compiler.disable", (2, 1)),
    ("torch.load(mmap=True)", None, "mmap=True", (2, 1)),
]


def _declared_floor() -> tuple[int, int]:
    text = (ROOT / "pyproject.toml").read_text()
    match = re.search(r'"torch>=(\d+)\.(\d+)[^"]*"', text)
    assert match, "pyproject.toml declares no torch>=X.Y dependency"
    return int(match.group(1)), int(match.group(2))


def _source() -> str:
    files = [*(ROOT / "olmo2_lit").rglob("*.py"), *(ROOT / "callbacks").rglob("*.py")]
    return "\n".join(f.read_text() for f in files)


def test_declared_floor_is_the_newest_release_we_need():
    floor = _declared_floor()
    needed = max(version for *_, version in REQUIRED)
    assert floor == needed, f"pyproject.toml says torch>={floor[0]}.{floor[1]}; the APIs below need {needed}"


def test_every_listed_api_exists_here_and_is_still_used():
    source = _source()
    for name, where, used_as, _ in REQUIRED:
        assert used_as in source, f"{name} is no longer used; drop it from REQUIRED"
        if where:
            module, attr = where.split(":")
            obj = importlib.import_module(module)
            for part in attr.split("."):
                obj = getattr(obj, part)
    q, kv = torch.zeros(1, 4, 2, 8), torch.zeros(1, 2, 2, 8)  # 4 query heads share 2 key/value heads
    assert torch.nn.functional.scaled_dot_product_attention(q, kv, kv, enable_gqa=True).shape == q.shape
    assert "mmap" in inspect.signature(torch.load).parameters


def test_docs_state_the_same_range():
    floor = ".".join(map(str, _declared_floor()))
    readme = (ROOT / "README.md").read_text()
    assert f"`>={floor},<" in readme, f"README.md should state the declared torch range >={floor}"
