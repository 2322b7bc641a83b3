"""Writing outputs: every file keras-mlrs writes goes through :func:`atomic_output` (a
temporary file beside the target, renamed into place when complete), so an interrupted
run never leaves a file that looks complete. Folders go through :class:`atomic_folder`,
figures through :func:`save_figure` (a PNG and a PDF of each).

A folder written by :class:`atomic_folder` carries :data:`OWNER_MARK`, the list of the
files keras-mlrs wrote there. It may replace only such a folder of its own kind whose
files are all its own (or an empty one): a tool never deletes what it did not write.
"""

import dataclasses
import fcntl
import json
import os
import shutil
import tempfile
import textwrap
import zipfile
from pathlib import Path

from keras_mlrs.errors import OutputError

#: The file in a folder written by :class:`atomic_folder`: its kind and the files written.
OWNER_MARK = ".keras-mlrs-output.json"
#: The file in a staging folder of :class:`atomic_folder` while it is filled: the writer's PID.
STAGING_MARK = ".keras-mlrs-staging"
#: The lock file of :class:`folder_lock`, in the locked folder: the holder's PID.
LOCK = ".keras-mlrs.lock"


def make_folder(folder) -> Path:
    """``folder`` and its parents, made when missing; a one-line :class:`OutputError` when a
    file stands in the way or the folder cannot be made."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        check_folder_path(folder)  # names the file in the way
        raise OutputError(f"cannot make the folder {folder}: a file stands in its way.") from None
    except OSError as err:
        raise OutputError(f"cannot make the folder {folder}: {err.strerror}.") from None
    return folder


def check_folder_path(folder) -> None:
    """Before any work: a one-line :class:`OutputError` when a file stands where ``folder``
    or one of its parents would be made (what :func:`make_folder` would find out later)."""
    for path in (Path(folder), *Path(folder).parents):
        if path.exists():
            if not path.is_dir():
                raise OutputError(f"{path} is a file, not a folder; give another output path.")
            return


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
        make_folder(self.path.parent)
        if self.path.is_dir():
            raise OutputError(f"{self.path} is a folder; give a file name for this output.")
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
    """:func:`save_model` to ``path`` atomically (see :class:`atomic_output`)."""
    with atomic_output(path) as tmp:
        save_model(model, tmp)
    return Path(path)


def save_model(model, path, zipped: bool = True) -> Path:
    """``model.save(path)`` (a ``.keras`` file, or when not ``zipped`` a folder in Keras'
    layout) that loads under every Keras backend: under PyTorch, Keras compiles a model
    with its own subclass of each built-in optimizer and names that subclass's module
    (``keras.src.backend.torch.optimizers...``), which cannot be imported under another
    backend; the file names the public class (``keras.optimizers``) instead, as a model saved
    under TensorFlow or JAX does. The optimizer's variables are the same on every backend."""
    path = Path(path)
    model.save(path, zipped=zipped)
    if zipped:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read(MODEL_CONFIG))
            if _neutral_optimizer(config):
                entries = [(info, archive.read(info)) for info in archive.infolist()]
            else:
                entries = None
        if entries is not None:
            with zipfile.ZipFile(path, "w") as archive:
                for info, content in entries:
                    archive.writestr(info, json.dumps(config) if info.filename == MODEL_CONFIG else content)
    else:
        config = json.loads((path / MODEL_CONFIG).read_text())
        if _neutral_optimizer(config):
            (path / MODEL_CONFIG).write_text(json.dumps(config))
    return path


#: The model's configuration in a saved Keras model (the zip's entry, or the folder's file).
MODEL_CONFIG = "config.json"


def _neutral_optimizer(config: dict) -> bool:
    """Name the public optimizer class in a saved model's ``config`` (in place); whether it
    changed anything."""
    optimizer = (config.get("compile_config") or {}).get("optimizer")
    if isinstance(optimizer, dict) and str(optimizer.get("module", "")).startswith("keras.src.backend."):
        optimizer["module"] = "keras.optimizers"
        return True
    return False


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.name != OWNER_MARK)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def check_replaceable(path, kind: str) -> None:
    """Raise :class:`OutputError` unless :class:`atomic_folder` may write the folder ``path``
    as ``kind``: it does not exist, is empty, or is a folder of that kind written by
    keras-mlrs that holds no file it did not write."""
    path = Path(path)
    if not path.exists():
        return
    if not path.is_dir():
        raise OutputError(f"{path} is a file, not a folder; give a folder for the {kind}.")
    if not any(path.iterdir()):
        return
    try:
        mark = json.loads((path / OWNER_MARK).read_text())
    except (OSError, ValueError):
        mark = None
    if not isinstance(mark, dict) or mark.get("kind") != kind:
        raise OutputError(f"{path} exists and holds no {kind} written by keras-mlrs; choose another folder "
                          "(nothing of it is replaced).")
    foreign = sorted(set(_files(path)) - set(mark.get("files", [])))
    if foreign:
        raise OutputError(f"{path} holds {len(foreign)} file(s) keras-mlrs did not write there (e.g. {foreign[0]}); "
                          "move them away or choose another folder (nothing of it is replaced).")


class atomic_folder:
    """``with atomic_folder(path, kind) as tmp:`` fill the folder ``tmp`` (made beside
    ``path``); it replaces ``path`` only when the block ends without error, and is removed
    otherwise. ``path`` must be replaceable (:func:`check_replaceable`), checked on entry
    and again before the swap. Staging folders left by a killed writer (whose process is
    gone) are removed on entry."""

    def __init__(self, path, kind: str):
        self.path, self.kind = Path(path), kind

    def __enter__(self) -> Path:
        check_replaceable(self.path, self.kind)
        make_folder(self.path.parent)
        for stale in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            try:
                pid = int((stale / STAGING_MARK).read_text())
            except (OSError, ValueError):
                continue  # not a staging folder of ours
            if not _alive(pid):
                shutil.rmtree(stale, ignore_errors=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent))
        (self.tmp / STAGING_MARK).write_text(str(os.getpid()))
        return self.tmp

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            try:
                self._commit()
            except BaseException:
                shutil.rmtree(self.tmp, ignore_errors=True)
                raise
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)
        return False

    def _commit(self):
        (self.tmp / STAGING_MARK).unlink()
        (self.tmp / OWNER_MARK).write_text(json.dumps({"kind": self.kind, "files": _files(self.tmp)}, indent=1))
        os.chmod(self.tmp, 0o777 & ~_umask())  # mkdtemp makes it private
        check_replaceable(self.path, self.kind)
        if self.path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", suffix=".old", dir=self.path.parent))
            os.replace(self.path, old / "replaced")
            self.tmp.rename(self.path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            self.tmp.rename(self.path)


def holds_anything(folder) -> bool:
    """Whether ``folder`` holds anything but a :class:`folder_lock`'s lock file."""
    return any(p.name != LOCK for p in Path(folder).iterdir())


class folder_lock:
    """``with folder_lock(folder, what):`` hold an exclusive lock on ``folder`` (made when
    missing) for the block: a second process (or a second lock in this one) gets a one-line
    :class:`OutputError` naming the holder's PID. The lock is the kernel's (``flock``) on
    ``folder/.keras-mlrs.lock``, so a killed holder releases it."""

    def __init__(self, folder, what: str):
        self.folder, self.what = Path(folder), what

    def __enter__(self) -> "folder_lock":
        make_folder(self.folder)
        path = self.folder / LOCK
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self.fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(self.fd)
            raise OutputError(f"{self.folder} is in use by process {holder} ({self.what}); wait for it to finish "
                              "or stop it.") from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, str(os.getpid()).encode(), 0)
        return self

    def __exit__(self, exc_type, exc, tb):
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
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


def wrap_text(text: str, width: int) -> str:
    """``text`` broken into lines of at most ``width`` characters at spaces (long words and
    hyphenated ones kept whole), for figure titles and labels."""
    return "\n".join(textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False)) or text


#: The resolution of every PNG figure keras-mlrs writes.
FIGURE_DPI = 300
#: The vector format written beside every PNG figure (same name, this suffix): PDF, which
#: LaTeX includes as it is; fonts are embedded as TrueType (editable, selectable text).
VECTOR_FORMAT = "pdf"


@dataclasses.dataclass(frozen=True)
class FigureFiles:
    """The files of one figure written by :func:`save_figure`: the PNG, its vector copy
    (:data:`VECTOR_FORMAT`), the title both carry in their metadata, and what the drawing
    function reports of what it drew (``info``, e.g. the colour limits of heatmaps).
    ``os.fspath()`` of it is the PNG's path."""

    png: Path
    vector: Path
    title: str
    info: dict = dataclasses.field(default_factory=dict)

    @property
    def paths(self) -> list[Path]:
        return [self.png, self.vector]

    def __fspath__(self) -> str:
        return str(self.png)


def figure_paths(path) -> tuple[Path, Path]:
    """The PNG and vector files of a figure named ``path``: ``path`` itself (or, given the
    vector's name, the ``.png`` beside it) and the same name with the vector suffix."""
    path = Path(path)
    vector = path.with_suffix(f".{VECTOR_FORMAT}")
    return (path.with_suffix(".png") if path == vector else path), vector


def save_figure(fig, path, title: str = "", info: dict | None = None, dpi: int = FIGURE_DPI) -> FigureFiles:
    """Write a matplotlib figure as PNG (``dpi``) and as vector (:func:`figure_paths`),
    each atomically and with ``title`` in its metadata (no date: the same figure gives the
    same files), and close it."""
    import matplotlib  # loaded already by whoever drew the figure

    png, vector = figure_paths(path)
    try:
        with matplotlib.rc_context({"pdf.fonttype": 42}):
            with atomic_output(png) as tmp:
                fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png",
                            metadata={"Title": title, "Software": "keras-mlrs"})
            with atomic_output(vector) as tmp:
                fig.savefig(tmp, bbox_inches="tight", format=VECTOR_FORMAT,
                            metadata={"Title": title, "Creator": "keras-mlrs", "CreationDate": None})
    finally:
        pyplot().close(fig)
    return FigureFiles(png, vector, title, info or {})


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
