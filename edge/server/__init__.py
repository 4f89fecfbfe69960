"""The embedded inference server (``keycam serve``): the Open Inference Protocol over a Triton-layout repository.

Needs the ``server`` extra (Starlette and uvicorn): ``pip install keycam[server]``. Devices never import it;
it imports the wire format (``edge.wire.codec``) and the keyed-model runtime (``edge.runtime``), nothing else
of the device. ``app`` is the HTTP application, ``repository`` the models it serves (a Triton-layout
folder), ``batching`` the merging of requests that wait for a busy model, ``limits`` what one client may
cost (bytes, rows, time), ``body`` the reading of a request body within them, ``connections`` the
connection guards (head deadline, cap), ``listen`` the socket and uvicorn's configuration, ``process``
the process's file-descriptor limit and allocator, ``metrics`` the Prometheus counters of ``/metrics``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from edge.errors import ServerError
from edge.server.limits import Limits


def serve(repository: str | Path, *, host: str = "127.0.0.1", port: int = 8000, token: str | None = None,
          limits: Limits | None = None, max_connections: int | None = None, threads: int | None = None,
          concurrency: int = 1, max_batch: int = 8, log_level: str = "warning", ready=None, key=None) -> None:
    """Load every model under ``repository``, bind ``host:port``, call ``ready(models, limits)``, serve until
    SIGINT/SIGTERM. ``max_connections`` (it sets ``limits.max_connections``): None for 1000, or as many as the
    process's file descriptors hold once their soft limit is raised to the hard one."""
    try:
        import uvicorn

        from edge.server.app import create_app
    except ImportError as error:
        raise ServerError(f"keycam serve needs the server extra ({error.name} is missing): "
                          f"pip install 'keycam[server]'") from None
    from edge.server.listen import open_socket, uvicorn_config
    from edge.server.process import fit_connections, raise_fd_limit, return_freed_memory
    from edge.server.repository import ModelRepository

    limits = replace(limits or Limits(), max_connections=fit_connections(max_connections, raise_fd_limit()))
    return_freed_memory()
    models = ModelRepository(repository, threads=threads, concurrency=concurrency, key=key)
    app = create_app(models, token=token, limits=limits, max_batch=max_batch)
    sock = open_socket(host, port)  # before anything says "starting"
    server = uvicorn.Server(uvicorn_config(app, host=host, port=port, log_level=log_level))
    if ready is not None:
        ready(models, limits)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    if not server.started:
        raise ServerError(f"the server could not listen on {host}:{port}")
