"""Postfix's smtp-sink and smtp-source as plain programs, for bench/announce_smtp.py.

On first use, `apt-get download postfix` (Debian's package, nothing installed, no mail system
configured) into var/bench-cache/postfix/ (ignored by git) and unpack it there with
`dpkg-deb -x`. The two programs need the package's own libraries (usr/lib/postfix), given to
them through LD_LIBRARY_PATH.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "var" / "bench-cache" / "postfix"
UNPACKED = CACHE / "root"
SMTP_SINK = UNPACKED / "usr" / "sbin" / "smtp-sink"
SMTP_SOURCE = UNPACKED / "usr" / "sbin" / "smtp-source"


def ensure_tools() -> dict[str, str]:
    """Download and unpack Postfix if needed; the environment to run its programs with."""
    if not (SMTP_SINK.exists() and SMTP_SOURCE.exists()):
        missing = [tool for tool in ("apt-get", "dpkg-deb") if not shutil.which(tool)]
        if missing:
            raise SystemExit(
                f"--sink postfix needs Postfix's smtp-sink and smtp-source, fetched with "
                f"`apt-get download postfix` and unpacked with `dpkg-deb -x`, but "
                f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not available "
                f"here (a Debian or Ubuntu machine is needed, or put the unpacked package under "
                f"{UNPACKED})."
            )
        CACHE.mkdir(parents=True, exist_ok=True)
        for old in CACHE.glob("postfix_*.deb"):
            old.unlink()
        done = subprocess.run(
            ["apt-get", "download", "postfix"], cwd=CACHE, capture_output=True, text=True
        )
        packages = sorted(CACHE.glob("postfix_*.deb"))
        if done.returncode or not packages:
            raise SystemExit(
                f"`apt-get download postfix` failed (try `apt-get update` first):\n"
                f"{done.stdout}\n{done.stderr}"
            )
        subprocess.run(["dpkg-deb", "-x", str(packages[-1]), str(UNPACKED)], check=True)
    env = dict(os.environ)
    libraries = str(UNPACKED / "usr" / "lib" / "postfix")
    env["LD_LIBRARY_PATH"] = os.pathsep.join(
        filter(None, [libraries, os.environ.get("LD_LIBRARY_PATH")])
    )
    return env


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PostfixSink:
    """smtp-sink on 127.0.0.1, accepting everything; `value` = messages accepted so far.

    It counts with `-c` (a running "sess=.. quit=.. mesg=N" line, rewritten after every
    event), written to a file; `value` is the last mesg= in it.
    """

    def __init__(self, folder: Path):
        env = ensure_tools()
        self.port = free_port()
        self.log = folder / "smtp-sink.out"
        command = [str(SMTP_SINK), "-c"]
        if os.geteuid() == 0:  # smtp-sink refuses to run as root without dropping privileges
            command += ["-u", "nobody"]
        command += [f"127.0.0.1:{self.port}", "1000"]
        self._out = self.log.open("wb")
        self.process = subprocess.Popen(command, stdout=self._out, stderr=subprocess.PIPE, env=env)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(
                        f"smtp-sink did not start: {self.process.stderr.read().decode()}"
                    ) from None
                time.sleep(0.05)

    @property
    def value(self) -> int:
        time.sleep(0.2)  # let the last sessions' counts be written
        tail = self.log.read_bytes()[-400:].decode(errors="replace")
        counts = re.findall(r"mesg=(\d+)", tail)
        return int(counts[-1]) if counts else 0

    def terminate(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        self._out.close()


def smtp_source(port: int, message: Path, count: int, sessions: int) -> dict:
    """smtp-source sending `count` copies of the message in the file over `sessions` parallel
    connections, each kept open for the next message (-d); its wall time."""
    env = ensure_tools()
    command = [str(SMTP_SOURCE), "-d", "-s", str(sessions), "-m", str(count),
               "-F", str(message), "-f", "news@walkagain.example", "-t", "reader@example.com",
               f"127.0.0.1:{port}"]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"smtp-source failed:\n{done.stdout}\n{done.stderr}")
    return {"messages": count, "seconds": seconds}
