"""hopfield_lab.checkpoint: files that are never half-written, and the temp files of killed writes."""
import os
import subprocess
import sys

import pytest
import torch

from hopfield_lab import checkpoint as ck


def test_interrupted_checkpoint_write_keeps_previous(tmp_path, monkeypatch):
    path = tmp_path / "ck.pt"
    ck.atomic_save({"epoch": 1, "w": torch.ones(3)}, path)

    def broken_save(obj, fh, *a, **k):
        fh.write(b"half a checkpoint")
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="simulated"):
        ck.atomic_save({"epoch": 2, "w": torch.zeros(3)}, path)
    monkeypatch.undo()
    saved = torch.load(path)
    assert saved["epoch"] == 1 and torch.equal(saved["w"], torch.ones(3))
    assert os.listdir(tmp_path) == ["ck.pt"]  # no temp file left behind


def test_json_writes_are_atomic_too_and_plain(tmp_path):
    path = ck.atomic_write_json({"a": torch.tensor(1.5), "b": [float("nan"), float("inf")]}, tmp_path / "r.json")
    assert path.read_text() == '{\n "a": 1.5,\n "b": [\n  null,\n  null\n ]\n}\n'
    assert os.listdir(tmp_path) == ["r.json"]


def test_stale_temp_files_of_dead_writers_are_removed(tmp_path):
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)
    target = tmp_path / "checkpoint.pt"
    stale, live, other = (tmp_path / f".checkpoint.pt.tmp{dead}", tmp_path / f".checkpoint.pt.tmp{os.getppid()}",
                          tmp_path / f".result.json.tmp{dead}")
    for f in (stale, live, other):
        f.write_bytes(b"x")
    assert ck.remove_stale_temp_files(target) == [stale]
    assert live.exists() and other.exists()      # a live writer's file, and another target's, stay
