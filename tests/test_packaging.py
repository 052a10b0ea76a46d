"""The installed package: console script, callbacks importable from anywhere, model free of Lightning."""

import shutil
import subprocess
import sys
from pathlib import Path


def _python(code, cwd):
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_callbacks_import_from_any_directory(tmp_path):
    proc = _python(
        "import olmo2_lit.callbacks.throughput as t, olmo2_lit.callbacks.samples as s; "
        "print(t.TokenThroughput.__name__, s.PrintSamples.__name__)",
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["TokenThroughput", "PrintSamples"]
    # no generic top-level name is claimed
    assert _python("import callbacks", tmp_path).returncode != 0


def test_model_package_does_not_import_lightning(tmp_path):
    proc = _python(
        "import sys, olmo2_lit.model, olmo2_lit.model.generate; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', 'pytorch_lightning')))",
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def _console_script() -> str:
    """The olmo2-lit script installed beside this interpreter (a venv's bin need not be on PATH)."""
    beside = Path(sys.executable).parent / "olmo2-lit"
    return str(beside) if beside.is_file() else shutil.which("olmo2-lit") or ""


def test_console_script_lists_every_verb(tmp_path):
    """Guards the installed entry point: ``olmo2-lit --help`` lists every verb, ``convert to-hf --help``
    works. The script is looked up beside the running interpreter, so a venv used without activation
    is tested too."""
    exe = _console_script()
    assert exe, f"the olmo2-lit console script is not installed beside {sys.executable} nor on PATH"
    out = subprocess.run([exe, "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=60).stdout
    for verb in ("fit", "validate", "test", "predict", "prepare", "convert", "soup", "generate"):
        assert f"  {verb} " in out
    conv = subprocess.run(
        [exe, "convert", "to-hf", "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert conv.returncode == 0 and "--checkpoint" in conv.stdout
