"""SLURM for real: the project's sbatch templates, submitted to a SLURM cluster on this machine
(tests/slurm_cluster.py: Debian's slurm-wlm and munge, started once per session by tests/conftest.py),
with CPU overrides on the command line and experiments/slurm/cpu.yaml after them (through ``"$@"``).

- ``single_node.sbatch`` runs a 2-task DDP fit to the end under Lightning's ``SLURMEnvironment``.
- ``scancel --signal=USR1 <job>`` (preemption, as docs/multinode.md says) and the template's own
  ``--signal=SIGUSR1@90`` (the time limit, shortened while the job waits) land in the middle of a step;
  the job saves ``hpc_ckpt_1.ckpt`` at the step boundary, requeues itself, and the requeued job (same job
  id, same RUN_DIR) resumes from it and ends with weights and per-step losses bitwise equal to an
  uninterrupted job's.
- ``scancel <job>`` (cancelled outright, SIGTERM then SIGKILL after KillWait) leaves only checkpoints that
  load, and ``--ckpt_path last`` resumes to the same end.
- ``multi_node.sbatch`` on two nodes (two ``slurmd`` on this host) trains one rank per node under FSDP2
  like the single-node DDP job.

Guards against a preemption that loses the accumulated half of a step or repeats one, a requeue that is
never requested or not resumed from, a template whose srun line, devices or nodes do not reach the fit,
and a cancelled job that leaves a half-written checkpoint under a checkpoint's name.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch
import yaml
from training_helpers import fit, load_weights, make_shards, scalars, tiny_args

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SINGLE = ROOT / "experiments" / "slurm" / "single_node.sbatch"
MULTI = ROOT / "experiments" / "slurm" / "multi_node.sbatch"
CE = "train/ce_loss"
STEPS = 6
FINAL = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE")
#: sbatch overrides of the templates' GPU resources: 2 tasks of 1 CPU on a node without GPUs
CPU_RESOURCES = ("--gres=none", "--ntasks-per-node=2", "--cpus-per-task=1")


def losses(run: Path, tag: str = CE) -> list[tuple[int, float]]:
    """(step, value) of a scalar over every TensorBoard version of the run (logged to RUN_DIR/tb)."""
    return scalars(run, tag, logs="tb")


def cpu_overrides(shards: Path) -> list[str]:
    """What follows the template's fit arguments (``"$@"``): experiments/slurm/cpu.yaml (CPU, fp32, a
    2-layer model, global batch 16 = 2 ranks x micro 4 x accumulation 2, so a step has a middle) and the
    shards."""
    return ["--config=experiments/slurm/cpu.yaml", f'--data.train_sources=[{{"paths": ["{shards}"]}}]']


def wait_in_step(step: int, marker: Path) -> list[str]:
    """tests/training/wait_for_signal.py: wait mid-step ``step`` until SLURM's signal arrives."""
    return [
        "--trainer.callbacks+=wait_for_signal.WaitForSignal",
        f"--trainer.callbacks.step={step}",
        f"--trainer.callbacks.marker={marker}",
    ]


def submit(
    cluster, cwd: Path, run_dir: Path, *fit_args: str, template: Path = SINGLE, sbatch=CPU_RESOURCES
) -> int:
    """``sbatch [sbatch] TEMPLATE [fit_args]`` from ``cwd`` (which holds ``experiments/`` and ``logs/``, as
    the templates expect) with ``RUN_DIR``, this Python's ``olmo2-lit`` first on PATH and the test callbacks
    importable."""
    (cwd / "logs").mkdir(exist_ok=True)  # the templates' --output=logs/%x-%j.out; SLURM does not create it
    if not (cwd / "experiments").exists():
        (cwd / "experiments").symlink_to(ROOT / "experiments")
    env = {
        **os.environ,
        "RUN_DIR": str(run_dir),
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }
    return cluster.sbatch(*sbatch, str(template), *fit_args, cwd=cwd, env=env)


def wait_until_done(cluster, job: int, cwd: Path, *, state: str = "COMPLETED") -> dict[str, str]:
    fields = cluster.wait_for(job, lambda f: f["JobState"] in FINAL, timeout=900, what="finished")
    log = next((cwd / "logs").glob(f"*-{job}.out"), None)
    assert fields["JobState"] == state, f"{fields}\n{log.read_text()[-3000:] if log else 'no log'}"
    return fields


def wait_for_markers(cluster, job: int, marker: Path, ranks: int = 2) -> None:
    """Until every rank waits mid-step (``WaitForSignal`` touched ``<marker>.<rank>``)."""
    paths = [Path(f"{marker}.{rank}") for rank in range(ranks)]

    def ready(fields):
        assert fields["JobState"] in ("PENDING", "RUNNING", "CONFIGURING"), f"job ended early: {fields}"
        return all(p.exists() for p in paths)

    cluster.wait_for(job, ready, timeout=900, what="reached the step to signal")


def assert_same_end(run: Path, straight: Path, *, each_step_once: bool = True) -> None:
    """Every step's loss, bitwise, and the final weights, bitwise, as the uninterrupted job's (steps run
    again after a resume from an earlier checkpoint are logged twice, with the same values)."""
    if each_step_once:
        assert losses(run) == losses(straight)
    assert dict(losses(run)) == dict(losses(straight))
    assert [s for s, _ in losses(straight)] == list(range(STEPS))
    ours, theirs = load_weights(run / "ckpt" / "last.ckpt"), load_weights(straight / "ckpt" / "last.ckpt")
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)


@pytest.fixture(scope="module")
def slurm_shards(tmp_path_factory):
    return make_shards(tmp_path_factory.mktemp("slurm_shards"))


@pytest.fixture(scope="module")
def straight(slurm_cluster, slurm_shards, tmp_path_factory):
    """single_node.sbatch, uninterrupted: (its RUN_DIR, its job's fields)."""
    cwd = tmp_path_factory.mktemp("straight")
    job = submit(slurm_cluster, cwd, cwd / "run", *cpu_overrides(slurm_shards))
    return cwd / "run", wait_until_done(slurm_cluster, job, cwd)


def test_cpu_fragment_keeps_the_test_numbers():
    """The numbers these tests count on: 6 steps, a checkpoint every 3, and accumulation on 2 ranks."""
    config = yaml.safe_load((ROOT / "experiments" / "slurm" / "cpu.yaml").read_text())
    assert config["trainer"]["max_steps"] == STEPS and config["checkpoint"]["every_n_train_steps"] == 3
    assert config["data"]["global_batch_size"] == 2 * 2 * config["data"]["micro_batch_size"]


@pytest.mark.slow
def test_single_node_template_runs_two_task_ddp(slurm_cluster, straight):
    run, fields = straight
    assert (
        fields["NumTasks"] == "2"
        and fields["NodeList"] == slurm_cluster.nodes[0]
        and fields["Restarts"] == "0"
    )
    (record,) = (run / "tb").rglob("strategy.yaml")
    text = record.read_text()
    for line in ("DDPStrategy", "world_size: 2", "num_nodes: 1", "cluster_environment: SLURMEnvironment"):
        assert line in text, text
    assert [s for s, _ in losses(run)] == list(range(STEPS))
    assert losses(run, "throughput/tokens_seen")[-1][1] == STEPS * 16 * 64
    assert not list(run.glob("hpc_ckpt_*"))


@pytest.mark.slow
def test_scancel_usr1_saves_requeues_and_resumes_exactly(slurm_cluster, slurm_shards, straight, tmp_path):
    marker = tmp_path / "waiting"
    job = submit(
        slurm_cluster, tmp_path, tmp_path / "run", *cpu_overrides(slurm_shards), *wait_in_step(2, marker)
    )
    wait_for_markers(slurm_cluster, job, marker)
    slurm_cluster.scancel("--signal=USR1", str(job))  # docs/multinode.md's preemption command
    fields = wait_until_done(slurm_cluster, job, tmp_path)
    assert fields["Restarts"] == "1"  # requeued once, by the job itself
    hpc = torch.load(tmp_path / "run" / "hpc_ckpt_1.ckpt", map_location="cpu", weights_only=False)
    assert hpc["global_step"] == 3  # the step the signal landed in was finished, then saved
    assert_same_end(tmp_path / "run", straight[0])


@pytest.mark.slow
def test_time_limit_signal_saves_requeues_and_resumes_exactly(
    slurm_cluster, slurm_shards, straight, tmp_path
):
    """The template's ``--signal=SIGUSR1@90``: the time limit is cut, once every rank waits mid-step, to
    1-2 minutes from now, so slurmctld's time-limit warning (checked every 30 s) signals within ~30 s."""
    marker = tmp_path / "waiting"
    job = submit(
        slurm_cluster, tmp_path, tmp_path / "run", *cpu_overrides(slurm_shards), *wait_in_step(2, marker)
    )
    wait_for_markers(slurm_cluster, job, marker)
    elapsed = slurm_cluster.elapsed(job)
    slurm_cluster.scontrol("update", f"JobId={job}", f"TimeLimit={elapsed // 60 + 2}")
    # the requeued job would get the same short limit: restore the template's while it waits to restart
    slurm_cluster.wait_for(job, lambda f: f["Restarts"] == "1", timeout=900, what="requeued")
    slurm_cluster.scontrol("update", f"JobId={job}", "TimeLimit=24:00:00")
    fields = wait_until_done(slurm_cluster, job, tmp_path)
    assert fields["Restarts"] == "1"
    hpc = torch.load(tmp_path / "run" / "hpc_ckpt_1.ckpt", map_location="cpu", weights_only=False)
    assert hpc["global_step"] == 3
    assert_same_end(tmp_path / "run", straight[0])


@pytest.mark.slow
def test_cancelled_job_leaves_only_loadable_checkpoints_and_resumes(
    slurm_cluster, slurm_shards, straight, tmp_path
):
    """``scancel <job>``: SIGTERM to every process, SIGKILL ``KillWait`` (3 s here) later. Whether the
    SIGTERM save of step 5 finished in time or not, every checkpoint under its name loads, none is an
    ``hpc_ckpt`` (no requeue), and a resubmission with ``--ckpt_path last`` ends as the uninterrupted job."""
    marker = tmp_path / "waiting"
    run = tmp_path / "run"
    job = submit(slurm_cluster, tmp_path, run, *cpu_overrides(slurm_shards), *wait_in_step(4, marker))
    wait_for_markers(slurm_cluster, job, marker)
    slurm_cluster.scancel(str(job))
    fields = wait_until_done(slurm_cluster, job, tmp_path, state="CANCELLED")
    assert fields["Restarts"] == "0"
    assert not list(run.glob("hpc_ckpt_*"))
    saved = {
        p.name: torch.load(p, map_location="cpu", weights_only=False)["global_step"]
        for p in (run / "ckpt").glob("*.ckpt")
    }
    assert saved["step0000003.ckpt"] == 3 and saved["last.ckpt"] in (3, 5), saved
    resumed = submit(slurm_cluster, tmp_path, run, *cpu_overrides(slurm_shards), "--ckpt_path=last")
    wait_until_done(slurm_cluster, resumed, tmp_path)
    assert_same_end(run, straight[0], each_step_once=saved["last.ckpt"] == 5)


@pytest.mark.slow
def test_multi_node_template_trains_one_rank_per_node(slurm_two_nodes, slurm_shards, straight, tmp_path):
    """multi_node.sbatch on two nodes x 1 task (its 7B recipe's FSDP2 with activation checkpointing, on
    CPU): one rank per node, rendezvous at the first node (this host's name), and the same
    losses as the single-node DDP job, up to reduction order."""
    sbatch = ("--nodes=2", "--ntasks-per-node=1", "--cpus-per-task=1", "--gres=none")
    # fp32 parameters and the 1B recipe's LR (the 7B's is 3e-4), so the single-node DDP job is the reference
    fit_args = (*cpu_overrides(slurm_shards), "--model.parallelize.fsdp_param_dtype=float32",
                "--model.optimizer.init_args.lr=4.0e-4")  # fmt: skip
    job = submit(slurm_two_nodes, tmp_path, tmp_path / "run", *fit_args, template=MULTI, sbatch=sbatch)
    fields = wait_until_done(slurm_two_nodes, job, tmp_path)
    assert fields["NumNodes"] == "2" and fields["NumTasks"] == "2", fields  # one task on each node
    (record,) = (tmp_path / "run" / "tb").rglob("strategy.yaml")
    text = record.read_text()
    for line in ("world_size: 2", "num_nodes: 2", "cluster_environment: SLURMEnvironment"):
        assert line in text, text
    ours, theirs = losses(tmp_path / "run"), losses(straight[0])
    assert [s for s, _ in ours] == [s for s, _ in theirs] == list(range(STEPS))
    assert [v for _, v in ours] == pytest.approx([v for _, v in theirs], rel=1e-4)


def test_devices_disagreeing_with_slurm_tasks_per_node_is_refused(shards, tmp_path, monkeypatch, capsys):
    """In process, with the variables ``srun`` sets for a task (no cluster): the refusal happens while
    parsing, before any process group, so a job is not needed to see it, and this stays a fast test."""
    slurm = {"SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "olmo2", "SLURM_NTASKS": "2",
             "SLURM_NTASKS_PER_NODE": "2", "SLURM_NNODES": "1", "SLURM_NODEID": "0", "SLURM_PROCID": "0",
             "SLURM_LOCALID": "0", "SLURM_NODELIST": "localhost"}  # fmt: skip
    for key, value in slurm.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SystemExit):
        fit(tiny_args(tmp_path, shards, max_steps=2))  # trainer.devices 1
    assert "trainer.devices (1) disagrees with SLURM's tasks per node (2" in capsys.readouterr().err
    assert not (tmp_path / "ckpt").exists()
