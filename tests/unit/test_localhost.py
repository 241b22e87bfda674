"""Ports the lab picks for its processes, and what a dead process's log is reduced to."""

from __future__ import annotations

import socket
from pathlib import Path

from lab.localhost import free_port, log_excerpt

GO_STACK = [f"goroutine frame {i}\n\t/src/file.go:{i} +0x52" for i in range(40)]


def test_a_picked_port_is_not_handed_out_again_to_a_bind_to_port_zero() -> None:
    picked = free_port()
    # Linux hands out ephemeral ports in a random order: a port put straight back into the pool
    # comes back within a few thousand binds (4 times in 30,000 when measured).
    handed_out = set()
    for _ in range(30_000):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", 0))
            handed_out.add(sock.getsockname()[1])
    assert picked not in handed_out
    assert len(handed_out) > 1_000


def test_the_server_a_port_was_picked_for_can_listen_on_it_at_once() -> None:
    picked = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", picked))
        server.listen(1)
        with socket.create_connection(("127.0.0.1", picked), timeout=5):
            accepted, _ = server.accept()
            accepted.close()


def test_a_go_panic_is_shown_above_the_stack_that_fills_the_end_of_the_log(
    tmp_path: Path,
) -> None:
    log = tmp_path / "temporal.log"
    log.write_text(
        "\n".join(["starting", "panic: failed assigning ephemeral port", "", *GO_STACK]) + "\n"
    )
    excerpt = log_excerpt(log, lines=10).splitlines()
    assert excerpt[0] == "panic: failed assigning ephemeral port"
    assert "..." in excerpt
    assert excerpt[-1] == GO_STACK[-1].splitlines()[-1]
    assert "starting" not in excerpt


def test_a_log_without_a_panic_is_its_tail(tmp_path: Path) -> None:
    log = tmp_path / "vcsim.log"
    log.write_text("\n".join(f"line {i}" for i in range(50)))
    assert log_excerpt(log, lines=3) == "line 47\nline 48\nline 49"


def test_a_panic_inside_the_tail_is_not_repeated(tmp_path: Path) -> None:
    log = tmp_path / "temporal.log"
    log.write_text("one\npanic: boom\ntwo\n")
    assert log_excerpt(log, lines=5) == "one\npanic: boom\ntwo"


def test_a_missing_or_empty_log_says_so(tmp_path: Path) -> None:
    assert "no log" in log_excerpt(tmp_path / "absent.log")
    (tmp_path / "empty.log").write_text("")
    assert log_excerpt(tmp_path / "empty.log") == "(log is empty)"
