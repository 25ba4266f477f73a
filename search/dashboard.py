"""optuna-dashboard on a study's storage, with its artifact folder when it has one."""

from __future__ import annotations

import socket

import optuna
from optuna.artifacts import FileSystemArtifactStore

from mnist_arch.errors import UsageError


def check_port(host: str, port: int) -> None:
    """Fail early, with one line, when the port is taken or the host is not this machine's."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except socket.gaierror as error:
        raise UsageError(f"--host {host}: cannot resolve it ({error.strerror})") from None
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # The server itself reuses addresses, so a port in TIME_WAIT is free for it too.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            reason = "is in use" if error.errno == 98 else f"cannot be opened ({error.strerror})"
            raise UsageError(f"port {port} on {host} {reason}; pass another --port") from None


def serve(
    storage: optuna.storages.BaseStorage, host: str, port: int, store: FileSystemArtifactStore | None
) -> None:
    """Block serving the dashboard until interrupted."""
    from optuna_dashboard import run_server

    run_server(storage, host=host, port=port, artifact_store=store)
