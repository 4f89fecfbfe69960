"""Benchmark: the device's cost of a key-epoch change (rebuilding the sensor tables and the session).

For each network and policy: the keyed model's first load, then median time to rebuild it for a new
epoch (permutation for the new sensor layout, the sensor-dependent tables, a new onnxruntime
session with those tables overriding the model's), over 5 epochs.

    python benchmarks/bench_epochs.py
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge.runtime import KeyedModel  # noqa: E402
from export.keyify import KeyifyOptions, keyify  # noqa: E402
from export.package.save import save  # noqa: E402
from export.zoo import NETWORKS  # noqa: E402
from firmware_sim.keys import MasterKey  # noqa: E402


def main() -> int:
    key = MasterKey.generate()
    print(f"Run on {date.today().isoformat()}, {platform.machine()}, {os.cpu_count()} cores, median of 5 epochs\n")
    print("| network | policy | sensor tables | first load (ms) | rebuild for a new epoch (ms) |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("resnet18", "mobilenet_v2", "resnet20", "unet"):
            build, _, mean, std = NETWORKS[name]
            plain = build()
            for policy in ("fresh", "boundary"):
                path = Path(tmp) / f"{name}-{policy}.onnx"
                result = keyify(plain, key, KeyifyOptions(policy=policy, mean=mean, std=std))
                save(result, path)
                start = time.perf_counter()
                KeyedModel(path, key)
                first = (time.perf_counter() - start) * 1e3
                rebuilds = [KeyedModel(path, key, epoch=e).rebuild_seconds * 1e3 for e in range(1, 6)]
                print(f"| {name} | {policy} | {len(result.manifest.sensor_tables)} | {first:.0f} | "
                      f"{statistics.median(rebuilds):.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
