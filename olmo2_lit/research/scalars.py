"""Read the scalars of TensorBoard event files with TensorBoard's own readers.

The fast path is TensorBoard's data server (``tensorboard_data_server``, "rustboard": what
``tensorboard --load_fast`` uses), started over a scratch directory of links to the runs, loaded once,
and read over its gRPC API; it reads 30 runs x 10,000 steps in a few seconds (benchmarks/bench_compare.py)
where the Python ``EventAccumulator`` takes about a second per run per 60,000 values. Where the data
server has no binary for the platform, ``EventAccumulator`` is used. Both keep every value
(``scalars=all`` / size guidance 0) and both give the float32 value TensorBoard stored.

One run directory may hold several TensorBoard runs (``version_0``, ``version_1`` of a resumed plain
``fit``, or a resumed sweep run's second event file): they are joined in version order, and a later
part replaces the earlier part's values from its first step on (TensorBoard's purge on restart).
"""

from __future__ import annotations

import re
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Optional

import numpy as np

#: tag -> (steps int64, values float64), steps increasing
Series = dict[str, tuple[np.ndarray, np.ndarray]]
EVENTS = "events.out.tfevents.*"
_LOAD_TIMEOUT_S = 600


def has_events(path: Path) -> bool:
    return next(path.rglob(EVENTS), None) is not None


#: Why a run with event files can have no scalar: said by compare and report.
NO_SCALARS = (
    "its TensorBoard event files hold no scalars: the run logged nothing yet, or the files are truncated or "
    "corrupt (not written by a finished TensorBoard writer)"
)


def read_scalars(dirs: list[Path], *, tags: Optional[set[str]] = None) -> list[Series]:
    """Every scalar of every directory in ``dirs`` (each read recursively), in the same order."""
    if not dirs:
        return []
    try:
        import tensorboard_data_server

        binary = tensorboard_data_server.server_binary()
    except ImportError:
        binary = None
    parts = _read_data_server(binary, dirs, tags) if binary else _read_accumulator(dirs, tags)
    return [_join(parts.get(i, {})) for i in range(len(dirs))]


def _read_data_server(binary: str, dirs: list[Path], tags: Optional[set[str]]) -> dict[int, dict]:
    import grpc
    from tensorboard.data.proto import data_provider_pb2 as pb
    from tensorboard.data.proto import data_provider_pb2_grpc as pb_grpc

    with tempfile.TemporaryDirectory(prefix="olmo2-compare-") as scratch:
        for i, path in enumerate(dirs):
            (Path(scratch) / f"r{i}").symlink_to(path.resolve())
        port_file = Path(scratch) / ".port"
        server = subprocess.Popen(
            [binary, "--logdir", scratch, "--port", "0", "--port-file", str(port_file), "--reload", "once",
             "--samples-per-plugin", "scalars=all", "--die-after-stdin", "-v"],
            stdin=subprocess.PIPE, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        try:
            _wait_loaded(server)
            channel = grpc.insecure_channel(
                f"localhost:{port_file.read_text().strip()}",
                options=[("grpc.max_receive_message_length", 2**31 - 1)],
            )
            stub = pb_grpc.TensorBoardDataProviderStub(channel)
            request = pb.ReadScalarsRequest(downsample=pb.Downsample(num_points=2**62))
            request.plugin_filter.plugin_name = "scalars"
            if tags is not None:
                request.run_tag_filter.tags.names.extend(sorted(tags))
            response = stub.ReadScalars(request, timeout=_LOAD_TIMEOUT_S)
            channel.close()
        finally:
            server.stdin.close()
            server.wait()
    parts: dict[int, dict] = {}
    for run in response.runs:
        index, _, sub = run.run_name.partition("/")
        series = {
            t.tag_name: (np.array(t.data.step, np.int64), np.array(t.data.value, np.float64))
            for t in run.tags
        }
        parts.setdefault(int(index[1:]), {})[sub] = series
    return parts


def _wait_loaded(server: subprocess.Popen) -> None:
    """Until the data server logs the end of its one load cycle."""
    deadline = time.monotonic() + _LOAD_TIMEOUT_S
    for line in server.stderr:
        if "Finished load cycle" in line:
            return
        if time.monotonic() > deadline:
            break
    server.kill()
    raise RuntimeError(f"TensorBoard's data server did not finish loading (exit {server.poll()})")


def _read_accumulator(dirs: list[Path], tags: Optional[set[str]]) -> dict[int, dict]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    parts: dict[int, dict] = {}
    for i, root in enumerate(dirs):
        for run_dir in sorted({events.parent for events in root.rglob(EVENTS)}):
            acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
            acc.Reload()
            series = {}
            for tag in acc.Tags()["scalars"]:
                if tags is None or tag in tags:
                    events = acc.Scalars(tag)
                    series[tag] = (
                        np.array([e.step for e in events], np.int64),
                        np.array([e.value for e in events], np.float64),
                    )
            parts.setdefault(i, {})[run_dir.relative_to(root).as_posix()] = series
    return parts


def _version_key(name: str) -> list:
    return [int(tok) if tok.isdigit() else tok for tok in re.split(r"(\d+)", name)]


def _join(parts: dict[str, Series]) -> Series:
    """TensorBoard runs of one directory, in version order, a later one purging the earlier from its
    first step on; then sorted by step (a repeated step keeps its last value)."""
    out: Series = {}
    for name in sorted(parts, key=_version_key):
        for tag, (steps, values) in parts[name].items():
            if tag in out and len(steps):
                old_steps, old_values = out[tag]
                keep = old_steps < steps[0]
                steps, values = (
                    np.concatenate([old_steps[keep], steps]),
                    np.concatenate([old_values[keep], values]),
                )
            out[tag] = (steps, values)
    for tag, (steps, values) in out.items():
        order = np.argsort(steps, kind="stable")
        steps, values = steps[order], values[order]
        last = np.append(steps[1:] != steps[:-1], True)  # a repeated step: its last value
        out[tag] = (steps[last], values[last])
    return out
