"""A multipart upload handler that streams the ``file`` part straight into the run's artifact directory.

Django's default handlers spool big uploads to /tmp and the view would copy them again; this one writes each chunk
once, to a temporary file next to its destination (same file system, so the final rename is atomic), hashing as it
goes and stopping as soon as ``ARTIFACT_MAX_BYTES`` is passed.
"""
from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, StopUpload

from experiments import storage


class StoredUpload(UploadedFile):
    def __init__(self, tmp_path: Path, name: str, size: int, sha256: str, content_type: str | None):
        super().__init__(file=None, name=name, content_type=content_type, size=size)
        self.tmp_path = tmp_path
        self.sha256 = sha256

    def discard(self) -> None:
        self.tmp_path.unlink(missing_ok=True)


class ArtifactUploadHandler(FileUploadHandler):
    chunk_size = 1 << 20

    def __init__(self, request, *, run_id: int, max_bytes: int):
        super().__init__(request)
        self.run_id = run_id
        self.max_bytes = max_bytes
        self.too_large = False
        self.tmp: Path | None = None
        self.fh = None

    def new_file(self, field_name, file_name, content_type, content_length, charset=None, content_type_extra=None):
        super().new_file(field_name, file_name, content_type, content_length, charset, content_type_extra)
        if content_length is not None and content_length > self.max_bytes:
            self.too_large = True
            raise StopUpload(connection_reset=True)
        directory = storage.run_dir(self.run_id)
        directory.mkdir(parents=True, exist_ok=True)
        self.tmp = directory / f".upload-{uuid.uuid4().hex}"
        self.fh = open(self.tmp, "xb")  # noqa: SIM115 - closed in file_complete / upload_interrupted
        self.digest = hashlib.sha256()
        self.size = 0

    def receive_data_chunk(self, raw_data, start):
        self.size += len(raw_data)
        if self.size > self.max_bytes:
            self.too_large = True
            self._abort()
            raise StopUpload(connection_reset=True)
        self.digest.update(raw_data)
        self.fh.write(raw_data)
        return None

    def file_complete(self, file_size):
        self.fh.close()
        self.fh = None
        return StoredUpload(self.tmp, self.file_name, self.size, self.digest.hexdigest(), self.content_type)

    def upload_interrupted(self):
        self._abort()

    def _abort(self) -> None:
        if self.fh is not None:
            self.fh.close()
            self.fh = None
        if self.tmp is not None:
            self.tmp.unlink(missing_ok=True)
