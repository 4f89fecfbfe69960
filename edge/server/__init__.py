"""The embedded inference server (``keycam serve``): the Open Inference Protocol over a Triton-layout repository.

Needs the ``server`` extra (Starlette and uvicorn): ``pip install keycam[server]``. Devices never import it;
it imports the wire format (``edge.wire.codec``) and the keyed-model runtime (``edge.runtime``), nothing else
of the device. ``app`` is the HTTP application, ``repository`` the models it serves (a Triton-layout
folder), ``batching`` the merging of requests that wait for a busy model.
"""

from __future__ import annotations

from pathlib import Path

from edge.errors import ServerError


def serve(repository: str | Path, *, host: str = "127.0.0.1", port: int = 8000, token: str | None = None,
          max_body_mb: float = 64, threads: int | None = None, concurrency: int = 1, max_batch: int = 8,
          log_level: str = "warning",
          ready=None) -> None:
    """Load every model under ``repository`` and serve them until SIGINT/SIGTERM."""
    try:
        import uvicorn

        from edge.server.app import create_app
    except ImportError as error:
        raise ServerError(f"keycam serve needs the server extra ({error.name} is missing): "
                          f"pip install 'keycam[server]'") from None
    from edge.server.repository import ModelRepository

    models = ModelRepository(repository, threads=threads, concurrency=concurrency)
    app = create_app(models, token=token, max_body_bytes=int(max_body_mb * (1 << 20)), max_batch=max_batch)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False,
                            timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    if ready is not None:
        ready(models)
    server.run()
    if not server.started:
        raise ServerError(f"the server could not listen on {host}:{port} (address in use, or not this machine's?)")
