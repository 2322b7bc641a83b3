"""Atomic outputs: a file appears complete or not at all, and nothing temporary stays."""

import os

import pytest

from keras_mlrs.files import (
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
    with atomic_folder(target) as staging:
        (staging / "a").write_text("1")
    with pytest.raises(RuntimeError):
        with atomic_folder(target) as staging:
            (staging / "b").write_text("2")
            raise RuntimeError
    assert sorted(p.name for p in target.iterdir()) == ["a"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo"]


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
