"""The offline spool: encoded records kept on local disk while the log is unreachable.

Each batch the producer could not append becomes one file in ``{home}/spool/``, written
to a temporary name, fsynced and renamed into place (then the directory is fsynced): a
batch is whole and durable or absent. File names sort in write order. ``forward`` sends
the oldest files to the log in order, then deletes them; a crash between the two sends
a batch twice, which the projections' event-id dedupe absorbs. An exclusive lock file
keeps two forwarders (two processes, or ``agent-hub sync`` and a hub) from interleaving.

File format: ``AHSP`` + version byte, then per record: topic, key, value and headers,
each length-prefixed (big-endian u32), and a trailing CRC-32 of everything before it.
"""

from __future__ import annotations

import fcntl
import itertools
import os
import struct
import threading
import time
import zlib
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import anyio
import structlog

from hub.infra.files import fsync_dir, make_dirs, private_opener, write_atomic
from hub.infra.ports import ProducerRecord
from schemas.errors import StoreError

__all__ = ["RECORDS_MEDIA_TYPE", "Spool", "decode_batch", "encode_batch"]

RECORDS_MEDIA_TYPE = "application/vnd.agenthub.records"
"""The media type of a batch in this format (how remote clients send records)."""

log = structlog.get_logger(__name__)

MAGIC = b"AHSP\x01"
SUFFIX = ".batch"
_U32 = struct.Struct(">I")
_counter = itertools.count()


def encode_batch(records: Sequence[ProducerRecord]) -> bytes:
    out = bytearray(MAGIC)
    out += _U32.pack(len(records))
    for r in records:
        for part in (r.topic.encode(), r.key, r.value):
            out += _U32.pack(len(part))
            out += part
        out += _U32.pack(len(r.headers))
        for name, value in r.headers:
            for part in (name.encode(), value):
                out += _U32.pack(len(part))
                out += part
    out += _U32.pack(zlib.crc32(out))
    return bytes(out)


def decode_batch(data: bytes, where: str) -> list[ProducerRecord]:
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 8:
        raise StoreError(f"{where}: not a spool batch", retriable=False)
    body, (crc,) = data[:-4], _U32.unpack(data[-4:])
    if zlib.crc32(body) != crc:
        raise StoreError(f"{where}: checksum mismatch (damaged spool file)", retriable=False)
    pos = len(MAGIC)

    def take() -> bytes:
        nonlocal pos
        (n,) = _U32.unpack_from(body, pos)
        pos += 4 + n
        return body[pos - n : pos]

    (count,) = _U32.unpack_from(body, pos)
    pos += 4
    records = []
    for _ in range(count):
        topic, key, value = take().decode(), take(), take()
        (nh,) = _U32.unpack_from(body, pos)
        pos += 4
        headers = tuple((take().decode(), take()) for _ in range(nh))
        records.append(ProducerRecord(topic, key, value, headers))
    return records


class Spool:
    """Durable local batches of records waiting for the log."""

    def __init__(self, directory: Path, *, dedupe_window_s: float | None = None) -> None:
        """``dedupe_window_s``: how long the projections remember event ids; a batch
        forwarded later than that after it was spooled is warned about."""
        self.directory = directory
        self.dedupe_window_s = dedupe_window_s
        self._last_ns = 0
        self._lock = threading.Lock()

    @classmethod
    def of_home(cls, home: Path, *, dedupe_window_s: float | None = None) -> Spool:
        """The spool of the hub whose local directory is ``home``."""
        return cls(home / "spool", dedupe_window_s=dedupe_window_s)

    def _name(self) -> str:
        with self._lock:  # strictly increasing within a process, even if the clock steps back
            now = max(time.time_ns(), self._last_ns + 1)
            self._last_ns = now
        return f"{now:020d}-{os.getpid():07d}-{next(_counter):06d}{SUFFIX}"

    def pending_files(self) -> list[Path]:
        """Spooled batches, oldest first."""
        try:
            names = sorted(e.name for e in os.scandir(self.directory) if e.name.endswith(SUFFIX))
        except FileNotFoundError:
            return []
        return [self.directory / n for n in names]

    def has_pending(self) -> bool:
        try:
            with os.scandir(self.directory) as entries:
                return any(e.name.endswith(SUFFIX) for e in entries)
        except FileNotFoundError:
            return False

    def count(self) -> int:
        """How many records are waiting."""
        total = 0
        for path in self.pending_files():
            try:
                total += _U32.unpack_from(path.read_bytes(), len(MAGIC))[0]
            except (OSError, struct.error):
                continue
        return total

    def append(self, records: Sequence[ProducerRecord]) -> Path:
        """Write one batch durably (fsync file and directory) and return its path."""
        try:
            make_dirs(self.directory)
            path = self.directory / self._name()
            write_atomic(path, encode_batch(records))
        except OSError as exc:
            raise StoreError(
                f"the log is unreachable and the spool at {self.directory} cannot be "
                f"written: {exc}",
                retriable=False,
            ) from exc
        return path

    @contextmanager
    def _exclusive(self) -> Iterator[bool]:
        make_dirs(self.directory)
        with open(self.directory / "lock", "a+b", opener=private_opener) as f:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    async def forward(
        self,
        send: Callable[[Sequence[ProducerRecord]], Awaitable[object]],
        *,
        max_records: int = 1000,
    ) -> int:
        """Send every spooled batch in order with ``send`` (deleting each once sent);
        returns how many records were sent (0 if another forwarder holds the lock)."""
        sent = 0
        with self._exclusive() as owner:
            if not owner:
                return 0
            while files := self.pending_files():
                group: list[Path] = []
                records: list[ProducerRecord] = []
                for path in files:
                    try:
                        batch = decode_batch(await anyio.Path(path).read_bytes(), str(path))
                    except StoreError as exc:  # only disk damage: writes are atomic
                        self._set_aside(path, exc)
                        continue
                    if records and len(records) + len(batch) > max_records:
                        break
                    group.append(path)
                    records += batch
                if not group:
                    continue
                self._warn_if_past_dedupe_window(group)
                await send(records)  # raises if the log is still unreachable
                for path in group:
                    path.unlink(missing_ok=True)
                fsync_dir(self.directory)
                sent += len(records)
                log.info("spool.forwarded", records=len(records), files=len(group))
        return sent

    def _warn_if_past_dedupe_window(self, group: Sequence[Path]) -> None:
        """Forwarded anyway (never lost), but said: if an earlier send of these batches
        did reach the log, the projections no longer remember their ids."""
        if self.dedupe_window_s is None:
            return
        written_ns = int(group[0].name[:20])  # the oldest of the group, by its name
        age_s = (time.time_ns() - written_ns) / 1e9
        if age_s > self.dedupe_window_s:
            log.warning(
                "spool.forwarding_past_dedupe_window",
                age_days=round(age_s / 86_400, 1),
                window_days=round(self.dedupe_window_s / 86_400, 1),
                files=len(group),
                hint="if these records reached the log before (a send whose answer was "
                "lost), the projections apply them again",
            )

    def _set_aside(self, path: Path, exc: StoreError) -> None:
        damaged = self.directory / "damaged"
        make_dirs(damaged)
        os.replace(path, damaged / path.name)
        log.error("spool.damaged_batch_set_aside", path=str(damaged / path.name), error=str(exc))
