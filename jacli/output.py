"""Writing results where the user asked: every byte, or an error that says why.

Knows nothing of typer or Rich. Three jobs:

- `guard_standard_streams()`: standard streams that cannot lose data silently. A write that
  the kernel cuts short (a nearly full disk, with PYTHONUNBUFFERED=1 too) is carried on until
  every byte is out or the kernel gives an error; standard error never fails a run (closed or
  full, diagnostics are dropped); a standard stream closed at start is not taken over by the
  next file opened.
- `target(path)`: the stream that `-o PATH` writes to, by the rules of README.md, "What `-o`
  does to an existing file": a new file appears whole or not at all; an existing one keeps its
  mode; `-`, `/dev/stdout`, `/dev/fd/N` are the open descriptors.
- `clean_up_on_signals()`: SIGTERM, SIGHUP and SIGXCPU remove a half-written temporary file
  and end with 128 + the signal's number, as SIGINT's KeyboardInterrupt does by unwinding.

A failed write raises `WriteError` (an OSError naming what was written), so that the caller
can tell it from a failed read.
"""

from __future__ import annotations

import errno
import io
import os
import re
import select
import signal
import stat
import sys
from contextlib import contextmanager
from typing import IO, Callable, Iterator

from .errors import JacliError


class WriteError(OSError):
    """Writing to `filename` failed (disk full, reader gone, ...) after it was opened."""


class StdoutClosed(WriteError):
    """Standard output was closed when jacli started (`jacli ... >&-`)."""


#: The standard descriptors that were closed at start (now /dev/null, never written).
_closed: set[int] = set()
#: What a signal must undo before the process ends: one callable per output being written.
_cleanups: dict[int, Callable[[], None]] = {}


class _Descriptor(io.FileIO):
    """A descriptor written whole: FileIO.write may write less than it is given (and
    TextIOWrapper over an unbuffered FileIO drops the rest); this one writes again until
    every byte is out, and an error names what was being written."""

    def __init__(self, fd: int, name: str, closefd: bool = True):
        super().__init__(fd, "wb", closefd=closefd)
        self.label = name

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        done = 0
        try:
            while done < len(view):
                count = super().write(view[done:])
                if count is None:   # a non-blocking descriptor, full: wait until it is not
                    select.select([], [self.fileno()], [])
                else:
                    done += count
        except OSError as error:
            raise WriteError(error.errno, error.strerror, self.label) from None
        return done


class _Quiet(io.FileIO):
    """Standard error: diagnostics that cannot be written are dropped, never an error."""

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        done = 0
        try:
            while done < len(view):
                done += super().write(view[done:]) or len(view)
        except OSError:
            pass
        return len(view)


class _Closed(io.RawIOBase):
    """A standard stream that was closed at start: using it is an error, not end of file
    (input) or a silent loss (output)."""

    def __init__(self, fd: int):
        super().__init__()
        self.fd = fd

    def readable(self) -> bool:
        return self.fd == 0

    def writable(self) -> bool:
        return self.fd != 0

    def readinto(self, buffer) -> int:
        raise OSError(errno.EBADF, "standard input is closed")

    def write(self, data) -> int:
        raise StdoutClosed(errno.EBADF, "standard output is closed", "standard output")


def guard_standard_streams() -> None:
    """Make sys.stdin/stdout/stderr safe, as the module's docstring says. Call once at
    start, before anything is opened."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:   # closed: the next open() would get this number; give it /dev/null
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
            _closed.add(fd)
    if 0 in _closed:
        sys.stdin = io.TextIOWrapper(io.BufferedReader(_Closed(0)))
    if 1 in _closed:
        sys.stdout = io.TextIOWrapper(_Closed(1), encoding="utf-8", write_through=True)
    else:
        # The same buffering as before (unbuffered with PYTHONUNBUFFERED=1, line by line on
        # a terminal), every byte written; a character the encoding lacks
        # (PYTHONIOENCODING=ascii) shows as '?' rather than failing the run.
        like = sys.stdout
        raw = _Descriptor(1, "standard output", closefd=False)
        unbuffered = isinstance(like.buffer, io.RawIOBase)
        sys.stdout = io.TextIOWrapper(
            raw if unbuffered else io.BufferedWriter(raw), encoding=like.encoding,
            errors="replace" if like.errors == "strict" else like.errors,
            line_buffering=like.line_buffering, write_through=unbuffered)
    encoding = sys.stderr.encoding if sys.stderr is not None else "utf-8"
    sys.stderr = io.TextIOWrapper(_Quiet(2, "wb", closefd=False), encoding=encoding,
                                  errors="backslashreplace", write_through=True)


def descriptor_named(path: str) -> int | None:
    """The descriptor a path names, as the shell opens it: `-` and /dev/stdout are 1,
    /dev/stderr 2, /dev/fd/N and /proc/self/fd/N are N. None for any other path."""
    if path == "-":
        return 1
    path = os.path.normpath(path)
    named = {"/dev/stdin": 0, "/dev/stdout": 1, "/dev/stderr": 2}
    if path in named:
        return named[path]
    match = re.fullmatch(rf"/(?:dev/fd|proc/(?:self|{os.getpid()})/fd)/(\d+)", path)
    return int(match.group(1)) if match else None


def _refused(path: str, reason: str) -> JacliError:
    return JacliError(f"cannot write {path}: {reason}", origin="-o")


def _check_symlinks(path: str) -> None:
    """Refuse to follow a symlink in a sticky world-writable directory (/tmp) unless it is
    ours or the directory owner's: the rule of the kernel's fs.protected_symlinks, which
    `>` obeys where it is on; jacli obeys it everywhere."""
    seen = 0
    while os.path.islink(path) and seen < 40:
        parent = os.path.dirname(os.path.abspath(path))
        folder, link = os.stat(parent), os.lstat(path)
        sticky_public = folder.st_mode & stat.S_ISVTX and folder.st_mode & stat.S_IWOTH
        if sticky_public and link.st_uid not in (os.geteuid(), folder.st_uid):
            raise _refused(path, "a symlink in a sticky world-writable directory, owned by "
                                 "someone else: not followed")
        path, seen = os.path.join(parent, os.readlink(path)), seen + 1


def _stream(fd: int, name: str, binary: bool):
    buffered = io.BufferedWriter(_Descriptor(fd, name))
    if binary:
        return _Bytes(buffered)
    return io.TextIOWrapper(buffered, encoding="utf-8", newline="\n")


class _Bytes:
    """A binary stream that NumPy writes with write(): given a real file object it would
    write with tofile(), whose errors lose their reason ("cannot write out.npy: None")."""

    def __init__(self, stream: io.BufferedWriter):
        self.write, self.flush, self.close = stream.write, stream.flush, stream.close

    def read(self, *_):   # np.savez asks for it to tell a file object from a path
        raise io.UnsupportedOperation("read")


@contextmanager
def target(path: str | None, binary: bool = False) -> Iterator[IO]:
    """The stream results are written to: standard output for None, else what `-o PATH`
    names (README.md, "What `-o` does to an existing file"). Leaving the block normally
    puts the results in place; an exception leaves the old file as it was (or none)."""
    fd = None if path is None else descriptor_named(path)
    if path is None or fd == 1 and not binary:
        yield sys.stdout
        sys.stdout.flush()
        return
    if not path:
        raise JacliError("the output path is empty", origin="-o")
    if path.endswith("/"):
        raise _refused(path, os.strerror(errno.EISDIR))
    if fd is not None:   # a descriptor the shell opened: written as it is
        if fd in _closed:
            raise _refused(path, os.strerror(errno.EBADF))
        opener = lambda: os.dup(fd)  # noqa: E731
    else:
        try:
            _check_symlinks(path)
            real = os.path.realpath(path)
            existing = os.stat(real) if os.path.exists(real) else None
        except OSError as error:
            raise _refused(path, error.strerror) from None
        if existing is not None and stat.S_ISDIR(existing.st_mode):
            raise _refused(path, os.strerror(errno.EISDIR))
        if existing is None or stat.S_ISREG(existing.st_mode):
            yield from _regular(path, real, existing, binary)
            return
        # A FIFO or a device (/dev/null, /dev/full): written as `>` writes it.
        opener = lambda: os.open(real, os.O_WRONLY | os.O_CLOEXEC)  # noqa: E731
    try:
        stream = _stream(opener(), path, binary)
    except OSError as error:
        raise _refused(path, error.strerror) from None
    with _finishing(stream):
        yield stream


@contextmanager
def _finishing(stream, undo: Callable[[], None] = lambda: None):
    """Close `stream` at the end (its last bytes go out then: a failure is an error); on
    an exception or a signal, drop what is left and call `undo`."""
    key = id(stream)
    _cleanups[key] = undo
    try:
        yield
    except BaseException:
        try:
            stream.close()
        except OSError:
            pass
        undo()
        raise
    else:
        try:
            stream.close()
        except BaseException:
            undo()
            raise
    finally:
        _cleanups.pop(key, None)


def _regular(path: str, real: str, existing: os.stat_result | None, binary: bool):
    """A regular file, new or replaced: written to a temporary file beside it, which takes
    its name when complete; in place where replacing it would change what `>` keeps."""
    import tempfile

    probe = None
    if existing is not None:
        # Writable as `>` would find it (mode, owner, ACLs, read-only mounts: the kernel
        # decides, without truncating it). A 0444 file is refused (root may write it).
        try:
            probe = os.open(real, os.O_WRONLY | os.O_CLOEXEC)
        except OSError as error:
            raise _refused(path, error.strerror) from None
        # Other hard links, or an owner jacli could not give the new file: in place.
        if existing.st_nlink == 1 and os.geteuid() in (0, existing.st_uid):
            os.close(probe)
            probe = None
    handle = temp = None
    if probe is None:
        try:
            handle, temp = tempfile.mkstemp(prefix=f".{os.path.basename(real)}.",
                                            suffix=".tmp", dir=os.path.dirname(real))
        except OSError as error:
            if existing is None:
                raise _refused(path, error.strerror) from None
            # A writable file in a directory jacli cannot write: rewritten in place, as `>`.
            probe = os.open(real, os.O_WRONLY | os.O_CLOEXEC)
    if probe is not None:
        keep = os.dup(probe)   # to empty the file if the run fails: never half the results
        try:
            os.ftruncate(probe, 0)
            stream = _stream(probe, path, binary)
            with _finishing(stream, lambda: os.ftruncate(keep, 0)):
                yield stream
        finally:
            os.close(keep)
        return
    _cleanups[-handle] = undo = lambda: _unlink(temp)  # noqa: E731
    try:
        if existing is None:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask   # as a plain open() would create it, not mkstemp's 0600
        else:
            mode = stat.S_IMODE(existing.st_mode) & 0o777
            if existing.st_uid != os.geteuid():   # root writing someone else's file
                os.fchown(handle, existing.st_uid, existing.st_gid)
        os.fchmod(handle, mode)   # on the descriptor: the name may be someone else's by now
        stream = _stream(handle, path, binary)
    except BaseException as error:
        os.close(handle)
        undo()
        _cleanups.pop(-handle, None)
        if isinstance(error, OSError):
            raise WriteError(error.errno, error.strerror, path) from None
        raise
    try:
        with _finishing(stream, undo):
            yield stream
        try:
            os.replace(temp, real)
        except OSError as error:
            undo()
            raise WriteError(error.errno, error.strerror, path) from None
    finally:
        _cleanups.pop(-handle, None)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def clean_up_on_signals() -> None:
    """SIGTERM, SIGHUP, SIGXCPU: undo every output being written (no temporary file is
    left), then end with 128 + the signal's number."""
    def handler(signum, frame):
        for undo in list(_cleanups.values()):
            undo()
        os._exit(128 + signum)

    for name in ("SIGTERM", "SIGHUP", "SIGXCPU"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), handler)
