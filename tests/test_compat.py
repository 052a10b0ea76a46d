"""The upgrade alarm: one test per entry of ``olmo2_lit/compat.py``, each on the real Lightning or torch
object, failing with a message that names what moved and the entry to fix.

Guards against a Lightning or torch upgrade that renames or removes one of the private names we rely
on: without these tests most of them sit in recovery code (SLURM requeue, pre-emption, rollback) that a
normal run never reaches. Also checks that every entry has its test here and its line in docs/training.md.
"""

from __future__ import annotations

import ast
import inspect
import os
import re
import signal
from pathlib import Path

import lightning
import pytest
import torch
from lightning.fabric.plugins.environments import LightningEnvironment, SLURMEnvironment
from lightning.pytorch import Callback, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint, ModelSummary
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.demos.boring_classes import BoringDataModule, BoringModel
from lightning.pytorch.strategies import DDPStrategy, DeepSpeedStrategy, FSDPStrategy, ModelParallelStrategy
from lightning.pytorch.utilities.exceptions import SIGTERMException

from olmo2_lit import compat

ROOT = Path(__file__).resolve().parents[1]
COMPAT = ROOT / "olmo2_lit" / "compat.py"
DOCS = ROOT / "docs" / "training.md"
VERSIONS = f"lightning {lightning.__version__} / torch {torch.__version__}"


def moved(what: str, entry: str) -> str:
    return f"{VERSIONS}: {what} moved or changed; see compat.{entry}"


def _trainer(tmp_path, **kwargs) -> Trainer:
    defaults = dict(
        accelerator="cpu",
        devices=1,
        default_root_dir=tmp_path,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    return Trainer(**{**defaults, **kwargs})


class AtStep(Callback):
    """Calls ``action(trainer)`` once, at the end of the batch that completes optimizer step ``step``."""

    def __init__(self, step: int, action) -> None:
        self.step, self.action, self.done = step, action, False

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step and not self.done:
            self.done = True
            self.action(trainer)


@pytest.fixture
def no_slurm(monkeypatch):
    for name in [n for n in os.environ if n.startswith("SLURM_")]:
        monkeypatch.delenv(name)


@pytest.fixture
def slurm(monkeypatch, tmp_path, slurm_cluster):
    """SLURM's environment variables for one task of a real job on the test cluster (tests/slurm_cluster.py):
    a ``sleep`` that holds the job while the test acts as its task, so ``scontrol requeue`` acts on it.
    Yields ``(cluster, job id)``; the job is cancelled afterwards."""
    job = slurm_cluster.sbatch("--requeue", "--output=/dev/null", "--wrap=sleep 600", cwd=tmp_path)
    running = slurm_cluster.wait_for(job, lambda f: f["JobState"] == "RUNNING", timeout=120, what="started")
    env = {
        **slurm_cluster.env,
        "SLURM_JOB_ID": str(job),
        "SLURM_JOB_NAME": "olmo2",
        "SLURM_NTASKS": "1",
        "SLURM_NTASKS_PER_NODE": "1",
        "SLURM_NNODES": "1",
        "SLURM_NODEID": "0",
        "SLURM_PROCID": "0",
        "SLURM_LOCALID": "0",
        "SLURM_NODELIST": running["NodeList"],
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    yield slurm_cluster, job
    slurm_cluster.scancel(str(job))


# --- torch ----------------------------------------------------------------------------------------------


def test_tensor_version():
    t = torch.zeros(3)
    try:
        before = compat.tensor_version(t)
    except AttributeError as err:
        pytest.fail(moved("Tensor._version", "tensor_version") + f" ({err})")
    t.add_(1)
    assert compat.tensor_version(t) == before + 1, moved(
        "Tensor._version (not bumped in place)", "tensor_version"
    )
    t + 1  # not in place
    assert compat.tensor_version(t) == before + 1, moved(
        "Tensor._version (bumped out of place)", "tensor_version"
    )


def test_foreach():
    xs, ys = [torch.rand(3) + 1, torch.rand(2, 2) + 1], [torch.rand(3) + 1, torch.rand(2, 2) + 1]
    cases = {
        "mul": (lambda: compat.foreach.mul(xs, ys), [x * y for x, y in zip(xs, ys)]),
        "div": (lambda: compat.foreach.div(xs, ys), [x / y for x, y in zip(xs, ys)]),
        "sqrt": (lambda: compat.foreach.sqrt(xs), [x.sqrt() for x in xs]),
    }
    for name, (run, expected) in cases.items():
        for got, want in zip(run(), expected):
            torch.testing.assert_close(got, want, msg=moved(f"torch._foreach_{name}", "foreach"))
    inplace = {
        "mul_": lambda a: compat.foreach.mul_(a, 2.0),
        "div_": lambda a: compat.foreach.div_(a, ys),
        "add_": lambda a: compat.foreach.add_(a, ys),
    }
    expected = {
        "mul_": [x * 2 for x in xs],
        "div_": [x / y for x, y in zip(xs, ys)],
        "add_": [x + y for x, y in zip(xs, ys)],
    }
    for name, run in inplace.items():
        copies = [x.clone() for x in xs]
        run(copies)
        for got, want in zip(copies, expected[name]):
            torch.testing.assert_close(got, want, msg=moved(f"torch._foreach_{name}", "foreach"))


def _wrapped_linear():
    torch.manual_seed(0)
    inner = torch.nn.Linear(4, 4)
    return inner, compat.CheckpointWrapper(inner, checkpoint_impl=compat.CheckpointImpl.NO_REENTRANT)


def test_checkpointwrapper():
    inner, wrapper = _wrapped_linear()
    x = torch.randn(2, 4, requires_grad=True)
    wrapper(x).sum().backward()
    grad = inner.weight.grad.clone()
    inner.weight.grad = None
    inner(x).sum().backward()
    torch.testing.assert_close(
        grad, inner.weight.grad, msg=moved("CheckpointWrapper's gradients", "CheckpointWrapper")
    )
    assert set(wrapper.state_dict()) == set(inner.state_dict()), moved(
        "CheckpointWrapper's state dict keys", "CheckpointWrapper"
    )


def test_checkpointimpl():
    assert {"REENTRANT", "NO_REENTRANT"} <= set(compat.CheckpointImpl.__members__), moved(
        "CheckpointImpl", "CheckpointImpl"
    )


def test_checkpoint_prefix():
    inner, wrapper = _wrapped_linear()
    names = [n for n, _ in torch.nn.Sequential(wrapper).named_parameters()]  # as a parent shows them
    message = moved("checkpoint_wrapper._CHECKPOINT_PREFIX", "CHECKPOINT_PREFIX")
    assert all(compat.CHECKPOINT_PREFIX in n for n in names), message
    assert [n.replace(compat.CHECKPOINT_PREFIX, "") for n in names] == ["0.weight", "0.bias"], message


def test_fsdp_wrap_policy_base():
    from torch.distributed.fsdp.wrap import _Policy

    class Second(compat.fsdp_wrap_policy_base()):
        def units(self, root):
            yield list(root.children())[1]

    try:
        policy = Second()  # abstract (so this raises) if torch renamed _Policy's _run_policy
    except TypeError as err:
        pytest.fail(
            moved("torch.distributed.fsdp.wrap._Policy._run_policy", "fsdp_wrap_policy_base") + f" ({err})"
        )
    assert isinstance(policy, _Policy)
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
    assert policy._run_policy(model, set(), {"k": 1}) == {model[1]: {"k": 1}}
    assert policy._run_policy(model, {model[1]}, {"k": 1}) == {}


def test_read_distributed_checkpoint(tmp_path):
    import torch.distributed.checkpoint as dcp

    state = {"model": {"w": torch.arange(6.0).reshape(2, 3)}, "step": torch.tensor(7)}
    dcp.save(state, checkpoint_id=tmp_path, no_dist=True)
    try:
        read = compat.read_distributed_checkpoint(tmp_path)
    except (ImportError, TypeError) as err:
        pytest.fail(
            moved(
                "torch.distributed.checkpoint's _load_state_dict / _EmptyStateDictLoadPlanner",
                "read_distributed_checkpoint",
            )
            + f" ({err})"
        )
    torch.testing.assert_close(read["model"]["w"], state["model"]["w"])
    torch.testing.assert_close(read["step"], state["step"])


# --- Lightning: the trainer -----------------------------------------------------------------------------


def test_cluster_environment(tmp_path, no_slurm, monkeypatch):
    try:
        env = compat.cluster_environment(_trainer(tmp_path))
    except AttributeError as err:
        pytest.fail(
            moved("Trainer._accelerator_connector.cluster_environment", "cluster_environment") + f" ({err})"
        )
    assert isinstance(env, LightningEnvironment)
    monkeypatch.setenv("SLURM_NTASKS", "1")
    monkeypatch.setenv("SLURM_JOB_NAME", "olmo2")
    assert isinstance(compat.cluster_environment(_trainer(tmp_path)), SLURMEnvironment)


def test_stop_after_this_step(tmp_path):
    trainer = _trainer(tmp_path, max_steps=10, callbacks=[AtStep(3, compat.stop_after_this_step)])
    try:
        trainer.fit(BoringModel())
        stopped = False
    except SIGTERMException:  # Lightning's own exit path for a signalled run
        stopped = True
    message = moved("Trainer._signal_connector.received_sigterm", "stop_after_this_step")
    assert stopped and trainer.global_step == 3, message


def test_slurm_save_and_requeue(tmp_path, slurm):
    trainer = _trainer(
        tmp_path,
        max_steps=10,
        callbacks=[AtStep(2, lambda t: compat.slurm_save_and_requeue(t, signal.SIGUSR1))],
    )
    try:
        trainer.fit(BoringModel())
    except AttributeError as err:
        pytest.fail(
            moved("Trainer._signal_connector._slurm_sigusr_handler_fn", "slurm_save_and_requeue")
            + f" ({err})"
        )
    assert (tmp_path / "hpc_ckpt_1.ckpt").is_file(), moved("Lightning's SLURM save", "slurm_save_and_requeue")
    cluster, job = slurm
    try:  # Lightning's `scontrol requeue $SLURM_JOB_ID` puts the job back in the queue
        cluster.wait_for(job, lambda f: f["Restarts"] == "1", timeout=60, what="requeued")
    except RuntimeError as err:
        pytest.fail(moved("Lightning's SLURM requeue", "slurm_save_and_requeue") + f" ({err})")


def test_checkpoint_interval():
    try:
        every = compat.checkpoint_interval(ModelCheckpoint(every_n_train_steps=5))
    except AttributeError as err:
        pytest.fail(moved("ModelCheckpoint._every_n_train_steps", "checkpoint_interval") + f" ({err})")
    assert every == 5, moved("ModelCheckpoint._every_n_train_steps", "checkpoint_interval")
    assert compat.checkpoint_interval(ModelCheckpoint()) == 0
    assert compat.checkpoint_interval(ModelCheckpoint(every_n_epochs=1)) == 0


def test_save_checkpoint_now(tmp_path):
    callback = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=100, save_top_k=-1)
    for name in ("_should_skip_saving_checkpoint", "_monitor_candidates", "_save_topk_checkpoint"):
        assert callable(getattr(callback, name, None)), moved(
            f"ModelCheckpoint.{name}", "save_checkpoint_now"
        )
    trainer = _trainer(tmp_path, enable_checkpointing=True, callbacks=[callback], max_steps=3)
    trainer.fit(BoringModel())  # no step on the interval of 100: nothing saved
    assert not (tmp_path / "ckpt").exists() or not any((tmp_path / "ckpt").iterdir())
    compat.save_checkpoint_now(callback, trainer)  # the step the fit ended on
    saved = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert len(saved) == 1 and "step=3" in saved[0], moved(
        "ModelCheckpoint's save path", "save_checkpoint_now"
    )
    compat.save_checkpoint_now(callback, trainer)  # this step is saved already: nothing new
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == saved


def test_deepspeed_zero3_norm_groups():
    stage3 = pytest.importorskip("deepspeed.runtime.zero.stage3")
    cls = stage3.DeepSpeedZeroOptimizer_Stage3
    name = "deepspeed.runtime.zero.stage3.DeepSpeedZeroOptimizer_Stage3._get_norm_groups"
    assert callable(vars(cls).get("_get_norm_groups")), moved(name, "deepspeed_zero3_norm_groups")
    # the norm ZeRO-3's own step clips by is built from these groups, so ours equals it
    assert "norm_groups = self._get_norm_groups()" in inspect.getsource(cls), moved(
        name, "deepspeed_zero3_norm_groups"
    )


def test_attached_trainer(tmp_path):
    module = BoringModel()
    try:
        assert compat.attached_trainer(module) is None
    except AttributeError as err:
        pytest.fail(moved("LightningModule._trainer", "attached_trainer") + f" ({err})")
    trainer = _trainer(tmp_path)
    module.trainer = trainer
    assert compat.attached_trainer(module) is trainer, moved("LightningModule._trainer", "attached_trainer")


# --- Lightning: the model summary -----------------------------------------------------------------------


def test_model_summary(tmp_path):
    module, callback = BoringModel(), ModelSummary(max_depth=1)
    trainer = _trainer(tmp_path)
    module.trainer = trainer
    try:
        summary = compat.model_summary(callback, trainer, module)
    except AttributeError as err:
        pytest.fail(moved("ModelSummary._summary", "model_summary") + f" ({err})")
    assert summary.total_parameters == sum(p.numel() for p in module.parameters())


def test_summary_columns(tmp_path):
    module = BoringModel()
    module.trainer = _trainer(tmp_path)
    summary = compat.model_summary(ModelSummary(max_depth=1), module.trainer, module)
    try:
        columns = dict(compat.summary_columns(summary))
    except AttributeError as err:
        pytest.fail(moved("ModelSummary._get_summary_data", "summary_columns") + f" ({err})")
    assert {"Name", "Type", "Params"} <= set(columns), moved("the summary's columns", "summary_columns")
    assert columns["Name"] == ["layer"] and columns["Type"] == ["Linear"]


# --- Lightning: the CLI ---------------------------------------------------------------------------------


class Marker(Callback):
    pass


class HookedCLI(compat.CLIHooks, LightningCLI):
    def trainer_callbacks(self, config, callbacks):
        self.calls = [*getattr(self, "calls", []), "trainer_callbacks"]
        return [*callbacks, Marker()]

    def check_ckpt_path(self):
        self.calls = [*getattr(self, "calls", []), "check_ckpt_path"]


def test_clihooks(tmp_path):
    args = ["--trainer.accelerator=cpu", f"--trainer.default_root_dir={tmp_path}", "--trainer.logger=false"]
    cli = HookedCLI(BoringModel, BoringDataModule, args=args, run=False)
    calls = getattr(cli, "calls", [])
    assert "check_ckpt_path" in calls, moved("LightningCLI._parse_ckpt_path (not called)", "CLIHooks")
    assert "trainer_callbacks" in calls, moved("LightningCLI._instantiate_trainer (not called)", "CLIHooks")
    marked = any(isinstance(c, Marker) for c in cli.trainer.callbacks)
    assert marked, moved("LightningCLI._instantiate_trainer (callbacks not used)", "CLIHooks")


# --- Lightning: strategies ------------------------------------------------------------------------------


def test_set_data_parallel_size():
    strategy = ModelParallelStrategy(data_parallel_size="auto", tensor_parallel_size=1)
    try:
        compat.set_data_parallel_size(strategy, 3)
    except AttributeError as err:
        pytest.fail(
            moved("ModelParallelStrategy._data_parallel_size", "set_data_parallel_size") + f" ({err})"
        )
    assert compat.strategy_settings(strategy)["data_parallel_size"] == 3
    # Lightning's own constructor writes the attribute we set
    given = ModelParallelStrategy(data_parallel_size=5, tensor_parallel_size=1)
    assert compat.strategy_settings(given)["data_parallel_size"] == 5, moved(
        "ModelParallelStrategy._data_parallel_size", "set_data_parallel_size"
    )


def test_saves_distributed_checkpoint():
    for value in (True, False):
        strategy = ModelParallelStrategy(save_distributed_checkpoint=value)
        try:
            assert compat.saves_distributed_checkpoint(strategy) is value
        except AttributeError as err:
            pytest.fail(
                moved("ModelParallelStrategy._save_distributed_checkpoint", "saves_distributed_checkpoint")
                + f" ({err})"
            )


def test_fsdp_state_dict_type():
    for value in ("sharded", "full"):
        try:
            assert compat.fsdp_state_dict_type(FSDPStrategy(state_dict_type=value)) == value
        except AttributeError as err:
            pytest.fail(moved("FSDPStrategy._state_dict_type", "fsdp_state_dict_type") + f" ({err})")


def test_strategy_settings():
    got = compat.strategy_settings(
        ModelParallelStrategy(data_parallel_size=2, tensor_parallel_size=1, save_distributed_checkpoint=False)
    )
    want = {"data_parallel_size": 2, "tensor_parallel_size": 1, "save_distributed_checkpoint": False}
    assert got == want, moved("ModelParallelStrategy's private settings", "strategy_settings")
    got = compat.strategy_settings(FSDPStrategy(state_dict_type="full"))
    assert got["state_dict_type"] == "full", moved("FSDPStrategy._state_dict_type", "strategy_settings")
    got = compat.strategy_settings(DDPStrategy(find_unused_parameters=True))
    assert got == {"ddp_kwargs": {"find_unused_parameters": True}}, moved(
        "DDPStrategy._ddp_kwargs", "strategy_settings"
    )


def test_deepspeedmicrobatch(tmp_path):
    class Ours(compat.DeepSpeedMicroBatch, DeepSpeedStrategy):
        def micro_batch_size(self):
            return 7

    strategy = Ours(stage=2)
    module = BoringModel()
    module.trainer = _trainer(tmp_path, accumulate_grad_batches=3)
    strategy.connect(module)
    strategy._format_batch_size_and_grad_accum_config()  # what Lightning runs while setting DeepSpeed up
    assert strategy.config["train_micro_batch_size_per_gpu"] == 7, moved(
        "DeepSpeedStrategy._auto_select_batch_size", "DeepSpeedMicroBatch"
    )
    assert strategy.config["gradient_accumulation_steps"] == 3


# --- the entries, their tests, their docs ---------------------------------------------------------------


def entries() -> list[str]:
    """Public top-level names defined in compat.py (functions, classes, constants), in order."""
    names = []
    for node in ast.parse(COMPAT.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names += [t.id for t in targets if isinstance(t, ast.Name)]
    return [n for n in names if not n.startswith("_")]


def test_every_entry_has_a_docstring_and_a_test():
    tree = ast.parse(COMPAT.read_text())
    documented = {
        n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and ast.get_docstring(n)
    }
    for node, after in zip(tree.body, tree.body[1:]):  # a constant's docstring is the string after it
        if (
            isinstance(node, (ast.Assign, ast.AnnAssign))
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
        ):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            documented |= {t.id for t in targets if isinstance(t, ast.Name)}
    assert not set(entries()) - documented, (
        f"compat entries without a docstring: {set(entries()) - documented}"
    )
    tests = {name for name in globals() if name.startswith("test_")}
    missing = [e for e in entries() if f"test_{e.lower()}" not in tests]
    assert not missing, f"compat entries without a test_<entry> in tests/test_compat.py: {missing}"


def test_docs_list_every_entry():
    text = DOCS.read_text()
    section = text.split("## Lightning and torch internals we rely on", 1)
    assert len(section) == 2, "docs/training.md has no '## Lightning and torch internals we rely on' section"
    listed = re.findall(r"^- `compat\.(\w+)`", section[1].split("\n## ", 1)[0], flags=re.M)
    assert listed == entries(), f"docs/training.md lists {listed}; olmo2_lit/compat.py defines {entries()}"


def test_numpy_pickle_globals():
    """A pickled numpy array (as the OLMo trainer's train.pt holds its RNG state) loads weights_only with
    these globals, and not without them."""
    import io

    import numpy as np

    from olmo2_lit import compat

    buffer = io.BytesIO()
    torch.save({"rng": np.arange(5, dtype=np.uint32)}, buffer)
    allowed = [np.ndarray, np.dtype, type(np.dtype("uint32")), *compat.numpy_pickle_globals()]
    with pytest.raises(Exception, match="_reconstruct"):
        torch.load(io.BytesIO(buffer.getvalue()), weights_only=True)
    with torch.serialization.safe_globals(allowed):
        loaded = torch.load(io.BytesIO(buffer.getvalue()), weights_only=True)
    assert np.array_equal(loaded["rng"], np.arange(5))
