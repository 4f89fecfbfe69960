"""The server commands: ``serve`` (the embedded Open Inference Protocol server) and ``export triton``."""

from __future__ import annotations

import argparse
import os
import sys

from edge.cli.args import count, path, port, positive, positive_float, threads


def register(commands) -> None:
    serve = commands.add_parser("serve", help="serve a model repository over the Open Inference Protocol (KServe v2)")
    serve.add_argument("--model-repository", required=True, type=path, metavar="DIR",
                       help="Triton-layout repository: DIR/NAME/V/model.onnx (see `keycam export triton`)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=port, default=8000, help="TCP port (default 8000)")
    serve.add_argument("--token-file", type=path, default=None, metavar="FILE",
                       help="require 'Authorization: Bearer TOKEN' (the token in FILE, mode 0600) except for health")
    serve.add_argument("--key", type=path, default=None, metavar="KEYFILE",
                       help="the key to open sealed measurements with (models of a sealed readout spec need it)")
    serve.add_argument("--max-body-mb", type=positive_float, default=64,
                       help="largest request body, MiB, as sent and decompressed (default 64)")
    serve.add_argument("--threads", type=threads, default=0, help="onnxruntime threads per model (0: its default)")
    serve.add_argument("--concurrency", type=positive, default=1, help="runs of one model at once (default 1)")
    serve.add_argument("--max-batch", type=positive, default=8,
                       help="batch up to N frames of requests waiting for a busy model (default 8; 1: never)")
    serve.add_argument("--max-rows", type=positive, default=64,
                       help="most rows (frames) in one request and in one model run; more: 413 (default 64)")
    serve.add_argument("--max-inflight-mb", type=positive_float, default=128,
                       help="memory for all requests in flight, MiB; past it: 503 + Retry-After (default 128)")
    serve.add_argument("--max-connections", type=positive, default=None,
                       help="open connections; past it the longest-idle one is closed (default 1000, or as many as "
                            "the process's file descriptors hold)")
    serve.add_argument("--header-timeout-s", type=positive_float, default=10,
                       help="seconds for a request head to arrive (default 10)")
    serve.add_argument("--body-timeout-s", type=positive_float, default=30,
                       help="seconds for a request body to arrive after its head; then 408 (default 30)")
    serve.add_argument("--keep-alive-s", type=positive_float, default=5,
                       help="seconds an idle connection stays open between requests (default 5)")
    serve.set_defaults(handler=serve_command)

    exporter = commands.add_parser("export", help="package models for servers: `keycam export triton`")
    targets = exporter.add_subparsers(dest="target", required=True, metavar="TARGET")
    triton = targets.add_parser("triton", help="add a model to a Triton model repository (also `keycam serve`'s)")
    triton.add_argument("model", type=path, metavar="MODEL.onnx", help="a keyed, task or plain ONNX model")
    triton.add_argument("--name", required=True, help="model name in the repository")
    triton.add_argument("--repository", required=True, type=path, metavar="DIR")
    triton.add_argument("--version", type=positive, default=None, help="version folder (default: the next free one)")
    triton.add_argument("--max-batch-size", type=count, default=None,
                        help="Triton's dynamic batching limit (0: off; default 8, or 0 for a model whose batch is "
                             "fixed, which refuses more)")
    triton.add_argument("--instances", type=positive, default=1, help="model instances per server (default 1)")
    triton.add_argument("--kind", choices=("cpu", "gpu"), default="cpu", help="instance kind (default cpu)")
    triton.add_argument("--max-queue-delay-us", type=count, default=100, help="dynamic batcher's wait (default 100)")
    triton.add_argument("--force", action="store_true", help="overwrite an existing version")
    triton.set_defaults(handler=export_triton_command)


def serve_command(args: argparse.Namespace) -> int:
    from edge.credentials import read_token
    from edge.server import serve
    from edge.server.limits import Limits

    token = read_token(args.token_file) if args.token_file else os.environ.get("KEYCAM_SERVER_TOKEN") or None
    key = None
    if args.key is not None:
        from firmware_sim.keys import MasterKey

        key = MasterKey.load(args.key)

    limits = Limits(max_body_bytes=_bytes(args.max_body_mb), max_rows=args.max_rows,
                    max_inflight_bytes=_bytes(args.max_inflight_mb), header_timeout_s=args.header_timeout_s,
                    body_timeout_s=args.body_timeout_s, keep_alive_s=args.keep_alive_s)

    def ready(models, limits) -> None:
        for name, versions in models.models.items():
            for version, model in versions.items():
                keyed = f"keyed for {model.fingerprint} ({model.manifest.role})" if model.manifest else "not keyed"
                print(f"keycam serve: {name} v{version}: {keyed}", file=sys.stderr)
        auth = "bearer token required" if token else "no authentication"
        print(f"keycam serve: starting on http://{args.host}:{args.port} ({auth}; at most {limits.max_connections} "
              f"connections, {limits.max_rows} rows per request, {args.max_inflight_mb:g} MiB in flight)",
              file=sys.stderr, flush=True)

    serve(args.model_repository, host=args.host, port=args.port, token=token, limits=limits,
          max_connections=args.max_connections, threads=args.threads or None, concurrency=args.concurrency,
          max_batch=args.max_batch, ready=ready, key=key)
    return 0


def _bytes(mib: float) -> int:
    return max(1, int(mib * (1 << 20)))


def export_triton_command(args: argparse.Namespace) -> int:
    from export.package.triton import TritonOptions, export_triton

    options = TritonOptions(max_batch_size=args.max_batch_size, instances=args.instances, kind=args.kind,
                            max_queue_delay_us=args.max_queue_delay_us, version=args.version, force=args.force)
    folder = export_triton(args.model, args.repository, args.name, options)
    print(f"keycam: wrote {folder / 'model.onnx'} and {folder.parent / 'config.pbtxt'}")
    seal = _seal_read_by(folder / "model.onnx")
    if seal:
        print(f"keycam: note: this model reads sealed measurements ({seal}); Triton cannot open seals: serve this "
              f"repository with `keycam serve --key KEYFILE`, or for Triton key with --split-after and export the "
              f"task model (docs/server.md)")
    return 0


def _seal_read_by(path) -> str | None:
    """The AEAD a full keyed model's input is sealed with (its manifest's spec), or None."""
    import onnx

    from firmware_sim.manifest import METADATA_KEY, Manifest

    model = onnx.load(str(path), load_external_data=False)
    text = next((p.value for p in model.metadata_props if p.key == METADATA_KEY), None)
    if text is None:
        return None
    manifest = Manifest.from_json(text, str(path))
    return manifest.spec.seal if manifest.role == "full" and manifest.spec.seal != "none" else None
