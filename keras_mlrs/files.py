"""Writing outputs: every file keras-mlrs writes goes through :func:`atomic_output` (a
temporary file beside the target, renamed into place when complete), so an interrupted
run never leaves a file that looks complete. Folders go through :class:`atomic_folder`,
figures through :func:`save_figure`.
"""

import os
import shutil
import tempfile
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class atomic_output:
    """``with atomic_output(path) as tmp:`` write to ``tmp``; it becomes ``path`` only when
    the block ends without error, and is removed otherwise. The temporary file is unique
    (two writers never share it), hidden, and keeps ``path``'s suffix (some writers infer
    the format from it)."""

    def __init__(self, path):
        self.path = Path(path)

    def __enter__(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.stem}.", suffix=f".tmp{self.path.suffix}")
        os.close(fd)
        self.tmp = Path(tmp)
        return self.tmp

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                os.chmod(self.tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
                os.replace(self.tmp, self.path)
        finally:
            self.tmp.unlink(missing_ok=True)
        return False


def atomic_write_text(path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (see :class:`atomic_output`)."""
    with atomic_output(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def atomic_save_model(model, path) -> Path:
    """``model.save(path)`` atomically (see :class:`atomic_output`)."""
    with atomic_output(path) as tmp:
        model.save(tmp)
    return Path(path)


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


def atomic_link(src, dst) -> Path:
    """Make ``dst`` the same file as ``src`` (a hard link, or a copy where links are not
    supported), replacing ``dst`` atomically."""
    src, dst = Path(src), Path(dst)
    if dst.exists() and os.path.samefile(src, dst):
        return dst
    with atomic_output(dst) as tmp:
        tmp.unlink()
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
    return dst


def pyplot():
    """matplotlib's pyplot on the non-interactive Agg backend."""
    # imported here: matplotlib is needed only by the commands that draw figures
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt  # after choosing the backend

    return plt


def save_figure(fig, path, dpi: int = 120) -> Path:
    """Write a matplotlib figure as PNG, atomically, and close it."""
    try:
        with atomic_output(path) as tmp:
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
    finally:
        pyplot().close(fig)
    return Path(path)


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
