"""Backups with the bundled pg_dump (custom format) and an all-or-nothing restore.

Restore replaces the database's contents: in one transaction it drops every object that does not
belong to an extension, then replays the archive. The pgvector extension itself is left in place
(the archive is taken without it), so the `vector` type keeps its oid and open connection pools
keep working. The transaction is committed only after pg_restore has produced the whole archive
without error: a truncated or unreadable file leaves the database exactly as it was.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from hanseek.store.db import ensure_vector_extension, redact_url
from hanseek.store.errors import StoreError
from hanseek.store.server import pg_binary

__all__ = ["backup", "restore"]

# Drops what a previous restore or the migrations created; skips anything owned by an extension
# (pgvector's type, operators, functions) and schemas that hold an extension.
_WIPE = r"""
SET LOCAL client_min_messages = warning;
DO $wipe$
DECLARE r record;
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
END
$wipe$;
"""


def _tail(path: Path, n: int = 2000) -> str:
    return path.read_text(errors="replace").strip()[-n:]


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """(conninfo without the password, environment with PGPASSWORD) for the bundled client programs:
    a password on their command line would be readable by every local user in the process list."""
    params = conninfo_to_dict(url)
    password = params.pop("password", None)
    env = dict(os.environ)
    if password is not None:
        env["PGPASSWORD"] = str(password)
    return make_conninfo("", **params), env


def backup(url: str, file: Path) -> int:
    """Dump the database at `url` to `file` (pg_dump custom format); return the file's size in bytes."""
    file = file.expanduser().resolve()
    file.parent.mkdir(parents=True, exist_ok=True)
    partial = file.with_name(file.name + ".partial")  # a failed dump never looks like a backup
    conninfo, env = _libpq(url)
    proc = subprocess.run(
        [
            str(pg_binary("pg_dump")),
            "--format=custom",
            "--exclude-extension=vector",  # see the module docstring
            f"--file={partial}",
            f"--dbname={conninfo}",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    if proc.returncode != 0:
        partial.unlink(missing_ok=True)
        raise StoreError(f"pg_dump of {redact_url(url)} failed:\n{proc.stderr.strip()[-2000:]}")
    partial.replace(file)
    return file.stat().st_size


def _check_archive(file: Path) -> None:
    if not file.is_file():
        raise StoreError(f"backup file {file} does not exist")
    proc = subprocess.run([str(pg_binary("pg_restore")), "--list", str(file)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise StoreError(
            f"{file} is not a pg_dump custom-format archive: {proc.stderr.strip()[-500:] or 'unreadable'}"
        )


def restore(url: str, file: Path) -> None:
    """Replace the contents of the database at `url` with the archive `file`, atomically."""
    file = file.expanduser().resolve()
    _check_archive(file)
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
            complete = False
            try:
                psql.stdin.write(b"BEGIN;\n" + _WIPE.encode() + b"\n")
                shutil.copyfileobj(dump.stdout, psql.stdin, 1 << 20)
                complete = dump.wait() == 0
                if complete:
                    # Only now: a pg_restore that died half-way must not get its partial script committed.
                    psql.stdin.write(b"ANALYZE;\nCOMMIT;\n")
            except BrokenPipeError:
                pass  # psql stopped on an error; reported below
            finally:
                if dump.poll() is None:
                    dump.kill()
                dump.wait()
                with contextlib.suppress(BrokenPipeError):
                    psql.stdin.close()  # EOF inside an open transaction = rollback
                psql.wait()
        if dump.returncode != 0:
            raise StoreError(f"reading {file} failed, nothing was restored:\n{_tail(restore_err)}")
        if psql.returncode != 0 or not complete:
            raise StoreError(
                f"restoring {file} into {redact_url(url)} failed and was rolled back:\n{_tail(psql_err)}"
            )
