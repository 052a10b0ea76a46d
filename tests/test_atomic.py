import pytest

from olmo2_lit.atomic import atomic_dir, atomic_file


def test_atomic_file_appears_only_when_complete(tmp_path):
    target = tmp_path / "a.bin"
    with pytest.raises(RuntimeError):
        with atomic_file(target) as f:
            f.write(b"half")
            raise RuntimeError("crash mid-write")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_file(target) as f:
            f.write(b"new")
            raise RuntimeError("crash")
    assert target.read_bytes() == b"old"  # the previous file survives a failed rewrite
    with atomic_file(target) as f:
        f.write(b"new")
    assert target.read_bytes() == b"new" and (target.stat().st_mode & 0o777) == 0o644


def test_atomic_dir(tmp_path):
    out = tmp_path / "export"
    with pytest.raises(RuntimeError):
        with atomic_dir(out) as tmp:
            (tmp / "config.json").write_text("{}")
            raise RuntimeError("crash")
    assert not out.exists() and list(tmp_path.iterdir()) == []
    with atomic_dir(out) as tmp:
        (tmp / "config.json").write_text("{}")
    assert (out / "config.json").read_text() == "{}"


def test_remove_stale_temps_takes_only_our_old_temporaries(tmp_path):
    """Guards against: the start-up clean-up deleting a save in progress (a fresh temp file), a user's
    file that merely ends in .tmp, or leaving a killed save's temp file and partial directory."""
    import os
    import time

    from olmo2_lit.atomic import remove_stale_temps

    old = time.time() - 3600
    stale_file, stale_dir = tmp_path / ".last.ckpt.ab12cd34.tmp", tmp_path / ".hf.zz99yy88.partial"
    fresh = tmp_path / ".last.ckpt.qq11ww22.tmp"
    users = [tmp_path / "notes.tmp", tmp_path / ".notes.tmp", tmp_path / "last.ckpt"]
    for p in [stale_file, fresh, *users]:
        p.write_bytes(b"x")
    stale_dir.mkdir()
    (stale_dir / "model.safetensors").write_bytes(b"x")
    for p in [stale_file, stale_dir, *users]:
        os.utime(p, (old, old))
    removed = remove_stale_temps(tmp_path)
    assert sorted(removed) == sorted([stale_file, stale_dir])
    assert fresh.exists() and all(p.exists() for p in users) and not stale_dir.exists()
