"""The run behind docs/img/stability_spike.png: the tests' tiny CPU config (2 layers, d_model 32, 8 x 64
tokens per step), 48 steps, SkipStepAdamW, SpikeMonitor, LRBackoff and Diagnostics, gradients x1e3 at
step 30 by the test probe. Then: python benchmarks/stability_figure.py /tmp/stab_demo/run/runs OUT.png

    python benchmarks/stability_demo.py
"""

import sys
from pathlib import Path

sys.path[:0] = [
    str(Path(__file__).parents[1] / "tests" / "training"),
    str(Path(__file__).parents[1] / "tests" / "callbacks"),
]
from stability_config import layer, probe  # noqa: E402
from training_helpers import fit, make_shards, tiny_args  # noqa: E402

root = Path("/tmp/stab_demo/run")
root.mkdir(parents=True, exist_ok=True)
shards = Path("/tmp/stab_demo/shards")
shards.mkdir(exist_ok=True)
make_shards(shards)
CB = "olmo2_lit.callbacks"
callbacks = [
    {"class_path": f"{CB}.spike_monitor.SpikeMonitor", "init_args": {"window": 16}},
    {
        "class_path": f"{CB}.lr_backoff.LRBackoff",
        "init_args": {"spikes": 1, "window": 4, "factor": 0.5, "duration": 6, "recovery": 4},
    },
    {"class_path": f"{CB}.diagnostics.Diagnostics", "init_args": {"interval": 1}},
    probe("ScaleGradsAt", steps=[30]),
]
opt = {
    "class_path": "olmo2_lit.train.skip_step.SkipStepAdamW",
    "init_args": {"lr": 3e-3, "rolling_interval_length": 32},
}
extra = (
    *layer(root / "demo.yaml", callbacks, optimizer=opt),
    "--model.schedule.t_max",
    "48",
    "--checkpoint.every_n_train_steps",
    "48",
)
fit(tiny_args(root, shards, max_steps=48, extra=extra))
