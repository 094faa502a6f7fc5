"""The driver's connection to a Ray cluster, shared by the curation and feature engines."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import UsageError

HINT = "; start one (`ray start --head`) or give its head's HOST:PORT with --address"


def reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast on a HOST:PORT nothing listens on (``ray.init`` would retry for minutes)."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if address == "auto" or not sep or not port.isdigit():
        return  # auto (this node's cluster) or a form ray.init resolves itself
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as err:
        raise UsageError(f"cannot reach a Ray cluster at {address!r} ({err.strerror or err}){HINT}") from None


@contextmanager
def connected(address: str) -> Iterator[object]:
    """``ray`` connected to the cluster at ``address`` (``HOST:PORT`` of its head, or ``auto``); a
    connection made here is closed on exit, one that already existed (a caller's) is reused and left open.
    An unreachable cluster is a :class:`UsageError` naming the address."""
    import ray

    started = not ray.is_initialized()
    if started:
        reachable(address)
        try:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        except ConnectionError as err:
            raise UsageError(f"cannot reach a Ray cluster at {address!r} ({err}){HINT}") from None
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()
