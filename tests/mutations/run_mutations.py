"""Put each mutation of ``mutations.py`` into a scratch copy of the repository and check a test catches it.

Usage (from the repository root; CI runs it after the test suite)::

    python tests/mutations/run_mutations.py            # every mutation, 2 workers
    python tests/mutations/run_mutations.py -k clip    # only those whose name contains "clip"
    python tests/mutations/run_mutations.py --check    # only check that every snippet is still there

First the named tests run once on the unmutated copy: they must pass (``--no_baseline`` skips this
where the suite has just passed). Then, for each mutation, one worker's copy gets the replacement,
runs ``pytest -x -q`` on the named tests with ``PYTHONPATH`` at the copy (so ``olmo2_lit`` is the
mutated code), and restores the file. A mutation whose tests all pass *survived*: the suite cannot see
that bug. The script exits non-zero naming every survivor, and every mutation whose original snippet
is not found exactly once (the code moved; update the entry).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mutations import MUTATIONS, Mutation  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
_SKIP_ANYWHERE = shutil.ignore_patterns(".git", "__pycache__", "*.egg-info", ".pytest_cache", ".ruff_cache")
_SKIP_AT_TOP = {"runs", "data", "lightning_logs", "export", "ckpt"}  # run outputs, not source


def _ignore(directory: str, names: list[str]) -> set[str]:
    skipped = _SKIP_ANYWHERE(directory, names)
    if Path(directory).resolve() == ROOT:
        skipped |= _SKIP_AT_TOP & set(names)
    return skipped


def check_snippets(mutations: list[Mutation]) -> list[str]:
    """Problems with the list itself: a snippet not found exactly once, or a test file that is gone."""
    problems = []
    for m in mutations:
        source = (ROOT / m.file).read_text()
        n = source.count(m.original)
        if n != 1:
            problems.append(f"{m.name}: original snippet found {n} times in {m.file} (update the entry)")
        if m.original == m.replacement:
            problems.append(f"{m.name}: replacement equals the original")
        for test in m.tests:
            if not (ROOT / test.split("::")[0]).is_file():
                problems.append(f"{m.name}: test file {test.split('::')[0]} does not exist")
    names = [m.name for m in mutations]
    problems += [f"duplicate mutation name {n!r}" for n in sorted({n for n in names if names.count(n) > 1})]
    return problems


def make_copy(dest: Path) -> Path:
    """A copy of the repository in which ``olmo2_lit.callbacks`` resolves as the editable install maps it."""
    shutil.copytree(ROOT, dest, ignore=_ignore)
    shutil.copytree(ROOT / "callbacks", dest / "olmo2_lit" / "callbacks", ignore=_SKIP_ANYWHERE)
    return dest


def _env(copy: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(copy), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def check_copy_imports_itself(copy: Path) -> None:
    """Fail loudly if the copy's tests would import the installed package instead of the copy."""
    code = "import olmo2_lit, olmo2_lit.callbacks as c; print(olmo2_lit.__file__); print(c.__file__)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=copy, env=_env(copy), capture_output=True, text=True, check=True
    ).stdout.split()
    for path in out:
        if not Path(path).resolve().is_relative_to(copy.resolve()):
            raise SystemExit(f"the scratch copy imports {path}, not its own code; the check would be void")


def _target(copy: Path, m: Mutation) -> Path:
    # callbacks/ is imported through the copy's olmo2_lit/callbacks; mutate the file that is imported.
    if m.file.startswith("callbacks/"):
        return copy / "olmo2_lit" / m.file
    return copy / m.file


def _pytest(copy: Path, tests: list[str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
        cwd=copy,
        env=_env(copy),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_baseline(copy: Path, mutations: list[Mutation], timeout: float) -> Optional[str]:
    """None if every named test passes on the unmutated copy, else pytest's output (a test that
    fails anyway would report every mutation as caught)."""
    tests = sorted({t for m in mutations for t in m.tests})
    proc = _pytest(copy, tests, timeout)
    return None if proc.returncode == 0 else (proc.stdout + proc.stderr)[-3000:]


def run_one(copy: Path, m: Mutation, timeout: float) -> tuple[str, float, str]:
    """('caught' | 'survived' | 'timeout', seconds, tail of pytest's output)."""
    target = _target(copy, m)
    original = target.read_text()
    target.write_text(original.replace(m.original, m.replacement, 1))
    start = time.perf_counter()
    try:
        proc = _pytest(copy, list(m.tests), timeout)
        # 1: a test failed; 2: collection failed (the mutated code does not import); 4/5: bad test ids
        verdict = {0: "survived", 1: "caught", 2: "caught"}.get(proc.returncode, "error")
        tail = (proc.stdout + proc.stderr)[-1500:]
    except subprocess.TimeoutExpired:
        verdict, tail = "timeout", ""
    finally:
        target.write_text(original)
    return verdict, time.perf_counter() - start, tail


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-k", default="", help="only mutations whose name contains this (case-insensitive)")
    parser.add_argument("--workers", type=int, default=2, help="scratch copies run side by side")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per mutation before it fails")
    parser.add_argument("--check", action="store_true", help="only check that every snippet is found")
    parser.add_argument(
        "--no_baseline",
        action="store_true",
        help="skip running the named tests on the unmutated code first (CI: the suite just passed)",
    )
    args = parser.parse_args(argv)

    selected = [m for m in MUTATIONS if args.k.lower() in m.name.lower()]
    problems = check_snippets(selected)
    if problems or args.check:
        print("\n".join(problems) or f"{len(selected)} mutations, every snippet found once")
        return 1 if problems else 0

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="olmo2_lit_mutations_") as tmp:
        workers = max(1, min(args.workers, len(selected)))
        copies = [make_copy(Path(tmp) / f"copy{i}") for i in range(workers)]
        check_copy_imports_itself(copies[0])
        if not args.no_baseline:
            failed = run_baseline(copies[0], selected, args.timeout * 4)
            if failed:
                print(f"the named tests fail without any mutation; fix them first:\n{failed}")
                return 1
            print(
                f"baseline: the named tests pass unmutated ({time.perf_counter() - start:.0f}s)", flush=True
            )
        free = list(copies)

        def job(m: Mutation):
            copy = free.pop()
            try:
                return m, *run_one(copy, m, args.timeout)
            finally:
                free.append(copy)

        failures = []
        with ThreadPoolExecutor(workers) as pool:
            for m, verdict, seconds, tail in pool.map(job, selected):
                print(f"{verdict:>8}  {seconds:5.1f}s  {m.name}", flush=True)
                if verdict != "caught":
                    failures.append((m, verdict, tail))
    seconds = time.perf_counter() - start
    print(f"{len(selected) - len(failures)}/{len(selected)} mutations caught in {seconds:.0f}s")
    for m, verdict, tail in failures:
        print(f"\n{verdict.upper()}: {m.name} ({m.file}); tests: {' '.join(m.tests)}\n{tail}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
