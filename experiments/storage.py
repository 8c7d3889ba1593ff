"""Artifact files on disk: ``settings.ARTIFACT_ROOT / <run id> / <relative path>``.

Every path a user sends goes through ``clean_relative_path`` (syntax) and ``resolve_in_run`` (where it really lands
after symlinks), so that neither ``../x``, ``/etc/passwd``, ``a\\..\\b``, ``%2e%2e/x`` nor a symlink planted inside
the run directory can reach a file outside it.
"""
from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import unquote

from django.conf import settings

MAX_PATH_LENGTH = 500
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DRIVE = re.compile(r"^[A-Za-z]:")


class UnsafePath(ValueError):
    pass


class ArtifactTooLarge(ValueError):
    def __init__(self, limit: int):
        super().__init__(f"Artifact larger than the limit of {limit} bytes (ARTIFACT_MAX_BYTES).")
        self.limit = limit


def _problem(path: str) -> str | None:
    if "\\" in path:
        return "path contains a backslash"
    if path.startswith("/") or _DRIVE.match(path):
        return "path must be relative"
    if any(p in (".", "..") for p in path.split("/")):
        return "path must not contain '.' or '..' segments"
    return None


def clean_relative_path(raw: str) -> str:
    """Return a normalised relative POSIX path or raise UnsafePath saying why."""
    if not isinstance(raw, str) or not raw.strip():
        raise UnsafePath("path is empty")
    if len(raw) > MAX_PATH_LENGTH:
        raise UnsafePath(f"path is longer than {MAX_PATH_LENGTH} characters")
    if _CONTROL.search(raw):
        raise UnsafePath("path contains control characters")
    if (problem := _problem(raw)) is not None:
        raise UnsafePath(problem)
    # A proxy or a later decode could turn %2e%2e%2f into ../ : judge the decoded form too.
    decoded = raw
    for _ in range(3):
        decoded = unquote(decoded)
    if decoded != raw and (_problem(decoded) is not None or _CONTROL.search(decoded)):
        raise UnsafePath("path contains percent-encoded traversal")
    parts = [p for p in raw.split("/") if p]
    if not parts:
        raise UnsafePath("path is empty")
    return "/".join(parts)


def run_dir(run_id: int) -> Path:
    return Path(settings.ARTIFACT_ROOT) / str(int(run_id))


def resolve_in_run(run_id: int, rel: str) -> Path:
    """The absolute file for ``rel`` under the run's directory; UnsafePath if it resolves anywhere else."""
    rel = clean_relative_path(rel)
    # Resolve the root only, not the run's own directory: if ARTIFACT_ROOT/<run> were itself a link to elsewhere,
    # resolving it first would make "elsewhere" the base and every file there would pass the check below.
    base = Path(settings.ARTIFACT_ROOT).resolve() / str(int(run_id))
    target = (base / rel).resolve()
    if base not in target.parents:
        raise UnsafePath("path leaves the run's artifact directory")
    return target


def write_stream(run_id: int, rel: str, chunks: Iterable[bytes], *, max_bytes: int) -> tuple[Path, int, str]:
    """Write chunks to the artifact file through a temporary file, hashing as it goes.

    Returns (path, size in bytes, sha256 hex). The final file appears atomically (rename) only when complete and
    within ``max_bytes``; otherwise the temporary file is removed and ArtifactTooLarge raised.
    """
    target = resolve_in_run(run_id, rel)
    target.parent.mkdir(parents=True, exist_ok=True)
    # mkdir may have followed a symlinked parent: check again where the file will really be.
    target = resolve_in_run(run_id, rel)
    if target.is_symlink() or target.is_dir():
        raise UnsafePath("path names a directory or a link")
    tmp = target.parent / f".upload-{uuid.uuid4().hex}"
    digest = hashlib.sha256()
    size = 0
    try:
        with open(tmp, "xb") as fh:
            for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise ArtifactTooLarge(max_bytes)
                digest.update(chunk)
                fh.write(chunk)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
    return target, size, digest.hexdigest()


def hash_file(path: Path, chunk_size: int = 1 << 20) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            size += len(chunk)
            digest.update(chunk)
    return size, digest.hexdigest()
