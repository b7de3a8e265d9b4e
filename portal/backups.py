"""Backup and restore of a deployment: the database (pg_dump), every media file (read through the storage layer)
and a manifest that proves both. A restore loads them into an empty deployment, checks every table, file and the
audit chain against the manifest, then erases again what the erasure register says was erased since."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from django.apps import apps
from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import connection, transaction

from portal.audit import audit_verify
from search.subject_requests import ErasureRegisterDamaged, erasure_reapply, erasure_register_read

FORMAT = 1
MANIFEST_NAME = "manifest.json"
DUMP_NAME = "database.dump"
MEDIA_FOLDER = "media"
PRODUCT_APPS = ("accounts", "portal", "search")
# Filled by a migration (search 0004, offense categories): a freshly migrated deployment holds these rows, and
# the backup's own replace them.
MIGRATION_SEEDED_TABLES = frozenset({"search_offensecategory"})
# The deployment's own record of its schema: compared with the backup's, never loaded from it.
MIGRATIONS_TABLE = "django_migrations"
CHUNK_BYTES = 1 << 20
LOCK_TIMEOUT = "30s"  # a restore that cannot lock a table (a portal still running on it) fails instead of waiting
_TOC_DATA_LINE = re.compile(r"^\d+; \d+ \d+ (?:TABLE DATA|SEQUENCE SET) (\S+) (\S+) ")


class BackupError(Exception):
    """A backup or restore that did not happen or did not complete, with the reason."""


class BackupRefused(BackupError):
    """Refused before anything was written to the deployment (restore) or kept (backup)."""


@dataclass
class BackupSummary:
    directory: str
    created_at: str
    files: int
    bytes: int
    media_files: int
    tables: dict[str, int]
    audit_entries: int
    audit_head_hash: str
    manifest_sha256: str
    media_vanished: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class RestoreSummary:
    directory: str
    backup_created_at: str
    files: int
    bytes: int
    media_files: int
    tables: dict[str, int]
    audit_head_hash: str
    erasures_reapplied: list[dict]

    def as_dict(self) -> dict:
        return asdict(self)


# --- PostgreSQL client tools ------------------------------------------------------------------


def pg_tool(name: str) -> str:
    """The path of a PostgreSQL client tool: in PG_BIN_DIR when set; else the embedded server's (pgserver) before
    PATH's, or PATH's first when DATABASE_URL names another server."""
    embedded = None
    # find_spec locates the package without importing it.
    spec = importlib.util.find_spec("pgserver")
    if spec is not None and spec.submodule_search_locations:
        embedded = Path(list(spec.submodule_search_locations)[0]) / "pginstall" / "bin" / name
    on_path = Path(shutil.which(name)) if shutil.which(name) else None
    if settings.PG_BIN_DIR:
        candidates = [Path(settings.PG_BIN_DIR) / name]
    elif os.environ.get("DATABASE_URL"):
        candidates = [on_path, embedded]
    else:
        candidates = [embedded, on_path]
    for candidate in candidates:
        if candidate is not None and candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise BackupRefused(f"No {name} found: set PG_BIN_DIR to the folder of the PostgreSQL client tools.")


def _pg_environment() -> dict[str, str]:
    """libpq's environment for the database Django uses (the test database in tests), so that no password is
    ever on a command line."""
    db = connection.settings_dict
    environment = {**os.environ, "PGDATABASE": db["NAME"], "PGCONNECT_TIMEOUT": "10"}
    for key, variable in (("HOST", "PGHOST"), ("PORT", "PGPORT"), ("USER", "PGUSER"), ("PASSWORD", "PGPASSWORD")):
        if db.get(key):
            environment[variable] = str(db[key])
    options = db.get("OPTIONS") or {}
    for key in ("sslmode", "sslrootcert", "sslcert", "sslkey", "passfile", "service"):
        if options.get(key):
            environment[f"PG{key.upper()}"] = str(options[key])
    return environment


def _run_tool(args: list[str], what: str) -> str:
    result = subprocess.run(args, env=_pg_environment(), capture_output=True, text=True)
    if result.returncode != 0:
        raise BackupError(f"{what} failed (exit {result.returncode}): {result.stderr.strip()[-2000:]}")
    return result.stdout


# --- What the deployment holds ----------------------------------------------------------------


def _table_names(cursor) -> list[str]:
    return sorted(connection.introspection.table_names(cursor))


def _table_counts(cursor) -> dict[str, int]:
    counts = {}
    for table in _table_names(cursor):
        cursor.execute(f"SELECT count(*) FROM {connection.ops.quote_name(table)}")
        counts[table] = cursor.fetchone()[0]
    return counts


def _migration_state(cursor) -> dict[str, list[str]]:
    cursor.execute(f"SELECT app, name FROM {MIGRATIONS_TABLE} ORDER BY app, name")
    state: dict[str, list[str]] = {}
    for app, name in cursor.fetchall():
        state.setdefault(app, []).append(name)
    return state


def product_tables() -> set[str]:
    """The tables of the product's own apps (accounts, portal, search)."""
    return {
        model._meta.db_table
        for label in PRODUCT_APPS
        for model in apps.get_app_config(label).get_models(include_auto_created=True)
    }


def _media_names(folder: str = "") -> list[str]:
    """Every file of the media storage, through the storage API only (so any backend will do)."""
    try:
        directories, files = default_storage.listdir(folder)
    except FileNotFoundError:
        return []
    names = [f"{folder}/{name}" if folder else name for name in files]
    for directory in directories:
        names += _media_names(f"{folder}/{directory}" if folder else directory)
    return sorted(names)


def _copy_hashing(source, target) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    while chunk := source.read(CHUNK_BYTES):
        digest.update(chunk)
        size += len(chunk)
        if target is not None:
            target.write(chunk)
    return digest.hexdigest(), size


def _file_entry(path: Path) -> dict:
    with open(path, "rb") as stored:
        sha256, size = _copy_hashing(stored, None)
    return {"sha256": sha256, "size": size}


def _fsync_directory(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _progress_bar(progress, total: int, description: str):
    return progress(total, description) if progress is not None and total else None


# --- Backup -----------------------------------------------------------------------------------


def backup_create(*, directory: str | os.PathLike | None = None, progress=None) -> BackupSummary:
    """Back the deployment up into DIRECTORY (new or empty; default a dated folder in BACKUP_DIR).

    progress: a callable (total, description) giving an object with update(n) and close(), such as tqdm.
    The backup is written into DIRECTORY.partial and renamed when whole, so a folder of that name is complete.
    """
    if connection.in_atomic_block:
        raise BackupRefused("A backup runs outside any transaction: pg_dump must share its snapshot.")
    now = datetime.now(UTC)
    target = Path(directory) if directory else Path(settings.BACKUP_DIR) / f"backup-{now:%Y%m%dT%H%M%SZ}"
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise BackupRefused(f"{target} already exists and is not an empty folder.")
    partial = target.with_name(target.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)  # left by a backup that did not finish
    partial.mkdir(mode=0o700, parents=True)  # it holds everything the portal holds
    try:
        summary = _backup_into(partial, target, progress)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if target.exists():
        target.rmdir()
    partial.rename(target)
    _fsync_directory(target.parent)
    return summary


def _backup_into(partial: Path, target: Path, progress) -> BackupSummary:
    # One snapshot for the dump, the counts, the migration state and the audit head: they describe the same
    # database even while the portal keeps working.
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            cursor.execute("SELECT pg_export_snapshot(), now()")
            snapshot, created_at = cursor.fetchone()
            chain = audit_verify()
            if not chain.whole:
                raise BackupRefused(
                    f"The audit log is broken at entry {chain.broken_at} ({chain.problem}): "
                    "no backup of a log that does not hold."
                )
            tables = _table_counts(cursor)
            migrations = _migration_state(cursor)
        # The descriptors' rows load through their partitioned table, which puts each in the partition its
        # gallery hashes to in the restoring deployment (docs/partitions.md), whatever the leaf it was dumped from.
        _run_tool(
            [
                pg_tool("pg_dump"),
                "--format=custom",
                "--load-via-partition-root",
                f"--snapshot={snapshot}",
                f"--file={partial / DUMP_NAME}",
            ],
            "pg_dump",
        )
    files = {DUMP_NAME: _file_entry(partial / DUMP_NAME)}
    # Media after the database: a file the dump refers to can only be missing here if it was deleted since the
    # snapshot, i.e. by an erasure (erased again from the register at restore) or a retention purge (re-run).
    names = _media_names()
    vanished = []
    bar = _progress_bar(progress, len(names), "Copying media")
    for name in names:
        destination = partial / MEDIA_FOLDER / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            with default_storage.open(name, "rb") as source, open(destination, "wb") as copy:
                sha256, size = _copy_hashing(source, copy)
                copy.flush()
                os.fsync(copy.fileno())
        except FileNotFoundError:
            vanished.append(name)
            destination.unlink(missing_ok=True)
        else:
            files[f"{MEDIA_FOLDER}/{name}"] = {"sha256": sha256, "size": size}
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    manifest = {
        "format": FORMAT,
        "created_at": created_at.isoformat(),
        "database": {"file": DUMP_NAME, "tool": "pg_dump --format=custom", "server_version": connection.pg_version},
        "migrations": migrations,
        "tables": tables,
        "audit": {"entries": chain.entries, "head_hash": chain.head_hash},
        "media_vanished": vanished,
        "files": files,
    }
    manifest_bytes = json.dumps(manifest, indent=1, sort_keys=True).encode()
    with open(partial / MANIFEST_NAME, "wb") as manifest_file:
        manifest_file.write(manifest_bytes)
        manifest_file.flush()
        os.fsync(manifest_file.fileno())
    return BackupSummary(
        directory=str(target),
        created_at=manifest["created_at"],
        files=len(files),
        bytes=sum(entry["size"] for entry in files.values()),
        media_files=len(files) - 1,
        tables=tables,
        audit_entries=chain.entries,
        audit_head_hash=chain.head_hash,
        manifest_sha256=hashlib.sha256(manifest_bytes).hexdigest(),
        media_vanished=vanished,
    )


# --- Restore ----------------------------------------------------------------------------------


def manifest_verify(directory: str | os.PathLike) -> dict:
    """The backup's manifest, once every file it lists is present with its size and SHA-256 and no other file is
    there; BackupRefused naming each file that is missing, extra or altered."""
    source = Path(directory)
    try:
        manifest = json.loads((source / MANIFEST_NAME).read_text())
        listed = manifest["files"]
        absent = [key for key in ("created_at", "migrations", "tables", "audit") if key not in manifest]
        if absent:
            raise KeyError(", ".join(absent))
        datetime.fromisoformat(manifest["created_at"])
    except FileNotFoundError:
        raise BackupRefused(f"{source / MANIFEST_NAME} is missing: not a backup, or an incomplete one.") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise BackupRefused(f"{source / MANIFEST_NAME} cannot be read: {exc!r}") from None
    if manifest.get("format") != FORMAT:
        raise BackupRefused(f"{source / MANIFEST_NAME} is of format {manifest.get('format')!r}, not {FORMAT}.")
    problems = []
    for name in listed:
        relative = PurePosixPath(name)
        if relative.is_absolute() or ".." in relative.parts:
            problems.append(f"{name}: not a path inside the backup")
    on_disk = {path.relative_to(source).as_posix() for path in source.rglob("*") if not path.is_dir()}
    on_disk.discard(MANIFEST_NAME)
    problems += [f"{name}: missing" for name in sorted(set(listed) - on_disk)]
    problems += [f"{name}: not in the manifest (extra file)" for name in sorted(on_disk - set(listed))]
    for name in sorted(set(listed) & on_disk):
        if _file_entry(source / name) != {"sha256": listed[name]["sha256"], "size": listed[name]["size"]}:
            problems.append(f"{name}: altered (its size or SHA-256 differs from the manifest's)")
    if DUMP_NAME not in listed:
        problems.append(f"{DUMP_NAME}: not in the manifest")
    if problems:
        shown = "; ".join(problems[:20]) + (f"; and {len(problems) - 20} more" if len(problems) > 20 else "")
        raise BackupRefused(f"The backup {source} does not match its manifest, nothing was restored: {shown}.")
    return manifest


def restore_from(*, directory: str | os.PathLike, progress=None) -> RestoreSummary:
    """Restore a backup into an empty deployment (migrated to the same state, no rows in the product's tables,
    no media file); then check it against the manifest and erase again from the erasure register."""
    source = Path(directory)
    manifest = manifest_verify(source)
    try:
        register = erasure_register_read()
    except ErasureRegisterDamaged as exc:
        raise BackupRefused(f"The erasure register cannot be read, nothing was restored: {exc}") from None
    if connection.in_atomic_block:
        raise BackupRefused("A restore runs outside any transaction: psql loads the data on its own connection.")
    with connection.cursor() as cursor:
        _require_same_migrations(_migration_state(cursor), manifest["migrations"])
        counts = _table_counts(cursor)
    occupied = sorted(
        f"{table} ({count})"
        for table, count in counts.items()
        if count and table in product_tables() - MIGRATION_SEEDED_TABLES
    )
    if occupied:
        raise BackupRefused(
            "This deployment already holds data, nothing was restored: rows in "
            + ", ".join(occupied)
            + ". Restore only into an empty, migrated deployment."
        )
    stored = _media_names()
    if stored:
        raise BackupRefused(
            f"The media storage already holds {len(stored)} files (first: {stored[0]}), "
            "nothing was restored. Restore only into an empty deployment."
        )
    framework_rows = sorted(table for table, count in counts.items() if count and table != MIGRATIONS_TABLE)

    _database_load(source / DUMP_NAME, replace_tables=framework_rows)
    _media_load(source, manifest, progress)
    tables, chain = _restored_check(manifest)
    # Only once the backup is whole again: the erasures made since, through the privacy officer's own steps.
    backup_created_at = datetime.fromisoformat(manifest["created_at"])
    reapplied = [
        outcome for entry in register if (outcome := erasure_reapply(entry=entry, backup_created_at=backup_created_at))
    ]
    final = audit_verify()
    if not final.whole:
        raise BackupError(
            f"The restore is NOT complete: the audit log broke at entry {final.broken_at} while "
            f"erasures were re-applied ({final.problem})."
        )
    media = {name: entry for name, entry in manifest["files"].items() if name != DUMP_NAME}
    return RestoreSummary(
        directory=str(source),
        backup_created_at=manifest["created_at"],
        files=len(manifest["files"]),
        bytes=sum(entry["size"] for entry in manifest["files"].values()),
        media_files=len(media),
        tables=tables,
        audit_head_hash=chain.head_hash,
        erasures_reapplied=reapplied,
    )


def _require_same_migrations(deployment: dict, backup: dict) -> None:
    if deployment == backup:
        return
    have = {(app, name) for app, names in deployment.items() for name in names}
    need = {(app, name) for app, names in backup.items() for name in names}
    missing = ", ".join(f"{app}.{name}" for app, name in sorted(need - have)) or "none"
    extra = ", ".join(f"{app}.{name}" for app, name in sorted(have - need)) or "none"
    raise BackupRefused(
        "This deployment's migrations differ from the backup's, nothing was restored (missing here: "
        f"{missing}; not in the backup: {extra}). Restore with the code version that made the backup, "
        "then migrate."
    )


def _database_load(dump: Path, *, replace_tables: list[str]) -> None:
    """Load the dump's rows and sequence values in one transaction: all of them, or none."""
    toc = _run_tool([pg_tool("pg_restore"), "--list", str(dump)], "pg_restore --list")
    keep = [
        line
        for line in toc.splitlines()
        if (match := _TOC_DATA_LINE.match(line)) and not match.group(2).startswith(MIGRATIONS_TABLE)
    ]
    # What a migrate put there (content types, permissions, seeded rows) gives way to the backup's, whose ids
    # the restored rows refer to.
    truncate = (
        f"TRUNCATE {', '.join(connection.ops.quote_name(t) for t in replace_tables)} CASCADE;\n"
        if replace_tables
        else ""
    )
    environment = {**_pg_environment(), "PGOPTIONS": f"-c lock_timeout={LOCK_TIMEOUT} -c client_min_messages=warning"}
    with tempfile.TemporaryDirectory(prefix="portal-restore-") as work:
        listing = Path(work) / "toc.list"
        listing.write_text("\n".join(keep) + "\n")
        with (
            open(Path(work) / "pg_restore.err", "w+b") as restore_errors,
            open(Path(work) / "psql.err", "w+b") as psql_errors,
        ):
            psql = subprocess.Popen(
                [pg_tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=psql_errors,
                env=environment,
            )
            restore = subprocess.Popen(
                [pg_tool("pg_restore"), "--data-only", f"--use-list={listing}", "--file=-", str(dump)],
                stdout=subprocess.PIPE,
                stderr=restore_errors,
            )
            try:
                # Django's foreign keys are DEFERRABLE INITIALLY DEFERRED: checked at COMMIT, whatever the order.
                psql.stdin.write(f"BEGIN;\n{truncate}".encode())
                shutil.copyfileobj(restore.stdout, psql.stdin, CHUNK_BYTES)
                # COMMIT only after the whole script: psql at end of input without it rolls everything back.
                if restore.wait() == 0:
                    psql.stdin.write(b"COMMIT;\n")
            except BrokenPipeError:
                pass  # psql stopped at an error; its message says which
            finally:
                if restore.poll() is None:
                    restore.kill()
                restore_code = restore.wait()
                try:
                    psql.stdin.close()
                except BrokenPipeError:
                    pass
                psql_code = psql.wait()
            restore_errors.seek(0)
            psql_errors.seek(0)
            if restore_code != 0 or psql_code != 0:
                raise BackupError(
                    "Loading the database failed, nothing was loaded (one transaction): "
                    f"pg_restore exit {restore_code}: {restore_errors.read().decode(errors='replace')[-1500:]} "
                    f"psql exit {psql_code}: {psql_errors.read().decode(errors='replace')[-1500:]}"
                )
    # The content types were replaced by the backup's, under other ids perhaps.
    from django.contrib.contenttypes.models import ContentType

    ContentType.objects.clear_cache()


def _media_load(source: Path, manifest: dict, progress) -> None:
    names = sorted(name for name in manifest["files"] if name != DUMP_NAME)
    bar = _progress_bar(progress, len(names), "Restoring media")
    for name in names:
        storage_name = name.removeprefix(f"{MEDIA_FOLDER}/")
        with open(source / name, "rb") as backed_up:
            saved = default_storage.save(storage_name, File(backed_up, name=storage_name))
        if saved != storage_name:
            raise BackupError(f"The restore is NOT complete: the storage saved {storage_name} as {saved}.")
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()


def _restored_check(manifest: dict):
    with connection.cursor() as cursor:
        tables = _table_counts(cursor)
    problems = [
        f"{table}: {tables.get(table)} rows, the backup had {count}"
        for table, count in manifest["tables"].items()
        if tables.get(table) != count
    ]
    problems += [f"{table}: not in the backup" for table in sorted(set(tables) - set(manifest["tables"]))]
    for name, entry in sorted(manifest["files"].items()):
        if name == DUMP_NAME:
            continue
        try:
            with default_storage.open(name.removeprefix(f"{MEDIA_FOLDER}/"), "rb") as stored:
                sha256, size = _copy_hashing(stored, None)
        except FileNotFoundError:
            problems.append(f"{name}: not in the storage after the restore")
            continue
        if (sha256, size) != (entry["sha256"], entry["size"]):
            problems.append(f"{name}: its SHA-256 in the storage differs from the manifest's")
    chain = audit_verify()
    if not chain.whole:
        problems.append(f"the audit log is broken at entry {chain.broken_at} ({chain.problem})")
    elif chain.head_hash != manifest["audit"]["head_hash"]:
        problems.append(
            f"the audit log's head hash is {chain.head_hash}, the backup's {manifest['audit']['head_hash']}"
        )
    if problems:
        raise BackupError(
            "The restore is NOT complete; the deployment holds what was loaded so far: "
            + "; ".join(problems[:20])
            + "."
        )
    return tables, chain
