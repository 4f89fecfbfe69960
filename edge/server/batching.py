"""Dynamic batching without added delay: requests that queue while a model is busy run together.

A worker takes the oldest waiting request and every other waiting request with the same
per-frame shapes and requested outputs, up to ``max_batch`` rows (the server passes
``min(--max-batch, --max-rows)``, and no request has more than ``--max-rows``), stacks them along the batch
axis, runs the model once, and splits the outputs back by each request's row count::

    requests r_1 (n_1 rows), ..., r_k (n_k rows) waiting, n_1 + ... + n_k <= max_batch
    x = concat(x_1, ..., x_k) along axis 0            (n_1 + ... + n_k, ...)
    y = model(x);  y_i = y[n_1 + ... + n_{i-1} : n_1 + ... + n_i]

An idle server runs a request at once (nothing is waited for), so batching costs a lone device
nothing and lets many devices share one model run. Only models whose inputs and outputs all have a
dynamic leading (batch) dimension are batched; a batch's answers equal each request run alone to
float tolerance (onnxruntime may block a larger GEMM differently), never in a different order.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

import numpy as np
from starlette.concurrency import run_in_threadpool

from edge.server.repository import ServedModel


@dataclass
class _Waiting:
    key: tuple
    inputs: dict[str, np.ndarray]
    wanted: list[str]
    rows: int
    future: asyncio.Future


def batchable(model: ServedModel) -> bool:
    return all(t.shape and t.shape[0] < 0 for t in model.inputs + model.outputs)


class Batcher:
    def __init__(self, model: ServedModel, max_batch: int, workers: int = 1, on_batch=None) -> None:
        self.model, self.max_batch, self.workers = model, max(1, max_batch), max(1, workers)
        self.on_batch = on_batch  # called with the requests and the rows of each model run
        self._waiting: deque[_Waiting] = deque()
        self._wakeup: asyncio.Event | None = None
        self._tasks: list[asyncio.Task] = []
        self.batches = 0
        self.requests = 0

    async def run(self, inputs: dict[str, np.ndarray], wanted: list[str]) -> dict[str, np.ndarray]:
        if self._wakeup is None:  # created inside the server's event loop
            self._wakeup = asyncio.Event()
            self._tasks = [asyncio.create_task(self._work()) for _ in range(self.workers)]
        rows = next(iter(inputs.values())).shape[0]
        key = (tuple(wanted), tuple((name, a.shape[1:], a.dtype.str) for name, a in sorted(inputs.items())))
        future = asyncio.get_running_loop().create_future()
        self._waiting.append(_Waiting(key, inputs, wanted, rows, future))
        self._wakeup.set()
        return await future

    def _take(self) -> list[_Waiting]:
        first = self._waiting.popleft()
        batch, rows, kept = [first], first.rows, deque()
        while self._waiting:
            item = self._waiting.popleft()
            if item.key == first.key and rows + item.rows <= self.max_batch:
                batch.append(item)
                rows += item.rows
            else:
                kept.append(item)
        self._waiting = kept
        return batch

    async def _work(self) -> None:
        while True:
            while not self._waiting:
                self._wakeup.clear()
                await self._wakeup.wait()
            batch = self._take()
            self.batches += 1
            self.requests += len(batch)
            if self.on_batch is not None:
                self.on_batch(len(batch), sum(item.rows for item in batch))
            try:
                if len(batch) == 1:
                    outputs = [await run_in_threadpool(self.model.run, batch[0].inputs, batch[0].wanted)]
                else:
                    stacked = {name: np.concatenate([item.inputs[name] for item in batch])  # (sum rows, ...)
                               for name in batch[0].inputs}
                    together = await run_in_threadpool(self.model.run, stacked, batch[0].wanted)
                    edges = np.cumsum([item.rows for item in batch])[:-1]
                    parts = {name: np.split(value, edges) for name, value in together.items()}
                    outputs = [{name: parts[name][i] for name in parts} for i in range(len(batch))]
            except Exception as error:  # every request of the batch gets the model's error
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(error)
                continue
            for item, answer in zip(batch, outputs):
                if not item.future.done():
                    item.future.set_result(answer)
