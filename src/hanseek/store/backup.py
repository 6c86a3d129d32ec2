"""Backups with the bundled pg_dump (custom format) and an all-or-nothing restore.

Restore replaces the database's contents: in one transaction it drops every object that does not
belong to an extension, then replays the archive. The pgvector extension itself is left in place
(the archive is taken without it), so the `vector` type keeps its oid and open connection pools
keep working. The transaction is committed only after pg_restore has produced the whole archive
without error: a truncated or unreadable file leaves the database exactly as it was.

The media files (image originals and thumbnails, which the database only names) go beside the
archive, in FILE.media.tar, so that FILE itself stays a plain pg_dump archive. Model directories are
left out: they are large and can be downloaded or trained again. A restore unpacks them into a
staging directory beside the media directory and moves them in before the COMMIT: a restore killed
in between leaves files that no row names (content-addressed, so never a wrong file under a name;
`hanseek images gc` removes them), never rows whose files are missing.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from hanseek.files import left_by_dead_writer, remove_dead_writers, shared_mode
from hanseek.store.db import check_url, ensure_vector_extension, redact_url
from hanseek.store.errors import StoreError
from hanseek.store.migrations import load_migrations, newer_message, newer_than
from hanseek.store.server import pg_binary

__all__ = [
    "BackupInfo",
    "backup",
    "media_archive",
    "remove_stale_partials",
    "remove_stale_staging",
    "restore",
]

MEDIA_SUFFIX = ".media.tar"

# Drops what a previous restore or the migrations created; skips anything owned by an extension
# (pgvector's type, operators, functions) and schemas that hold an extension.
_WIPE = r"""
SET LOCAL client_min_messages = warning;
DO $wipe$
DECLARE r record; kind text; ident text;
BEGIN
  -- Each DROP ... CASCADE may take later candidates with it: re-check existence before each one.
  FOR r IN SELECT n.oid FROM pg_namespace n
           WHERE n.nspname NOT IN ('public', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'
             AND NOT EXISTS (SELECT 1 FROM pg_extension e WHERE e.extnamespace = n.oid)
  LOOP
    IF EXISTS (SELECT 1 FROM pg_namespace WHERE oid = r.oid) THEN
      EXECUTE format('DROP SCHEMA %I CASCADE', (SELECT nspname FROM pg_namespace WHERE oid = r.oid));
    END IF;
  END LOOP;
  FOR r IN SELECT c.oid, c.relkind FROM pg_class c
           WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
             -- e: extension member; i/a: identity or serial sequence, dropped with its table
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                             AND d.objid = c.oid AND d.deptype IN ('e', 'i', 'a'))
  LOOP
    IF EXISTS (SELECT 1 FROM pg_class WHERE oid = r.oid) THEN
      EXECUTE format('DROP %s %s CASCADE',
        CASE r.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'f' THEN 'FOREIGN TABLE'
                       WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END, r.oid::regclass);
    END IF;
  END LOOP;
  FOR r IN SELECT p.oid, p.prokind FROM pg_proc p
           WHERE p.pronamespace = 'public'::regnamespace
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                             AND d.objid = p.oid AND d.deptype = 'e')
  LOOP
    IF EXISTS (SELECT 1 FROM pg_proc WHERE oid = r.oid) THEN
      EXECUTE format('DROP %s %s CASCADE',
        CASE r.prokind WHEN 'p' THEN 'PROCEDURE' WHEN 'a' THEN 'AGGREGATE' ELSE 'FUNCTION' END,
        r.oid::regprocedure);
    END IF;
  END LOOP;
  FOR r IN SELECT t.oid, t.typtype FROM pg_type t
           WHERE t.typnamespace = 'public'::regnamespace AND t.typtype IN ('e', 'c', 'd', 'r')
             AND (t.typrelid = 0 OR (SELECT c.relkind FROM pg_class c WHERE c.oid = t.typrelid) = 'c')
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass
                             AND d.objid = t.oid AND d.deptype = 'e')
  LOOP
    IF EXISTS (SELECT 1 FROM pg_type WHERE oid = r.oid) THEN
      EXECUTE format('DROP %s %s CASCADE', CASE r.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END,
                     r.oid::regtype);
    END IF;
  END LOOP;
  -- The other kinds of object that live in a schema and that pg_dump writes as a CREATE of their own
  -- (a collation, a text search configuration, ...): left behind, the archive's CREATE fails with
  -- "already exists". pg_identify_object quotes the name and gives NULL once a CASCADE took it.
  FOR r IN SELECT o.classid, o.objid FROM (
             SELECT 'pg_collation'::regclass, oid FROM pg_collation
                       WHERE collnamespace = 'public'::regnamespace
             UNION ALL SELECT 'pg_conversion'::regclass, oid FROM pg_conversion
                       WHERE connamespace = 'public'::regnamespace
             UNION ALL SELECT 'pg_operator'::regclass, oid FROM pg_operator
                       WHERE oprnamespace = 'public'::regnamespace
             UNION ALL SELECT 'pg_opfamily'::regclass, oid FROM pg_opfamily
                       WHERE opfnamespace = 'public'::regnamespace
             UNION ALL SELECT 'pg_opclass'::regclass, oid FROM pg_opclass
                       WHERE opcnamespace = 'public'::regnamespace
             UNION ALL SELECT 'pg_ts_config'::regclass, oid FROM pg_ts_config
                       WHERE cfgnamespace = 'public'::regnamespace
             UNION ALL SELECT 'pg_ts_dict'::regclass, oid FROM pg_ts_dict
                       WHERE dictnamespace = 'public'::regnamespace
             UNION ALL SELECT 'pg_ts_parser'::regclass, oid FROM pg_ts_parser
                       WHERE prsnamespace = 'public'::regnamespace
             UNION ALL SELECT 'pg_ts_template'::regclass, oid FROM pg_ts_template
                       WHERE tmplnamespace = 'public'::regnamespace
             UNION ALL SELECT 'pg_statistic_ext'::regclass, oid FROM pg_statistic_ext
                       WHERE stxnamespace = 'public'::regnamespace
           ) o (classid, objid)
           WHERE NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = o.classid AND d.objid = o.objid
                             AND d.deptype = 'e')
  LOOP
    SELECT i.type, i.identity INTO kind, ident FROM pg_identify_object(r.classid, r.objid, 0) i;
    IF ident IS NOT NULL THEN
      EXECUTE format('DROP %s %s CASCADE',
                     CASE kind WHEN 'statistics object' THEN 'STATISTICS' ELSE upper(kind) END, ident);
    END IF;
  END LOOP;
END
$wipe$;
"""


def _tail(path: Path, n: int = 2000) -> str:
    return path.read_text(errors="replace").strip()[-n:]


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """(conninfo without the password, environment with PGPASSWORD) for the bundled client programs:
    a password on their command line would be readable by every local user in the process list."""
    check_url(url)
    params = conninfo_to_dict(url)
    password = params.pop("password", None)
    env = dict(os.environ)
    if password is not None:
        env["PGPASSWORD"] = str(password)
    return make_conninfo("", **params), env


@dataclass(frozen=True)
class BackupInfo:
    size: int  # bytes of the database archive
    media_files: int | None  # files in the media archive; None when media were not backed up


def media_archive(file: Path) -> Path:
    """Where the media files of the backup `file` are: beside it."""
    return file.with_name(file.name + MEDIA_SUFFIX)


def backup(url: str, file: Path, *, media_dir: Path | None = None) -> BackupInfo:
    """Dump the database at `url` to `file` (pg_dump custom format) and, when `media_dir` is given,
    its files to `media_archive(file)`.

    Both are written as partials (`FILE.<random>.partial` and its `.media.tar`) and renamed at the end,
    so a failed dump never looks like a backup. The name is unique so that two backups to one FILE do
    not write one partial; the writer holds an flock on it, so the next backup to FILE can tell a
    killed backup's partials (removed) from a running one's."""
    file = file.expanduser().resolve()
    for target in (file, media_archive(file)):
        # The archive is renamed over FILE: a FIFO or a device there (`/dev/null` as root) was
        # replaced by a regular file, and the backup "succeeded".
        if target.exists() and not target.is_file():
            what = "a directory" if target.is_dir() else "not a regular file (a device, FIFO or socket)"
            raise StoreError(f"{target} is {what}; give the path of a file to write the backup to")
    file.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(file)
    fd, name = tempfile.mkstemp(prefix=f"{file.name}.", suffix=".partial", dir=file.parent)
    partial = Path(name)
    media, media_partial = media_archive(file), media_archive(partial)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.fchmod(fd, shared_mode())  # what pg_dump's own file would get, not mkstemp's 0600
        _dump(url, partial)
        # After the dump's snapshot: images are written before their rows and deleted after them, so
        # every image row in the dump has its files here, unless deleted during the backup.
        count = None if media_dir is None else _tar_media(media_dir, media_partial)
        if count is None:
            media.unlink(missing_ok=True)  # an older backup's media must not be restored with this one
        else:
            media_partial.replace(media)
        # The archive last: a crash in between leaves the old archive beside newer media, which
        # restores every file the old archive names.
        partial.replace(file)
    except BaseException:
        # The media partial first: one left alone, without its archive partial, has no owner to ask.
        media_partial.unlink(missing_ok=True)
        partial.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)
    return BackupInfo(file.stat().st_size, count)


def remove_stale_partials(file: Path) -> list[Path]:
    """Delete the partials that killed backups to `file` left beside it (also the fixed
    `FILE.partial` names that versions before session 17 wrote); returns what was removed. A partial
    whose writer's flock can be taken belongs to a dead process; a media partial belongs to the
    archive partial of the same name, which exists for as long as its backup runs."""
    pattern = re.compile(re.escape(file.name) + r"(\.[a-z0-9_]{8})?\.partial")
    removed: list[Path] = []
    try:
        names = [p.name for p in file.parent.iterdir()]
    except FileNotFoundError:
        return removed
    for name in names:
        owner_name = name.removesuffix(MEDIA_SUFFIX)
        if not pattern.fullmatch(owner_name):
            continue
        path, owner = file.parent / name, file.parent / owner_name
        # Nobody locks a media partial: its archive partial's lock (or absence) speaks for it.
        if left_by_dead_writer(path) and (owner == path or not owner.exists() or left_by_dead_writer(owner)):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _dump(url: str, out: Path) -> None:
    conninfo, env = _libpq(url)
    proc = subprocess.run(
        [
            str(pg_binary("pg_dump")),
            "--format=custom",
            "--exclude-extension=vector",  # see the module docstring
            f"--file={out}",
            f"--dbname={conninfo}",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    if proc.returncode != 0:
        raise StoreError(f"pg_dump of {redact_url(url)} failed:\n{proc.stderr.strip()[-2000:]}")


def _anonymous(member: tarfile.TarInfo) -> tarfile.TarInfo:
    # Owners mean nothing on the machine restored to.
    member.uid = member.gid = 0
    member.uname = member.gname = ""
    return member


def _tar_media(media_dir: Path, out: Path) -> int:
    """Write the regular files under `media_dir` to the tar `out`; return how many."""
    count = 0
    with tarfile.open(out, "w") as tar:
        files = sorted(media_dir.rglob("*")) if media_dir.is_dir() else []
        for path in files:
            # .tmp-*: a file being written (MediaStore writes aside, then renames)
            if path.is_symlink() or not path.is_file() or path.name.startswith(".tmp-"):
                continue
            try:
                tar.add(path, arcname=path.relative_to(media_dir).as_posix(), filter=_anonymous)
            except FileNotFoundError:
                continue  # deleted since the listing
            count += 1
    return count


def _check_archive(file: Path) -> None:
    if not file.is_file():
        raise StoreError(f"backup file {file} does not exist")
    proc = subprocess.run([str(pg_binary("pg_restore")), "--list", str(file)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise StoreError(
            f"{file} is not a pg_dump custom-format archive: {proc.stderr.strip()[-500:] or 'unreadable'}"
        )


def _archive_migrations(file: Path) -> dict[int, tuple[str]]:
    """The `schema_migrations` rows of the archive (version → name), read without restoring it."""
    proc = subprocess.run(
        [str(pg_binary("pg_restore")), "--data-only", "--table=schema_migrations", "--file=-", str(file)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise StoreError(f"reading {file} failed, nothing was restored:\n{proc.stderr.strip()[-2000:]}")
    rows: dict[int, tuple[str]] = {}
    copying = False
    for line in proc.stdout.splitlines():
        if line.startswith("COPY ") and "schema_migrations" in line:
            copying = True
        elif copying and line == "\\.":
            break
        elif copying:
            version, name, *_ = line.split("\t")
            rows[int(version)] = (name,)
    return rows


def _check_not_newer(file: Path) -> None:
    # Before anything is touched: once replayed, the newer schema would be committed and every later
    # command of this version would refuse it (Migrator.migrate) or, before session 18, run on it.
    known = load_migrations()
    newer = newer_than(known, _archive_migrations(file))
    if newer:
        raise StoreError(newer_message(f"the database in {file}", known, newer) + "; nothing was restored")


def restore(url: str, file: Path, *, media_dir: Path | None = None) -> int | None:
    """Replace the contents of the database at `url` with the archive `file`, atomically, and, when
    `media_dir` is given, put the backup's media files back into it.

    Returns the number of media files restored; None when the backup holds no media archive (made
    before media were backed up, or without them) or `media_dir` is None. The media archive is
    unpacked and checked before the database is touched; its files are added to `media_dir` once the
    archive has been replayed and before the COMMIT (files already there and not in the backup stay:
    the database no longer names them).
    """
    file = file.expanduser().resolve()
    _check_archive(file)
    _check_not_newer(file)
    media = media_archive(file)
    if media_dir is not None:
        remove_stale_staging(media_dir)
    if media_dir is None or not media.exists():
        _restore_database(url, file)
        return None
    installed: list[int] = []

    def install(staged: Path, into: Path) -> None:
        try:
            installed.append(_install_media(staged, into))
        except OSError as exc:
            raise StoreError(
                f"installing the media files into {into} failed; the database was rolled back "
                f"(files already moved in are named by no row: `hanseek images gc` removes them): {exc}"
            ) from exc

    with _staged_media(media, media_dir) as staged:
        _restore_database(url, file, before_commit=lambda: install(staged, media_dir))
    return installed[0]


# Exactly what mkdtemp(prefix=".media-restore-") makes: 8 characters from its alphabet.
_STAGING = re.compile(r"\.media-restore-[a-z0-9_]{8}")


def remove_stale_staging(media_dir: Path) -> list[Path]:
    """Delete the staging directories that killed restores left beside `media_dir` (each a whole copy
    of a backup's media, which nothing else would ever remove); returns what was removed. A live
    restore holds an flock on its own, which the kernel drops when that process dies, even by SIGKILL:
    a directory whose lock can be taken belongs to no one."""
    return remove_dead_writers(media_dir.parent, _STAGING, directories=True)


def _media_member(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
    # tarfile's "data" filter refuses absolute paths, ".." and links leaving `dest`; of what it lets
    # through only regular files are kept, with the owner (uid -1: chown leaves it) and mode of an
    # ordinary write here, so that a server running as another user can read them.
    member = tarfile.data_filter(member, dest)
    if not member.isfile():
        return None
    return member.replace(uid=-1, gid=-1, uname="", gname="", mode=shared_mode(), deep=False)


@contextlib.contextmanager
def _staged_media(media: Path, media_dir: Path) -> Iterator[Path]:
    """The media archive unpacked beside `media_dir` (same file system, so installing is renames),
    under an flock that tells `remove_stale_staging` of other restores that this one is alive;
    removed at the end."""
    media_dir.parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=".media-restore-", dir=media_dir.parent))
    fd = os.open(staged, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            with tarfile.open(media) as tar:
                tar.extractall(staged, filter=_media_member)
        except (tarfile.TarError, OSError) as exc:
            raise StoreError(f"cannot read the media archive {media}, nothing was restored: {exc}") from exc
        yield staged
    finally:
        shutil.rmtree(staged, ignore_errors=True)
        os.close(fd)


def _install_media(staged: Path, media_dir: Path) -> int:
    count = 0
    for path in sorted(staged.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        target = media_dir / path.relative_to(staged)
        target.parent.mkdir(parents=True, exist_ok=True)
        # Now, not the backup's time: `images gc` keeps files younger than its minimum age, and these
        # are named by no committed row until the restore's COMMIT.
        os.utime(path)
        os.replace(path, target)
        count += 1
    return count


def _restore_database(url: str, file: Path, *, before_commit: Callable[[], None] | None = None) -> None:
    """Replay `file` into the database in one transaction; `before_commit` runs once the whole archive
    has been sent and before the COMMIT (an error from it rolls the transaction back)."""
    ensure_vector_extension(url)
    conninfo, env = _libpq(url)
    with tempfile.TemporaryDirectory(prefix="hanseek-restore-") as tmp:
        restore_err, psql_err = Path(tmp) / "pg_restore.err", Path(tmp) / "psql.err"
        with open(restore_err, "w") as rerr, open(psql_err, "w") as perr:
            psql = subprocess.Popen(
                [str(pg_binary("psql")), "-X", "-q", "-v", "ON_ERROR_STOP=1", f"--dbname={conninfo}"],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=perr,
                env=env,
            )
            dump = subprocess.Popen(
                [str(pg_binary("pg_restore")), "--no-owner", "--no-privileges", "--file=-", str(file)],
                stdout=subprocess.PIPE,
                stderr=rerr,
            )
            assert psql.stdin is not None and dump.stdout is not None
            complete = killed = False
            try:
                psql.stdin.write(b"BEGIN;\n" + _WIPE.encode() + b"\n")
                shutil.copyfileobj(dump.stdout, psql.stdin, 1 << 20)
                complete = dump.wait() == 0
                if complete:
                    psql.stdin.flush()
                    # psql gone means it stopped on an error: nothing will commit, so nothing to add.
                    if before_commit is not None and psql.poll() is None:
                        before_commit()
                    # Only now: a pg_restore that died half-way must not get its partial script committed.
                    psql.stdin.write(b"ANALYZE;\nCOMMIT;\n")
            except BrokenPipeError:
                pass  # psql stopped on an error; reported below
            finally:
                if dump.poll() is None:
                    dump.kill()
                    killed = True
                dump.wait()
                with contextlib.suppress(BrokenPipeError):
                    psql.stdin.close()  # EOF inside an open transaction = rollback
                psql.wait()
        # pg_restore is to blame only when it failed by itself: when psql stops on an error we kill
        # pg_restore, whose exit status then says nothing (and its stderr is empty).
        if dump.returncode != 0 and not killed:
            raise StoreError(f"reading {file} failed, nothing was restored:\n{_tail(restore_err)}")
        if psql.returncode != 0 or not complete:
            reason = _tail(psql_err) or _tail(restore_err) or f"psql exit {psql.returncode}"
            raise StoreError(f"restoring {file} into {redact_url(url)} failed and was rolled back:\n{reason}")
