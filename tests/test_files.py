"""Atomic outputs: a file appears complete or not at all, and nothing temporary stays."""

import os
import subprocess
import sys

import pytest

from keras_mlrs.errors import OutputError
from keras_mlrs.files import (
    OWNER_MARK,
    STAGING_MARK,
    atomic_folder,
    atomic_link,
    atomic_output,
    atomic_write_text,
    toml_dumps,
)

pytestmark = pytest.mark.backend_free


def test_an_output_appears_only_when_complete(tmp_path):
    target = tmp_path / "sub" / "report.json"
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            assert tmp.parent == target.parent and tmp.suffix == ".json" and tmp.name.startswith(".")
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert not target.exists() and list(target.parent.iterdir()) == []
    atomic_write_text(target, "whole")
    assert target.read_text() == "whole" and list(target.parent.iterdir()) == [target]
    assert oct(target.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def test_two_writers_never_share_a_temporary_file(tmp_path):
    with atomic_output(tmp_path / "a.txt") as first, atomic_output(tmp_path / "a.txt") as second:
        assert first != second


def test_a_folder_replaces_the_old_one_only_when_complete(tmp_path):
    target = tmp_path / "repo"
    with atomic_folder(target, "report") as staging:
        (staging / "a").write_text("1")
        (staging / "sub").mkdir()
        (staging / "sub" / "c").write_text("3")
    with pytest.raises(RuntimeError):
        with atomic_folder(target, "report") as staging:
            (staging / "b").write_text("2")
            raise RuntimeError
    assert sorted(p.name for p in target.iterdir()) == [OWNER_MARK, "a", "sub"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo"]
    with atomic_folder(target, "report") as staging:  # its own folder, nothing foreign: replaced
        (staging / "b").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == [OWNER_MARK, "b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo"]


def test_a_folder_never_replaces_what_keras_mlrs_did_not_write(tmp_path):
    """A user's folder that merely looks like an output (the file names of an export or a
    report), an output of another kind, an output with a user's file added, a file, and a
    user's folder that happens to have the name of an old-style backup: all refused or left
    alone, each file intact."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.json").write_text("my notes")
    (mine / "report.json").write_text("{}")
    with pytest.raises(OutputError, match="holds no report written by keras-mlrs; choose another folder"):
        with atomic_folder(mine, "report") as staging:
            (staging / "x").write_text("1")
    assert (mine / "config.json").read_text() == "my notes"
    out = tmp_path / "out"
    with atomic_folder(out, "report") as staging:
        (staging / "x").write_text("1")
    with pytest.raises(OutputError, match="holds no export written by keras-mlrs"):
        with atomic_folder(out, "export"):
            pass
    (out / "thesis.tex").write_text("years of work")
    with pytest.raises(OutputError, match=r"holds 1 file\(s\) keras-mlrs did not write there \(e.g. thesis.tex\)"):
        with atomic_folder(out, "report"):
            pass
    assert (out / "thesis.tex").read_text() == "years of work"
    (tmp_path / "file").write_text("a file")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        with atomic_folder(tmp_path / "file", "report"):
            pass
    backup = tmp_path / ".fresh.old"  # the fixed backup name earlier versions deleted
    backup.mkdir()
    (backup / "keep").write_text("k")
    (tmp_path / "fresh").mkdir()
    for _ in range(2):
        with atomic_folder(tmp_path / "fresh", "report") as staging:
            (staging / "y").write_text("1")
    assert (backup / "keep").read_text() == "k"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith((".old", ".tmp")) and p != backup]


def test_staging_left_by_a_killed_writer_goes_with_the_next_run(tmp_path):
    target = tmp_path / "repo"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    killed = tmp_path / ".repo.abc123.tmp"  # what a writer killed mid-way leaves
    killed.mkdir()
    (killed / STAGING_MARK).write_text(dead.stdout.strip())
    (killed / "half").write_text("x")
    live = tmp_path / ".repo.def456.tmp"  # another writer, still at work
    live.mkdir()
    (live / STAGING_MARK).write_text(str(os.getpid()))
    theirs = tmp_path / ".repo.user.tmp"  # not ours at all
    theirs.mkdir()
    with atomic_folder(target, "report") as staging:
        (staging / "a").write_text("1")
    assert not killed.exists() and live.is_dir() and theirs.is_dir()


def test_links_and_toml(tmp_path):
    src = tmp_path / "epoch-0001.keras"
    src.write_text("model")
    atomic_link(src, tmp_path / "best.keras")
    atomic_link(src, tmp_path / "best.keras")  # already the same file
    assert os.path.samefile(src, tmp_path / "best.keras")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.keras", "epoch-0001.keras"]
    assert toml_dumps({"a": 1, "b": "x\"y", "c": None, "d": [1.5, True], "s": {"k": 2}}) == (
        'a = 1\nb = "x\\"y"\nd = [1.5, true]\n\n[s]\nk = 2\n')


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_folder_lock_is_exclusive_and_names_its_holder(tmp_path):
    from keras_mlrs.files import folder_lock

    with folder_lock(tmp_path / "run", "training"):
        with pytest.raises(OutputError, match=rf"run is in use by process {os.getpid()} \(training\)"):
            with folder_lock(tmp_path / "run", "training"):
                pass
        code = ("import sys; from keras_mlrs.files import folder_lock\n"
                "try:\n    folder_lock(sys.argv[1], 'prepare').__enter__()\nexcept Exception as e:\n    print(e)")
        out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "run")], capture_output=True, text=True)
        assert f"in use by process {os.getpid()}" in out.stdout
    with folder_lock(tmp_path / "run", "training"):  # released: free again
        pass
