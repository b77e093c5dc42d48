"""A fork server for the crash harness: import the CLI once, run each command in a forked child.

    python -m tests.crash._zygote

Importing ``flowaudit.cli`` costs seconds (the PII scanner loads spaCy); a kill -9 harness that
paid it per process would spend most trials killing an interpreter that has not started. So
this process imports the CLI, prints ``ready``, then answers one JSON request per line on
stdin, one JSON reply per line on stdout:

    {"op": "run", "argv": [...], "env": {...}, "cwd": "...", "stdout": FILE, "stderr": FILE}
        -> {"pid": N}          the child runs ``flowaudit ARGV`` exactly as the console script
    {"op": "wait", "pid": N}
        -> {"pid": N, "returncode": RC}   RC < 0: killed by that signal (-9 for kill -9)

A child is reaped only when asked, so until then its pid cannot be reused: the harness may send
it SIGKILL at any moment, even after it has exited. The server never opens a database, so a
child inherits no connection; it opens its own, as a fresh process would.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from typing import Any, TextIO


def _child(request: dict[str, Any], channel: TextIO) -> None:
    """Become ``flowaudit ARGV`` with the request's files, directory and environment; exit."""
    code = 70
    try:
        channel.close()
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        sys.stdin = open(os.devnull, encoding="utf-8")  # not the server's read-ahead buffer
        for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
            out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(out, fd)
            os.close(out)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = ["flowaudit", *request["argv"]]
        from flowaudit.cli import main

        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - a child must never return into the server loop
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def serve(requests: TextIO, channel: TextIO) -> None:
    """Answer requests until stdin closes."""
    for line in requests:
        request = json.loads(line)
        if request["op"] == "run":
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                _child(request, channel)
            reply: dict[str, Any] = {"pid": pid}
        elif request["op"] == "wait":
            _, status = os.waitpid(int(request["pid"]), 0)
            reply = {"pid": request["pid"], "returncode": os.waitstatus_to_exitcode(status)}
        else:
            reply = {"error": f"unknown op {request['op']!r}"}
        channel.write(json.dumps(reply) + "\n")
        channel.flush()


def main() -> int:
    import flowaudit.cli  # noqa: F401 - the expensive import, paid once for every child

    channel = os.fdopen(os.dup(1), "w")  # replies; fd 1 itself goes to stderr, so a stray
    os.dup2(2, 1)  # print in the server cannot corrupt the protocol
    channel.write("ready\n")
    channel.flush()
    serve(sys.stdin, channel)
    return 0


if __name__ == "__main__":
    sys.exit(main())
