"""Golden test vectors of the readout, and the command that regenerates them.

``firmware_sim/vectors/golden.json`` pins the readout for a small matrix of
cases: several public test keys, frame sizes 1x1, 1xN, Nx1, odd and
non-square, every input bit depth (8, 10, 12, 16) and output bit depth
(8, 10, 12), identity and non-identity transfers (black level, rounding,
saturation at both ends), and several key epochs. Each case records the
inputs, the readout order (the permutation) and the measurement, so a
hardware implementation can be checked against it too.

Version 2 cases (the ``bayer-*`` specs and the ``*msb*`` ones) cover the Bayer mode in every CFA
phase, LSB- and MSB-aligned input (MSB words carry random bits below the code, which the readout
drops) and transfers with a black level and a gain. For a Bayer case ``height`` and ``width`` count
cells, and ``input`` is the (2H, 2W) mosaic in raster order (``input_shape`` says so).

The ``mask`` cases (readout spec version 3) pass a privacy mask, a bitmap over the positions (SHAKE-128
bits of the case name; one case masks everything), and record it flattened in raster order: a masked
position reads input code 0.

The ``sealed`` cases (readout spec version 4) read out under a sealed spec: ``output`` is the sealed
stream (the ciphertext, in the measurement's layout), ``seal`` holds the header (run identifier,
counter, sequence, capture time: SHAKE-128 of the case name), the tag and the unsealed ``plain_output``;
AES-256-GCM and ChaCha20-Poly1305, pixels and Bayer cells, with and without a privacy mask.

The ``letterbox`` cases hold a picture inside a field of the pad code (``framing.py``: what a model that
wants ultralytics' letterbox sees); the case records the picture's place and the pad value, and the
readout of the whole frame.

Input codes come from SHAKE-128 of the case name (never numpy's random
generators), with the first samples forced to 0 and the top code so that the
saturation paths are exercised.

Regenerate (after a deliberate change of the spec, with a new spec version)::

    python -m firmware_sim.vectors --write      # or: keycam golden-vectors --write
    python -m firmware_sim.vectors --check      # exit 1 if the implementation drifted
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

from firmware_sim import SPEC_VERSION
from firmware_sim.errors import VectorsError
from firmware_sim.files import read_regular, write_atomic
from firmware_sim.framing import letterboxed, pad_code
from firmware_sim.keys import MasterKey
from firmware_sim.readout import stream
from firmware_sim.seal import SealHeader, seal_stream, spec_digest
from firmware_sim.spec import GAIN_ONE, ReadoutSpec

GOLDEN_PATH = Path(__file__).with_name("vectors") / "golden.json"

# Public test keys. They protect nothing; they only pin the schedule.
TEST_KEYS = {
    "counting": bytes(range(32)),
    "zeros": bytes(32),
    "ones": b"\xff" * 32,
    "shake": hashlib.shake_128(b"keycam test key").digest(32),
}

_SPECS = {
    "rgb8-identity": ReadoutSpec(),
    "gray8-identity": ReadoutSpec(channels=1),
    "rgb10-identity": ReadoutSpec(input_bits=10, output_bits=10),
    "rgb12-identity": ReadoutSpec(input_bits=12, output_bits=12),
    "rgb8-black16-gain1.25": ReadoutSpec(black_level=16, gain_q16=GAIN_ONE * 5 // 4),
    "rgb12to8-black240-gain0.07": ReadoutSpec(input_bits=12, output_bits=8, black_level=240, gain_q16=4588),
    "gray10to12-black64-gain4": ReadoutSpec(channels=1, input_bits=10, output_bits=12, black_level=64, gain_q16=GAIN_ONE * 4),
    "gray16to12-gain1/16": ReadoutSpec(channels=1, input_bits=16, output_bits=12, gain_q16=GAIN_ONE // 16),
    "rgb16to10-black4096-gain0.0171": ReadoutSpec(input_bits=16, output_bits=10, black_level=4096, gain_q16=1121),
    "rgb8to10-gain3.999": ReadoutSpec(output_bits=10, gain_q16=262079),
    "gray12to8-gain0": ReadoutSpec(channels=1, input_bits=12, output_bits=8, gain_q16=0),
}


def _v2(**fields) -> ReadoutSpec:
    return ReadoutSpec(spec_version=2, **({"channels": 4} if "cfa" in fields else {}), **fields)


_SPECS.update({  # version 2: the Bayer mode and MSB-aligned input
    "bayer-rggb10-identity": _v2(cfa="RGGB", input_bits=10, output_bits=10),
    "bayer-grbg12-identity": _v2(cfa="GRBG", input_bits=12, output_bits=12),
    "bayer-gbrg8-identity": _v2(cfa="GBRG"),
    "bayer-bggr10-black64-gain1.5": _v2(cfa="BGGR", input_bits=10, output_bits=10, black_level=64,
                                        gain_q16=GAIN_ONE * 3 // 2),
    "bayer-gbrg16to10-black4096-gain0.0171": _v2(cfa="GBRG", input_bits=16, output_bits=10, black_level=4096,
                                                 gain_q16=1121),
    "bayer-bggr12msb-identity": _v2(cfa="BGGR", input_bits=12, output_bits=12, input_alignment="msb"),
    "bayer-rggb12msbto8-black256-gain1/16": _v2(cfa="RGGB", input_bits=12, output_bits=8, black_level=256,
                                                gain_q16=GAIN_ONE // 16, input_alignment="msb"),
    "bayer-grbg10msbto12-black64-gain2": _v2(cfa="GRBG", input_bits=10, output_bits=12, black_level=64,
                                             gain_q16=GAIN_ONE * 2, input_alignment="msb"),
    "bayer-gbrg10msb-identity": _v2(cfa="GBRG", input_bits=10, output_bits=10, input_alignment="msb"),
    "bayer-bggr8msb-black16-gain1.25": _v2(cfa="BGGR", black_level=16, gain_q16=GAIN_ONE * 5 // 4,
                                           input_alignment="msb"),
    "gray12msb-identity": _v2(channels=1, input_bits=12, output_bits=12, input_alignment="msb"),
    "rgb10msbto8-black64-gain0.25": _v2(input_bits=10, output_bits=8, black_level=64, gain_q16=GAIN_ONE // 4,
                                        input_alignment="msb"),
})

# (spec, key, height, width, epoch)
_CASES = [
    ("rgb8-identity", "counting", 1, 1, 0),
    ("rgb8-identity", "counting", 1, 7, 0),
    ("rgb8-identity", "zeros", 7, 1, 0),
    ("rgb8-identity", "counting", 13, 11, 0),
    ("rgb8-identity", "counting", 13, 11, 1),
    ("rgb8-identity", "ones", 16, 16, 0),
    ("gray8-identity", "shake", 1, 2, 0),
    ("gray8-identity", "shake", 5, 9, 7),
    ("rgb10-identity", "counting", 3, 5, 0),
    ("rgb10-identity", "shake", 8, 17, 2**40),
    ("rgb12-identity", "zeros", 6, 4, 0),
    ("rgb12-identity", "ones", 2, 33, 1),
    ("rgb8-black16-gain1.25", "counting", 9, 7, 0),
    ("rgb12to8-black240-gain0.07", "shake", 11, 3, 0),
    ("gray10to12-black64-gain4", "counting", 1, 31, 5),
    ("gray16to12-gain1/16", "ones", 4, 4, 0),
    ("gray16to12-gain1/16", "zeros", 12, 10, 3),
    ("rgb16to10-black4096-gain0.0171", "shake", 7, 6, 0),
    ("rgb8to10-gain3.999", "counting", 3, 3, 0),
    ("gray12to8-gain0", "counting", 2, 2, 0),
    # version 2 (H x W positions: cells of a 2H x 2W mosaic for the Bayer specs)
    ("bayer-rggb10-identity", "counting", 1, 1, 0),
    ("bayer-rggb10-identity", "shake", 5, 7, 0),
    ("bayer-grbg12-identity", "zeros", 1, 6, 0),
    ("bayer-gbrg8-identity", "ones", 6, 1, 3),
    ("bayer-bggr10-black64-gain1.5", "counting", 3, 4, 1),
    ("bayer-gbrg16to10-black4096-gain0.0171", "ones", 3, 3, 5),
    ("bayer-bggr12msb-identity", "counting", 4, 4, 0),
    ("bayer-bggr12msb-identity", "shake", 3, 5, 2**40),
    ("bayer-rggb12msbto8-black256-gain1/16", "counting", 7, 3, 1),
    ("bayer-grbg10msbto12-black64-gain2", "shake", 2, 9, 0),
    ("bayer-gbrg10msb-identity", "zeros", 1, 2, 0),
    ("bayer-bggr8msb-black16-gain1.25", "zeros", 2, 2, 7),
    ("gray12msb-identity", "counting", 3, 7, 0),
    ("rgb10msbto8-black64-gain0.25", "shake", 5, 4, 1),
]


# (spec, key, height, width, epoch, inner height, inner width, top, left, pad): positions (cells for a Bayer spec)
_LETTERBOX_CASES = [
    ("rgb8-identity", "counting", 8, 10, 0, 4, 10, 2, 0, 114),
    ("rgb8-black16-gain1.25", "shake", 5, 9, 3, 5, 5, 0, 2, 114),
    ("gray12msb-identity", "shake", 6, 6, 0, 6, 4, 0, 1, 114),
    ("rgb10-identity", "zeros", 7, 3, 1, 3, 3, 2, 0, 0),
    ("bayer-rggb10-identity", "counting", 4, 4, 1, 2, 4, 1, 0, 114),
    ("bayer-bggr12msb-identity", "shake", 3, 5, 0, 3, 3, 0, 1, 255),
]


# (spec, key, height, width, epoch, every position masked): privacy masks, positions (cells for a Bayer spec)
_MASK_CASES = [
    ("rgb8-identity", "counting", 6, 5, 0, False),
    ("rgb8-black16-gain1.25", "shake", 4, 4, 2, False),
    ("gray12msb-identity", "ones", 4, 7, 0, False),
    ("rgb12to8-black240-gain0.07", "zeros", 3, 3, 1, True),
    ("bayer-rggb10-identity", "counting", 3, 4, 1, False),
    ("bayer-bggr12msb-identity", "shake", 2, 5, 0, False),
]


_SPECS.update({  # version 4: sealed
    "rgb8-sealed-aes": ReadoutSpec(spec_version=4, seal="aes-256-gcm"),
    "gray10to8-black64-sealed-chacha": ReadoutSpec(spec_version=4, channels=1, input_bits=10, output_bits=8,
                                                   black_level=64, gain_q16=GAIN_ONE // 4, seal="chacha20-poly1305"),
    "bayer-bggr10-sealed-aes": ReadoutSpec(spec_version=4, cfa="BGGR", channels=4, input_bits=10, output_bits=10,
                                           seal="aes-256-gcm"),
    "bayer-rggb12msb-sealed-chacha": ReadoutSpec(spec_version=4, cfa="RGGB", channels=4, input_bits=12,
                                                 output_bits=12, input_alignment="msb", seal="chacha20-poly1305"),
})

# (spec, key, height, width, epoch, masked): sealed readouts; positions (cells for a Bayer spec)
_SEALED_CASES = [
    ("rgb8-sealed-aes", "counting", 5, 7, 0, False),
    ("rgb8-sealed-aes", "shake", 1, 1, 3, False),
    ("gray10to8-black64-sealed-chacha", "ones", 6, 4, 1, False),
    ("bayer-bggr10-sealed-aes", "zeros", 3, 4, 2, True),
    ("bayer-rggb12msb-sealed-chacha", "counting", 2, 3, 0, False),
]


def case_seal_header(name: str, spec: ReadoutSpec, key: MasterKey, shape: tuple, epoch: int,
                     masks: str = "") -> SealHeader:
    """A sealed case's header: run identifier, counter, sequence and capture time from SHAKE-128 of its name."""
    raw = hashlib.shake_128(("seal/" + name).encode()).digest(40)
    return SealHeader(run=raw[:16], counter=int.from_bytes(raw[16:24], "big") >> 1, epoch=epoch,
                      sequence=int.from_bytes(raw[24:32], "big") >> 1, timestamp_ns=int.from_bytes(raw[32:40], "big")
                      >> 1, shape=shape, fingerprint=key.fingerprint, spec_digest=spec_digest(spec), masks=masks)


def case_mask(name: str, height: int, width: int, everything: bool) -> np.ndarray:
    """A case's privacy mask: SHAKE-128 bits of its name (about half the positions), or every position."""
    if everything:
        return np.ones((height, width), bool)
    bits = np.frombuffer(hashlib.shake_128(("mask/" + name).encode()).digest(height * width), np.uint8) & 1
    return bits.astype(bool).reshape(height, width)  # (H*W,) -> (H, W)


def case_name(spec_name: str, key_name: str, height: int, width: int, epoch: int) -> str:
    return f"{spec_name}/{key_name}/{height}x{width}/epoch{epoch}"


def case_shape(spec: ReadoutSpec, height: int, width: int) -> tuple[int, int, int]:
    """The input frame's shape for H x W positions: (H, W, C), or the (2H, 2W, 1) mosaic of a Bayer spec."""
    return (2 * height, 2 * width, 1) if spec.is_bayer else (height, width, spec.channels)


def case_input(name: str, spec: ReadoutSpec, height: int, width: int) -> np.ndarray:
    """Deterministic input codes for a case: SHAKE-128 of its name, edges forced to 0 and the top code.

    MSB-aligned input: 16-bit words, random bits below the code included (the readout drops them).
    """
    shape = case_shape(spec, height, width)
    count = shape[0] * shape[1] * shape[2]
    raw = np.frombuffer(hashlib.shake_128(name.encode()).digest(4 * count), dtype="<u4")  # (count,)
    top = 0xFFFF if spec.is_msb else spec.input_max  # the largest word
    codes = (raw & np.uint32(top)).astype(np.int64)
    codes[0:1] = 0
    codes[1:2] = top
    codes[2:3] = spec.black_level << spec.alignment_shift
    return codes.astype(spec.input_dtype).reshape(shape)  # (count,) -> (H, W, C) or (2H, 2W, 1)


def _letterbox_input(name: str, spec: ReadoutSpec, height: int, width: int, inner: tuple, place: tuple,
                     pad: int) -> np.ndarray:
    """A letterbox case's frame: SHAKE codes of the inner picture, placed at ``place`` in a field of the pad code."""
    picture = case_input(name, spec, *inner)
    cell = 2 if spec.is_bayer else 1  # photosites per position along each axis
    rows, cols = case_shape(spec, height, width)[:2]
    return letterboxed(picture, rows, cols, place[0] * cell, place[1] * cell, pad_code(pad, spec))


def generate() -> dict:
    """Compute every golden case with the reference readout."""
    cases = [_case(spec_name, key_name, height, width, epoch) for spec_name, key_name, height, width, epoch in _CASES]
    for spec_name, key_name, height, width, epoch, inner_h, inner_w, top, left, pad in _LETTERBOX_CASES:
        name = "letterbox/" + case_name(spec_name, key_name, height, width, epoch)
        spec = _SPECS[spec_name]
        frame = _letterbox_input(name, spec, height, width, (inner_h, inner_w), (top, left), pad)
        case = _case(spec_name, key_name, height, width, epoch, name, frame)
        case["letterbox"] = {"inner": [inner_h, inner_w], "top": top, "left": left, "pad": pad,
                             "pad_code": pad_code(pad, spec)}
        cases.append(case)
    for spec_name, key_name, height, width, epoch, everything in _MASK_CASES:
        name = "mask/" + case_name(spec_name, key_name, height, width, epoch)
        mask = case_mask(name, height, width, everything)
        case = _case(spec_name, key_name, height, width, epoch, name, mask=mask)
        case["mask"] = mask.reshape(-1).astype(int).tolist()  # (H, W) -> raster order, 1: masked
        cases.append(case)
    cases.extend(_sealed_case(*row) for row in _SEALED_CASES)
    return {
        "description": "keycam readout golden vectors (docs/readout-spec.md); regenerate with "
        "`python -m firmware_sim.vectors --write`",
        "spec_version": SPEC_VERSION,
        "spec_versions": [1, 2, 3, 4],
        "cases": cases,
    }


def _sealed_case(spec_name: str, key_name: str, height: int, width: int, epoch: int, masked: bool) -> dict:
    """A sealed case: the readout, then the seal as the sensor computes it (``seal_stream``)."""
    name = "sealed/" + case_name(spec_name, key_name, height, width, epoch)
    spec, key = _SPECS[spec_name], MasterKey(TEST_KEYS[key_name])
    mask = case_mask(name, height, width, False) if masked else None
    case = _case(spec_name, key_name, height, width, epoch, name, mask=mask)
    channels = spec.channels
    header = case_seal_header(name, spec, key, (height, width, channels), epoch, "pm1:0123456789abcdef" if masked
                              else "")
    frame = np.array(case["input"], dtype=spec.input_dtype).reshape(case_shape(spec, height, width))
    sealed = seal_stream((pixel.codes for pixel in stream(frame, key, spec, epoch, mask)), key, spec, header)
    case["plain_output"], case["output"] = case["output"], sealed.data.reshape(-1).tolist()
    case["seal"] = {"run": header.run.hex(), "counter": header.counter, "sequence": header.sequence,
                    "timestamp_ns": header.timestamp_ns, "masks": header.masks, "tag": sealed.tag.hex(),
                    "associated_data": header.associated_data().hex()}
    if mask is not None:
        case["mask"] = mask.reshape(-1).astype(int).tolist()  # (H, W) -> raster order, 1: masked
    return case


def _case(spec_name: str, key_name: str, height: int, width: int, epoch: int, name: str | None = None,
          frame: np.ndarray | None = None, mask: np.ndarray | None = None) -> dict:
    """One golden case: its inputs, the readout order and the measurement, by the reference readout."""
    spec = _SPECS[spec_name]
    key = MasterKey(TEST_KEYS[key_name])
    name = name or case_name(spec_name, key_name, height, width, epoch)
    frame = case_input(name, spec, height, width) if frame is None else frame
    order, output = [], []
    for pixel in stream(frame, key, spec, epoch, mask):
        order.append(pixel.address)
        output.extend(pixel.codes)
    case = {
        "name": name,
        "key_hex": TEST_KEYS[key_name].hex(),
        "fingerprint": key.fingerprint,
        "spec": spec.model_dump(),
        "height": height,
        "width": width,
        "epoch": epoch,
        "input": frame.reshape(-1).tolist(),  # (H, W, C) raster order, flattened (a mosaic: (2H, 2W, 1))
        "readout_order": order,
        "output": output,
    }
    if spec.is_bayer:
        case["input_shape"] = list(frame.shape)
    return case


def load(path: Path = GOLDEN_PATH) -> dict:
    path = Path(path)
    data = read_regular(path, "golden vectors", VectorsError)  # a FIFO or a device is refused, never waited on
    try:
        vectors = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise VectorsError(f"golden vectors '{path}' are not JSON ({error}); regenerate them with --write") from None
    if not isinstance(vectors, dict) or not isinstance(vectors.get("cases"), list):
        raise VectorsError(f"golden vectors '{path}' hold no list of cases; regenerate them with --write")
    return vectors


def dumps(vectors: dict) -> str:
    """JSON with one case per line, so a diff names the cases that changed."""
    head = {key: value for key, value in vectors.items() if key != "cases"}
    lines = [json.dumps(case, separators=(",", ":")) for case in vectors["cases"]]
    body = json.dumps(head, indent=1)[:-2]  # drop the closing "\n}"
    return body + ',\n "cases": [\n  ' + ",\n  ".join(lines) + "\n ]\n}\n"


def drift(path: Path = GOLDEN_PATH) -> list[str]:
    """Names of the cases whose stored vectors differ from what the implementation computes now."""
    stored = {case.get("name"): case for case in load(path)["cases"] if isinstance(case, dict)}
    fresh = {case["name"]: case for case in generate()["cases"]}
    names = sorted(set(stored) | set(fresh))
    return [name for name in names if stored.get(name) != fresh.get(name)]


def _count() -> int:
    return len(_CASES) + len(_LETTERBOX_CASES) + len(_MASK_CASES) + len(_SEALED_CASES)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m firmware_sim.vectors", description=__doc__.split("\n")[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", nargs="?", const=str(GOLDEN_PATH), metavar="PATH", help="regenerate the vectors")
    group.add_argument("--check", nargs="?", const=str(GOLDEN_PATH), metavar="PATH", help="compare with the file")
    args = parser.parse_args(argv)
    if args.write:
        try:
            write_atomic(Path(args.write), dumps(generate()).encode())
        except OSError as error:
            raise VectorsError(f"golden vectors '{args.write}' cannot be written: {error.strerror}") from None
        print(f"wrote {_count()} golden cases to {args.write}")
        return 0
    drifted = drift(Path(args.check))
    if drifted:
        print(f"{len(drifted)} golden case(s) drifted: {', '.join(drifted)}", file=sys.stderr)
        return 1
    print(f"all {_count()} golden cases match {args.check}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
