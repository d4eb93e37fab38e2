"""The embedded PostgreSQL: the binaries of the `pgserver` wheel (PostgreSQL 16 + pgvector), run by us.

pgserver's own server management is not used, because it trusts every local connection and, with a
long data path or as root, puts the socket in a world-writable directory and widens the permissions of
the data path's parents. Here:

- the cluster lives in `MENTOR_HOME/pgdata` and listens only on a Unix socket in `MENTOR_HOME/run`
  (0700, the socket itself 0700) — no TCP, so no port to collide with;
- authentication is scram-sha-256 for every connection; the superuser password is generated once into
  `MENTOR_HOME/db_password` (0600), so even a process that could reach the socket needs it;
- a data path too long for a socket address gets a short symlink, `/tmp/mentor-<uid>/<hash>` (its
  directory 0700), pointing at `MENTOR_HOME/run`; the socket itself stays inside MENTOR_HOME;
- as root, where PostgreSQL refuses to run, the server runs inside an unprivileged user namespace
  (`unshare --user`) that maps the invoking root to an ordinary uid, so it owns its files as root does
  outside: no extra OS user, no chown, no permission change anywhere;
- processes using the server register their pid in `run/handles`; the last one to leave stops it, so a
  stopped `mentor serve` (SIGTERM, Ctrl-C) does not leave a server behind.

A data directory made by earlier versions (pgserver, trust authentication) is converted on first start:
its superuser gets the password and its pg_hba.conf is rewritten to scram-sha-256.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import importlib.util
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from core.errors import DatabaseUnavailable, DataDirInUse
from store.secrets import read_or_create_secret

MAX_SOCKET_PATH = 100  # sun_path holds 107 bytes; keep a margin
USERNS_UID = 65534  # "nobody" inside the namespace: exists in /etc/passwd, which initdb looks up
SUPERUSER = "postgres"
HBA = """# mentor: every connection needs a password (scram-sha-256); the socket directory is 0700.
local   all   all                 scram-sha-256
host    all   all   127.0.0.1/32  scram-sha-256
host    all   all   ::1/128       scram-sha-256
"""


def _bin_dir() -> Path:
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise DatabaseUnavailable("the embedded PostgreSQL needs the pgserver package: pip install pgserver")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _check_pgdata_dir(pgdata: Path) -> None:
    """Refuse a data directory that exists but is not ours to initialise (a file, or foreign files)."""
    if pgdata.exists() and not pgdata.is_dir():
        raise DataDirInUse(f"data directory {pgdata} exists and is not a directory")
    if pgdata.is_dir() and not (pgdata / "PG_VERSION").exists():
        foreign = [p.name for p in pgdata.iterdir() if not p.name.startswith(".")]
        if foreign:
            raise DataDirInUse(
                f"data directory {pgdata} is in use by something else (contains {', '.join(sorted(foreign)[:3])}); "
                "point MENTOR_HOME at an empty or existing mentor directory"
            )


def _private_dir(path: Path) -> Path:
    """A directory only this user can enter (created 0700; an existing one must be ours and not shared)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.lstat()
    if info.st_uid != os.geteuid() or not path.is_dir() or path.is_symlink():
        raise DatabaseUnavailable(f"{path} belongs to another user; refusing to put the database socket there")
    if info.st_mode & 0o077:
        path.chmod(0o700)  # ours, under MENTOR_HOME or our own /tmp directory: tighten it
    return path


def _own_tree(path: Path) -> None:
    for root, dirs, files in os.walk(path):
        for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
            os.lchown(name, 0, 0)


class EmbeddedServer:
    """`tcp_port`: also listen on 127.0.0.1 at that port (a real TCP server, e.g. for several hosts' workers
    in the scale-out test); the Unix socket is always there."""

    def __init__(self, home: Path, tcp_port: int | None = None) -> None:
        self.home = home
        self.tcp_port = tcp_port
        self.pgdata = home / "pgdata"
        self.run_dir = home / "run"
        self.password_file = home / "db_password"
        self.log = self.pgdata / "log"
        self._registered = False

    # -- paths and credentials ------------------------------------------------------------------
    @property
    def socket_dir(self) -> Path:
        """The directory given to PostgreSQL: the run directory, or a short symlink to it."""
        if len(str(self.run_dir / f".s.PGSQL.{self.port}")) <= MAX_SOCKET_PATH:
            return self.run_dir
        short = _private_dir(Path("/tmp") / f"mentor-{os.geteuid()}")
        link = short / hashlib.sha256(str(self.run_dir.resolve()).encode()).hexdigest()[:12]
        if not (link.is_symlink() and os.readlink(link) == str(self.run_dir.resolve())):
            with contextlib.suppress(FileNotFoundError):
                link.unlink()
            link.symlink_to(self.run_dir.resolve())
        return link

    @property
    def password(self) -> str:
        return read_or_create_secret(self.password_file)

    def uri(self, dbname: str = "postgres", user: str = SUPERUSER, password: str | None = None) -> str:
        """A postgresql:// URI over the Unix socket (what DATABASE_URL would hold for this server)."""
        secret = password if password is not None else self.password
        return (f"postgresql://{quote(user, safe='')}:{quote(secret, safe='')}@/{quote(dbname, safe='')}"
                f"?host={quote(str(self.socket_dir), safe='')}&port={self.port}")

    @property
    def port(self) -> int:
        return self.tcp_port or 5432

    def tcp_uri(self, dbname: str = "postgres", user: str = SUPERUSER, password: str | None = None) -> str:
        """A postgresql:// URI over TCP to 127.0.0.1 (only with `tcp_port`)."""
        if self.tcp_port is None:
            raise DatabaseUnavailable("this embedded server listens on its Unix socket only")
        secret = password if password is not None else self.password
        return (f"postgresql://{quote(user, safe='')}:{quote(secret, safe='')}@127.0.0.1:{self.tcp_port}/"
                f"{quote(dbname, safe='')}")

    # -- running ----------------------------------------------------------------------------------
    def _command(self, name: str, *args: str) -> list[str]:
        cmd = [str(_bin_dir() / name), *args]
        if os.geteuid() == 0:  # PostgreSQL refuses root: run it as an ordinary uid in a user namespace
            cmd = ["unshare", "--user", f"--map-user={USERNS_UID}", f"--map-group={USERNS_UID}", *cmd]
        return cmd

    def _run(self, name: str, *args: str, timeout: float = 60) -> None:
        out = self.home / "run" / f"{name}.out"
        with open(out, "w") as sink:
            result = subprocess.run(self._command(name, *args), stdin=subprocess.DEVNULL, stdout=sink,
                                    stderr=subprocess.STDOUT, timeout=timeout, check=False)
        if result.returncode != 0:
            tail = out.read_text(errors="replace").strip().splitlines()[-3:]
            raise DatabaseUnavailable(f"{name} failed for {self.pgdata}: {' / '.join(tail)} (see {self.log})")

    def postmaster_pid(self) -> int | None:
        """The running postmaster's pid, or None (a stale postmaster.pid from a dead server counts as none)."""
        pidfile = self.pgdata / "postmaster.pid"
        try:
            pid = int(pidfile.read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid  # alive, someone else's process
        return pid

    def _listening_dir(self) -> str | None:
        """The socket directory the running postmaster was started with (line 5 of postmaster.pid)."""
        try:
            lines = (self.pgdata / "postmaster.pid").read_text().split("\n")
            return lines[4].strip() if len(lines) > 4 else None
        except OSError:
            return None

    def _initdb(self) -> None:
        self._run("initdb", "-D", str(self.pgdata), "-U", SUPERUSER, "--auth-local=scram-sha-256",
                  "--auth-host=scram-sha-256", f"--pwfile={self.password_file}", "-E", "UTF8", "--no-instructions")
        (self.pgdata / ".mentor-auth").write_text("scram-sha-256\n")

    def _start_postmaster(self) -> None:
        socket_dir = self.socket_dir
        listen = f"-h 127.0.0.1 -p {self.tcp_port}" if self.tcp_port else "-h ''"
        self._run("pg_ctl", "-D", str(self.pgdata), "-w", "-t", "60", "-l", str(self.log),
                  "-o", f"-k {socket_dir} {listen} -c unix_socket_permissions=0700", "start", timeout=90)

    def _stop_postmaster(self, pid: int, timeout: float = 30) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGINT)  # fast shutdown: roll back open transactions, stop cleanly
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.postmaster_pid() is None:
                return
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGQUIT)

    def _secure_legacy_cluster(self) -> None:
        """A cluster initialised with trust authentication: set the password, then require it."""
        self._start_postmaster()
        with psycopg.connect(make_conninfo(host=str(self.socket_dir), port=str(self.port), dbname="postgres",
                                           user=SUPERUSER), autocommit=True) as conn:
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(SUPERUSER),
                                                                    sql.Literal(self.password)))
        (self.pgdata / "pg_hba.conf").write_text(HBA)
        self._stop_postmaster(self.postmaster_pid() or 0)
        (self.pgdata / ".mentor-auth").write_text("scram-sha-256\n")

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        with open(self.run_dir / "lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _handles(self, update: int = 0) -> list[int]:
        """Pids using the server (dead ones dropped); add (update > 0) or remove (< 0) this process."""
        path = self.run_dir / "handles"
        pids = [int(p) for p in re.findall(r"\d+", path.read_text())] if path.exists() else []
        alive = []
        for pid in pids:
            try:
                os.kill(pid, 0)
                alive.append(pid)
            except ProcessLookupError:
                continue
            except PermissionError:
                alive.append(pid)
        me = os.getpid()
        alive = [p for p in alive if p != me] + ([me] if update > 0 else [])
        path.write_text("\n".join(map(str, alive)))
        return alive

    def start(self) -> str:
        """Start the server (or attach to the running one); return the superuser's connection string."""
        _check_pgdata_dir(self.pgdata)
        _private_dir(self.home)
        _private_dir(self.run_dir)
        self.password  # noqa: B018 — create the secret before initdb reads it
        with self._lock():
            if not (self.pgdata / "PG_VERSION").exists():
                self._initdb()
            elif os.geteuid() == 0 and self.pgdata.stat().st_uid != 0:
                _own_tree(self.pgdata)  # made by pgserver for its own OS user; ours now, inside MENTOR_HOME
            pid = self.postmaster_pid()
            if pid is not None and self._listening_dir() != str(self.socket_dir):
                self._stop_postmaster(pid)  # a server started elsewhere (an older mentor, pgserver): restart it here
                pid = None
            if pid is None and not (self.pgdata / ".mentor-auth").exists():
                self._secure_legacy_cluster()
            if pid is None:
                self._start_postmaster()
            self._handles(+1)
        if not self._registered:
            self._registered = True
            atexit.register(self.release)
        return self.uri()

    def release(self) -> None:
        """This process is done with the server; the last one out stops it."""
        if not self._registered or not self.run_dir.exists():
            return
        self._registered = False
        with self._lock():
            if not self._handles(-1) and (pid := self.postmaster_pid()) is not None:
                self._stop_postmaster(pid)

    def stop(self) -> None:
        """Stop the server now, whoever else uses it (tests, `mentor db stop`)."""
        with self._lock():
            if (pid := self.postmaster_pid()) is not None:
                self._stop_postmaster(pid)
            (self.run_dir / "handles").write_text("")
        self._registered = False


_servers: dict[Path, EmbeddedServer] = {}


def embedded_server(home: Path) -> EmbeddedServer:
    home = home.expanduser().resolve()
    if home not in _servers:
        _servers[home] = EmbeddedServer(home)
    return _servers[home]
