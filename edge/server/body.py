"""Reading a request body within the server's bounds: its size, its time, its compression, its memory.

    413  the body (declared, as it arrives, or inflated) is over ``--max-body-mb``, or could never fit
         ``--max-inflight-mb``
    503  the bytes would overdraw the in-flight budget now (``Retry-After``)
    408  the whole body did not arrive within ``--body-timeout-s`` of its head
    415  a ``Content-Encoding`` other than gzip, deflate or identity
    400  a compressed body that is damaged, truncated, or followed by anything (one gzip member, one
         zlib stream: trailing bytes are refused, not ignored)

A bomb costs at most ``--max-body-mb`` + 1 bytes of output before it is refused: the inflater is
never asked for more. Inflating and parsing a large body run in a worker thread, one body at a time
(``Offload``): the event loop keeps answering (health, other requests' bytes) meanwhile, and at most
one such step's output is not yet charged to the in-flight budget.
"""

from __future__ import annotations

import asyncio
import zlib

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from edge.errors import ProtocolError
from edge.server.limits import Charge, Limits

DEFLATE_RATIO = 1032  # the most one byte of deflate data can expand to
STEP = 1 << 20  # inflated per call: a bomb is stopped within a MiB of the limit


class Offload:
    """Run a CPU-heavy step on a large body in a worker thread, one at a time; a small body's inline."""

    INLINE_BYTES = 256 << 10

    def __init__(self) -> None:
        self._slot: asyncio.Semaphore | None = None

    async def __call__(self, size: int, function, *args):
        if size <= self.INLINE_BYTES:
            return function(*args)
        if self._slot is None:  # created inside the server's event loop
            self._slot = asyncio.Semaphore(1)
        async with self._slot:
            return await run_in_threadpool(function, *args)


async def read_body(request: Request, limits: Limits, charge: Charge, offload: Offload) -> bytearray:
    limit = limits.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ProtocolError(f"the request body is {declared} bytes, over this server's limit of "
                            f"{limit} (--max-body-mb)", status=413)
    body = bytearray()  # grown in place (a large one is remapped, not copied): the body is held once
    try:
        async with asyncio.timeout(limits.body_timeout_s):
            async for chunk in request.stream():
                if len(body) + len(chunk) > limit:
                    raise ProtocolError(f"the request body exceeds this server's limit of {limit} bytes "
                                        f"(--max-body-mb)", status=413)
                charge.add(len(chunk), "the request body")
                body += chunk
    except TimeoutError:
        expected = f"{declared} bytes" if declared is not None else "the rest of the body"
        raise ProtocolError(f"the request body did not arrive within {limits.body_timeout_s:g} s of its head "
                            f"({len(body)} bytes came, of {expected}; --body-timeout-s)", status=408) from None
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "deflate"):
        raise ProtocolError(f"Content-Encoding {encoding!r} is not supported; use gzip, deflate or none",
                            status=415)
    plain = await offload(len(body) * DEFLATE_RATIO, inflate, body, encoding, limit)  # the work is the output
    charge.add(len(plain), "the decompressed body")
    return plain


def inflate(body: bytearray, encoding: str, limit: int) -> bytearray:
    plain, fault = _inflate(body, encoding, limit)
    if fault is not None:  # raised here, so that no traceback holds the inflated bytes
        raise fault
    return plain


def _inflate(body: bytearray, encoding: str, limit: int) -> tuple[bytearray, ProtocolError | None]:
    """Inflate ``STEP`` bytes at a time into one buffer, stopping as soon as the output passes ``limit``."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS)
    plain, data = bytearray(), body
    try:
        while not inflater.eof:
            chunk = inflater.decompress(data, STEP)
            plain += chunk
            if len(plain) > limit:
                return bytearray(), ProtocolError(f"the decompressed body exceeds this server's limit of {limit} "
                                                  f"bytes (--max-body-mb)", status=413)
            data = inflater.unconsumed_tail
            if not data and len(chunk) < STEP:
                break  # all input used, nothing more to give
    except zlib.error as error:
        return bytearray(), ProtocolError(f"the {encoding} body cannot be decompressed: {error}")
    if not inflater.eof:
        return bytearray(), ProtocolError(f"the {encoding} body is truncated")
    if inflater.unused_data:
        return bytearray(), ProtocolError(f"the {encoding} body has {len(inflater.unused_data)} bytes after its "
                                          f"end; send one {'gzip member' if encoding == 'gzip' else 'zlib stream'} "
                                          f"and nothing after it")
    return plain, None
