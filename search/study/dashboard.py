"""optuna-dashboard on a study's storage, with its artifact folder when it has one."""

from __future__ import annotations

import ipaddress
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


def is_loopback(host: str) -> bool:
    """True when `host` is this machine only: 127.0.0.0/8, ::1, localhost, or a name resolving only there."""
    if host.lower() == "localhost":
        return True
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)}
    except socket.gaierror:
        return False  # check_port reports a name that does not resolve
    return bool(addresses) and all(_loopback_address(address) for address in addresses)


def exposure_warning(host: str, port: int) -> str | None:
    """What to tell a user who serves the dashboard beyond this machine; None on loopback."""
    if is_loopback(host):
        return None
    return (
        f"warning: --host {host} lets other machines reach the dashboard, and optuna-dashboard has no "
        f"login: anyone who can reach port {port} can change and delete studies. To look from another "
        f"machine, keep the default --host 127.0.0.1 and tunnel there: ssh -L {port}:localhost:{port} "
        f"{socket.gethostname()}, then open http://localhost:{port}/dashboard"
    )


def _loopback_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone index is not part of the address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def serve(
    storage: optuna.storages.BaseStorage, host: str, port: int, store: FileSystemArtifactStore | None
) -> None:
    """Block serving the dashboard until interrupted."""
    from optuna_dashboard import run_server

    run_server(storage, host=host, port=port, artifact_store=store)
