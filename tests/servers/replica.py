"""A real hot standby streaming from the embedded PostgreSQL, for tests and drills.

Made with pg_basebackup from the embedded server's own binaries (the pgserver package), it listens on a unix
socket of its own only. The primary needs nothing beyond initdb's defaults (wal_level replica, wal senders,
local replication trusted in pg_hba.conf); `primary_replication_problems` says what is missing otherwise.
No replication slot is made: a standby killed by a test must not hold WAL on the primary for ever.
Importing this module starts nothing.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from urllib.parse import parse_qs, unquote, urlparse

import psutil
import psycopg

from portal import embedded

# Under root, pgserver runs PostgreSQL as this user (it refuses to run as root); the standby does the same.
_SERVER_USER = "pgserver"


def _bin(name: str) -> str:
    return str(embedded._pgserver()._commands.POSTGRES_BIN_PATH / name)


def _primary_address() -> dict[str, str]:
    """Socket directory (or host), port and user of the primary the portal uses."""
    parsed = urlparse(embedded.database_url())
    query = parse_qs(parsed.query)
    return {
        "host": query.get("host", [parsed.hostname or ""])[0],
        "port": str(parsed.port or 5432),
        "user": unquote(parsed.username or "postgres"),
    }


def primary_replication_problems() -> list[str]:
    """What the primary lacks for a streaming standby (empty when it can serve one)."""
    with psycopg.connect(**_primary_address(), dbname="postgres", autocommit=True) as conn:
        wal_level, senders = conn.execute(
            "SELECT current_setting('wal_level'), current_setting('max_wal_senders')::int"
        ).fetchone()
        problems = []
        if wal_level not in ("replica", "logical"):
            problems.append(f"wal_level is {wal_level}, not replica")
        if senders < 1:
            problems.append("max_wal_senders is 0")
        allowed = conn.execute(
            "SELECT count(*) FROM pg_hba_file_rules WHERE 'replication' = ANY(database) AND type = 'local'"
            " AND error IS NULL"
        ).fetchone()[0]
        if not allowed:
            problems.append("pg_hba.conf has no local replication line")
    return problems


def _alive(pid: int) -> bool:
    # A killed process nobody has reaped yet (a zombie) is gone as far as a test is concerned.
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _free_port() -> int:
    # The standby listens on no TCP address; the port only names its socket, but a free one keeps URLs apart.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class StreamingReplica:
    """A hot standby of the embedded primary under `directory` (data, log), on its own socket and port."""

    def __init__(self, directory: pathlib.Path):
        self.directory = pathlib.Path(directory).resolve()
        self.pgdata = self.directory / "pgdata"
        self.log = self.directory / "postgres.log"
        self.port = _free_port()
        self.name = f"replica_{self.port}"
        self.socket_dir: pathlib.Path | None = None
        self._primary = _primary_address()
        self._as_server_user = os.geteuid() == 0

    # --- Life cycle ----------------------------------------------------------------------------------------

    def start(self) -> StreamingReplica:
        """pg_basebackup from the primary, then start the standby and wait until it streams."""
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> StreamingReplica:
        problems = primary_replication_problems()
        if problems:
            raise RuntimeError("The primary cannot serve a streaming replica: " + "; ".join(problems))
        self.directory.mkdir(parents=True, exist_ok=True)
        # A short directory of its own: a unix socket path has a limit of about 100 bytes.
        self.socket_dir = pathlib.Path(tempfile.mkdtemp(prefix="pgreplica-"))
        self._hand_over(self.directory)
        self._hand_over(self.socket_dir)
        self._run(
            [
                _bin("pg_basebackup"),
                "--pgdata",
                str(self.pgdata),
                "--host",
                self._primary["host"],
                "--port",
                self._primary["port"],
                "--username",
                self._primary["user"],
                "--wal-method",
                "stream",
                "--checkpoint",
                "fast",
                "--no-sync",
            ]
        )
        conninfo = (
            f"host={self._primary['host']} port={self._primary['port']} user={self._primary['user']}"
            f" application_name={self.name}"
        )
        # postgresql.auto.conf came with the backup and is read last: these lines win over the primary's.
        with open(self.pgdata / "postgresql.auto.conf", "a") as auto_conf:
            auto_conf.write(
                "\n# This standby's own settings\n"
                "listen_addresses = ''\n"
                f"port = {self.port}\n"
                f"unix_socket_directories = '{self.socket_dir}'\n"
                "shared_buffers = '128MB'\n"
                # A test standby: nothing it holds must outlive a crash of the machine, and without fsync it
                # starts (and starts again after kill()) without syncing every file of its data first.
                "fsync = off\n"
                "hot_standby = on\n"
                f"primary_conninfo = '{conninfo}'\n"
                "primary_slot_name = ''\n"
            )
        (self.pgdata / "standby.signal").touch()
        self._hand_over(self.pgdata, recursive=True)
        return self._run_standby()

    def restart(self) -> StreamingReplica:
        """Start the standby again on its own data after kill() or stop(): it recovers and streams again."""
        self.kill()
        self.socket_dir.mkdir(exist_ok=True)
        # The lock files of a killed postmaster name a process that may linger unreaped (a zombie), which the
        # new postmaster would take for a live one; every process of the old one is gone by now.
        for lock in [self.pgdata / "postmaster.pid", *self.socket_dir.glob(".s.PGSQL.*")]:
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()
        self._hand_over(self.socket_dir)
        return self._run_standby()

    def _run_standby(self) -> StreamingReplica:
        self._run([_bin("pg_ctl"), "-D", str(self.pgdata), "-l", str(self.log), "-w", "-t", "60", "start"])
        self._wait(lambda: self._query("SELECT status FROM pg_stat_wal_receiver") == "streaming", 30, "stream")
        return self

    def stop(self) -> None:
        """Stop the standby (after kill(): make sure nothing of it is left) and remove its socket directory."""
        if self.running():
            with contextlib.suppress(RuntimeError):
                self._run([_bin("pg_ctl"), "-D", str(self.pgdata), "-m", "fast", "-w", "-t", "30", "stop"])
        self.kill()  # whatever is left, so that nothing writes into the directories while they are removed
        if self.socket_dir is not None:
            shutil.rmtree(self.socket_dir, ignore_errors=True)

    def kill(self) -> None:
        """SIGKILL the standby's postmaster, and its processes with it, as a host that dies would."""
        # Again until none is left: a process forked as the postmaster died is in no earlier list.
        for _ in range(50):
            pids = self._process_ids()
            if not pids:
                return
            self._kill_pids(pids)
        raise RuntimeError(f"Processes of the replica in {self.pgdata} survive SIGKILL: {pids}")

    def running(self) -> bool:
        pid = self._postmaster_pid()
        return pid is not None and _alive(pid)

    # --- Addresses -----------------------------------------------------------------------------------------

    def url(self, database: str) -> str:
        """postgresql:// URL of `database` on the standby (the form of DATABASE_URL and DATABASE_REPLICA_URLS)."""
        return f"postgresql://postgres@:{self.port}/{database}?host={self.socket_dir}"

    def connect(self, database: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(
            host=str(self.socket_dir), port=self.port, user="postgres", dbname=database, autocommit=True
        )

    # --- Replay --------------------------------------------------------------------------------------------

    def primary_lsn(self) -> str:
        with psycopg.connect(**self._primary, dbname="postgres", autocommit=True) as conn:
            return conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0]

    def replay_lsn(self) -> str:
        return self._query("SELECT pg_last_wal_replay_lsn()::text")

    def wait_caught_up(self, timeout: float = 30) -> None:
        """Wait until the standby has replayed everything the primary had written when this was called."""
        target = self.primary_lsn()
        self._wait(
            lambda: self._query(f"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn") is True,
            timeout,
            f"replay up to {target}",
        )

    def pause_replay(self) -> None:
        """Keep receiving WAL but stop applying it: the standby falls behind every commit made from now on."""
        self._query("SELECT pg_wal_replay_pause()")
        self._wait(lambda: self._query("SELECT pg_get_wal_replay_pause_state()") == "paused", 10, "pause")

    def resume_replay(self) -> None:
        self._query("SELECT pg_wal_replay_resume()")

    # --- Helpers -------------------------------------------------------------------------------------------

    def _query(self, sql: str):
        with self.connect() as conn:
            row = conn.execute(sql).fetchone()
        return None if row is None else row[0]

    def _wait(self, ready, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            try:
                if ready():
                    return
            except psycopg.Error as exc:
                last_error = exc
            time.sleep(0.05)
        raise TimeoutError(f"The replica did not {what} within {timeout} s ({last_error}); see {self.log}")

    def _run(self, command: list[str]) -> None:
        # The server's user with its own group only: root's group must not decide what it may open.
        as_user = {"user": _SERVER_USER, "group": _SERVER_USER, "extra_groups": []} if self._as_server_user else {}
        result = subprocess.run(command, cwd=self.directory, capture_output=True, text=True, timeout=300, **as_user)
        if result.returncode:
            log = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{pathlib.Path(command[0]).name} failed ({result.returncode}): {result.stderr}{log}")

    def _hand_over(self, path: pathlib.Path, *, recursive: bool = False) -> None:
        """Under root, the server's user owns the standby's files and can reach them through the parents."""
        if not self._as_server_user:
            return
        import pwd

        server = pwd.getpwnam(_SERVER_USER)
        paths = [path, *path.rglob("*")] if recursive else [path]
        for each in paths:
            os.chown(each, server.pw_uid, server.pw_gid, follow_symlinks=False)
        for parent in path.parents:
            mode = parent.stat().st_mode
            if not mode & stat.S_IXOTH:
                parent.chmod(mode | stat.S_IXOTH)

    def _postmaster_pid(self) -> int | None:
        with contextlib.suppress(FileNotFoundError, ValueError, IndexError):
            return int((self.pgdata / "postmaster.pid").read_text().split()[0])
        return None

    def _process_ids(self) -> list[int]:
        """Every live process of this standby, the postmaster first: PostgreSQL's processes work in their data
        directory, which finds them also once the postmaster is gone and they belong to no parent of it."""
        postmaster = self._postmaster_pid()
        found = []
        for process in psutil.process_iter():
            with contextlib.suppress(psutil.Error):
                if process.cwd() == str(self.pgdata) and _alive(process.pid):
                    found.append(process.pid)
        return sorted(found, key=lambda pid: pid != postmaster)

    @staticmethod
    def _kill_pids(pids: list[int]) -> None:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in pids:
            for _ in range(100):
                if not _alive(pid):
                    break
                time.sleep(0.02)
