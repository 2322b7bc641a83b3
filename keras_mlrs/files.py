"""File helpers: outputs are written atomically, so an interrupted run never leaves a
file that looks complete."""

import os
import tempfile
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


class atomic_output:
    """``with atomic_output(path) as tmp:`` write to ``tmp``; it becomes ``path`` only when
    the block ends without error (the temporary file keeps ``path``'s suffix)."""

    def __init__(self, path):
        self.path = Path(path)

    def __enter__(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(f".{self.path.stem}.tmp{self.path.suffix}")
        return self.tmp

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                os.chmod(self.tmp, 0o666 & ~_umask())
                os.replace(self.tmp, self.path)
        finally:
            self.tmp.unlink(missing_ok=True)
        return False


class atomic_folder:
    """``with atomic_folder(path) as tmp:`` fill the folder ``tmp`` (made beside ``path``); it
    replaces ``path`` only when the block ends without error, and is removed otherwise."""

    def __init__(self, path):
        self.path = Path(path)

    def __enter__(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent))
        return self.tmp

    def __exit__(self, exc_type, exc, tb):
        import shutil

        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return False
        os.chmod(self.tmp, 0o777 & ~_umask())  # mkdtemp makes it private
        if self.path.exists():
            old = self.path.with_name(f".{self.path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            self.path.rename(old)
            self.tmp.rename(self.path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            self.tmp.rename(self.path)
        return False


def atomic_save_model(model, path) -> Path:
    """``model.save(path)`` through a temporary ``.keras`` file in the same folder and a rename."""
    with atomic_output(path) as tmp:
        model.save(tmp)
    return Path(path)


def atomic_link(src, dst) -> Path:
    """Make ``dst`` the same file as ``src`` (a hard link, or a copy where links are not
    supported), replacing ``dst`` atomically."""
    import shutil

    src, dst = Path(src), Path(dst)
    if dst.exists() and os.path.samefile(src, dst):
        return dst
    tmp = dst.with_name(f".{dst.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)
    tmp.unlink(missing_ok=True)  # rename() leaves both names when they already were one file
    return dst


def toml_dumps(table: dict) -> str:
    """A flat TOML document for ``table``: scalars and lists first, then one ``[section]``
    per nested dict. ``None`` values are left out (TOML has no null)."""

    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v) if not isinstance(v, float) or v == v else "nan"
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        raise TypeError(f"cannot write {type(v).__name__} to TOML")

    lines, sections = [], []
    for key, v in table.items():
        if v is None:
            continue
        if isinstance(v, dict):
            sections.append((key, v))
        else:
            lines.append(f"{key} = {value(v)}")
    for key, sub in sections:
        lines.append(f"\n[{key}]")
        lines.extend(f"{k} = {value(x)}" for k, x in sub.items() if x is not None)
    return "\n".join(lines) + "\n"
