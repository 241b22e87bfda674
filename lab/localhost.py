"""What the lab's local processes share: ports picked for them, and what their logs say when
one of them dies."""

from __future__ import annotations

import re
import socket
from pathlib import Path

# A Go program that dies prints one "panic:" or "fatal error:" line and then a stack of
# goroutines that alone can fill the end of its log.
_GO_DEATH = re.compile(r"^(panic: |fatal error: )")
_DEATH_CONTEXT_LINES = 4


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on, kept from being handed out again to another bind(port 0).

    A port merely bound and closed goes straight back to the kernel's pool of ephemeral ports,
    where a process started meanwhile that also asks for a free port (the Temporal dev server
    picks one for each of its internal services) can get it, and then one of the two fails to
    listen. A port whose server side closed a connection first sits in TIME_WAIT (60 s on
    Linux): bind(port 0) skips it, while a server binding it by number with SO_REUSEADDR (Go's
    net.Listen, asyncio's create_server) still can."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        # The TIME_WAIT socket inherits this flag; without it the port's own server could not
        # bind it either until TIME_WAIT ends.
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, 0))
        listener.listen(1)
        port: int = listener.getsockname()[1]
        with socket.create_connection((host, port), timeout=5) as client:
            accepted, _ = listener.accept()
            accepted.close()
            # Drain the FIN so that the client's close completes the exchange now.
            client.recv(1)
    return port


def log_excerpt(log_path: Path, lines: int = 20) -> str:
    """The end of a log, led by the line that says why a Go program died when the end holds
    only its stack."""
    try:
        text = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no log at {log_path})"
    if not text:
        return "(log is empty)"
    tail_start = max(0, len(text) - lines)
    # The last death: a log a restarted process appends to may hold earlier ones.
    deaths = [i for i, line in enumerate(text) if _GO_DEATH.match(line)]
    death = deaths[-1] if deaths else None
    if death is None or death >= tail_start:
        return "\n".join(text[tail_start:])
    cause = text[death : min(death + _DEATH_CONTEXT_LINES, tail_start)]
    return "\n".join([*cause, "...", *text[tail_start:]])
