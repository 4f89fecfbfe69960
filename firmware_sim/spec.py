"""The readout spec: what one frame looks like going into and coming out of the ADC.

A spec fixes everything about the readout except the key and the frame size:

- ``channels`` C in {1, 3}: values per position; a position's channels travel together.
  Version 2 adds the Bayer mode (``cfa`` = RGGB, GRBG, GBRG or BGGR, ``channels`` = 4): a position
  is a 2x2 cell of the colour filter array, its four codes in the canonical order (R, Gr, Gb, B)
  whatever the phase (``firmware_sim.cfa``); the input is the (2H, 2W) mosaic.
- ``input_bits`` in {8, 10, 12, 16}: the sensor's code width. Codes arrive
  unpacked and LSB-aligned: uint8 for 8 bits, uint16 otherwise. Version 2 adds
  ``input_alignment = "msb"``: 16-bit words holding the code in their top bits (a Raspberry Pi 5's
  unpacked raw); the readout takes ``word >> (16 - input_bits)``.
- the pointwise fixed-point transfer, applied to every code x independently::

      v = max(x - black_level, 0)                   # black level, clamped at 0
      v = (v * gain_q16 + 2**15) >> 16              # gain in UQ16.16, round half up
      y = min(v, 2**output_bits - 1)                # saturate

- ``output_bits`` in {8, 10, 12}: the measurement's code width (uint8 for 8,
  uint16 LSB-aligned otherwise).

The identity transfer (black level 0, gain 1.0, equal bit depths) is the
default. All arithmetic is on non-negative integers below 2**48, so it is exact
in 64-bit hardware and in numpy's int64. See ``docs/readout-spec.md``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_serializer, model_validator

from firmware_sim import SPEC_VERSION
from firmware_sim.cfa import PHASES, cell_offsets, to_cells, to_mosaic
from firmware_sim.errors import FrameError, SpecError

GAIN_ONE = 1 << 16
"""The gain 1.0 in UQ16.16."""


class ReadoutSpec(BaseModel):
    """A versioned description of the sensor readout (see ``docs/readout-spec.md``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    spec_version: Literal[1, 2, 4] = Field(
        default=SPEC_VERSION,
        description="Version of docs/readout-spec.md this spec follows: 1 (pixels), 2 for a spec that uses "
        "the Bayer mode (cfa) or MSB-aligned input, 4 for a sealed spec (seal).",
    )
    channels: Literal[1, 3, 4] = Field(
        default=3,
        description="Values per position (1 = monochrome or raw, 3 = colour, 4 = a Bayer cell's R, Gr, Gb, B). "
        "The readout keeps a position's channels together and in the order delivered.",
    )
    input_bits: Literal[8, 10, 12, 16] = Field(
        default=8,
        description="Width of the sensor's codes in bits; uint8 for 8, unpacked LSB-aligned uint16 otherwise.",
    )
    output_bits: Literal[8, 10, 12] = Field(
        default=8,
        description="Width of the measurement's codes in bits; uint8 for 8, LSB-aligned uint16 otherwise.",
    )
    black_level: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="Code subtracted from every input code before the gain (unit: input codes; "
        "0 <= black_level < 2**input_bits). Results below zero clamp to 0.",
    )
    gain_q16: int = Field(
        default=GAIN_ONE,
        ge=0,
        le=(1 << 32) - 1,
        description="Gain as an unsigned Q16.16 fixed-point number: 65536 is 1.0, 4096 is 1/16 "
        "(for example 12-bit input to 8-bit output). Bounds 0 .. 2**32-1.",
    )
    cfa: Literal["none", "RGGB", "GRBG", "GBRG", "BGGR"] = Field(
        default="none",
        description="Version 2. 'none': pixel mode. Otherwise the Bayer mode: the colours at (0,0), (0,1), (1,0), "
        "(1,1) of every 2x2 cell of the mosaic; a position is a cell, its codes (R, Gr, Gb, B), channels = 4.",
    )
    input_alignment: Literal["lsb", "msb"] = Field(
        default="lsb",
        description="Version 2. 'msb': input codes arrive as 16-bit words with the input_bits-bit code in the top "
        "bits (a Raspberry Pi 5's unpacked raw); the readout takes word >> (16 - input_bits). input_bits < 16.",
    )
    seal: Literal["none", "aes-256-gcm", "chacha20-poly1305"] = Field(
        default="none",
        description="Version 4. The AEAD that seals the readout's output stream (firmware_sim/seal.py): "
        "aes-256-gcm (CPUs with AES instructions: a Pi 5), chacha20-poly1305 (without: a Pi 4); 'none': the "
        "measurement is the permuted codes themselves.",
    )

    @model_validator(mode="after")
    def _black_level_fits(self) -> ReadoutSpec:
        if self.black_level >= 1 << self.input_bits:
            raise ValueError(
                f"black_level = {self.black_level} does not fit {self.input_bits}-bit input codes; "
                f"use a value below {1 << self.input_bits}"
            )
        return self

    @model_validator(mode="after")
    def _version_2_fields_agree(self) -> ReadoutSpec:
        bayer, msb = self.cfa != "none", self.input_alignment == "msb"
        sealed = self.seal != "none"
        if sealed and self.spec_version != 4:
            raise ValueError(f"seal = {self.seal!r} is the sealed readout of readout spec version 4; set "
                             f"spec_version = 4")
        if self.spec_version == 4 and not sealed:
            raise ValueError("spec_version = 4 adds the sealed readout (seal); a spec without it is version 1 or "
                             "2: set spec_version to one of them, or seal to an AEAD")
        if bayer and self.spec_version not in (2, 4):
            raise ValueError(f"cfa = {self.cfa!r} is the Bayer mode of readout spec version 2; set spec_version = 2")
        if msb and self.spec_version not in (2, 4):
            raise ValueError("input_alignment = 'msb' is new in readout spec version 2; set spec_version = 2")
        if self.spec_version == 2 and not (bayer or msb):
            raise ValueError("spec_version = 2 adds only the Bayer mode (cfa) and MSB-aligned input "
                             "(input_alignment = 'msb'); a spec with neither is version 1: set spec_version = 1")
        if bayer and self.channels != 4:
            raise ValueError(f"cfa = {self.cfa!r} reads 2x2 cells of 4 codes (R, Gr, Gb, B), not channels = "
                             f"{self.channels}; set channels = 4")
        if not bayer and self.channels == 4:
            raise ValueError(f"channels = 4 is the Bayer mode's cell (R, Gr, Gb, B); set cfa to one of "
                             f"{', '.join(PHASES)}, or use channels = 1 or 3")
        if msb and self.input_bits == 16:
            raise ValueError("input_alignment = 'msb' needs input_bits below 16 (a 16-bit code fills its word); "
                             "use input_alignment = 'lsb'")
        return self

    @model_serializer(mode="wrap")
    def _version_1_fields_only(self, handler):
        """A version-1 spec is written with version 1's fields only, exactly as before version 2 existed."""
        data = handler(self)
        if self.spec_version == 1 and isinstance(data, dict):
            data.pop("cfa", None)
            data.pop("input_alignment", None)
        if self.spec_version != 4 and isinstance(data, dict):
            data.pop("seal", None)  # written only by a sealed spec: every earlier spec is written as before
        return data

    # -- derived properties -------------------------------------------------

    @property
    def input_dtype(self) -> np.dtype:
        """The numpy dtype of input codes (uint8 or uint16; uint16 words for MSB-aligned input)."""
        return np.dtype(np.uint8 if self.input_bits == 8 and not self.is_msb else np.uint16)

    @property
    def is_sealed(self) -> bool:
        """True for a sealed spec (version 4): the measurement is the AEAD-sealed readout (firmware_sim.seal)."""
        return self.seal != "none"

    @property
    def is_bayer(self) -> bool:
        """True in the Bayer mode (version 2): a position is a 2x2 CFA cell of codes (R, Gr, Gb, B)."""
        return self.cfa != "none"

    @property
    def is_msb(self) -> bool:
        """True when input codes arrive in the top bits of 16-bit words."""
        return self.input_alignment == "msb"

    @property
    def alignment_shift(self) -> int:
        """The right shift that takes an input word to its code: ``16 - input_bits`` for MSB-aligned input, else 0."""
        return 16 - self.input_bits if self.is_msb else 0

    @property
    def cell_offsets(self) -> tuple[tuple[int, int], ...]:
        """Bayer mode: (dy, dx) inside the 2x2 cell of R, Gr, Gb and B (see ``firmware_sim.cfa``)."""
        if not self.is_bayer:
            raise SpecError("cell_offsets: this spec is in pixel mode (cfa = 'none'); use a Bayer spec")
        return cell_offsets(self.cfa)

    @property
    def output_dtype(self) -> np.dtype:
        """The numpy dtype of measurement codes (uint8 or uint16)."""
        return np.dtype(np.uint8 if self.output_bits == 8 else np.uint16)

    @property
    def input_max(self) -> int:
        return (1 << self.input_bits) - 1

    @property
    def output_max(self) -> int:
        return (1 << self.output_bits) - 1

    @property
    def is_identity(self) -> bool:
        """True when the transfer maps every code to itself."""
        return self.black_level == 0 and self.gain_q16 == GAIN_ONE and self.input_bits == self.output_bits

    @property
    def gain(self) -> float:
        """The gain as a float (for display only; the readout uses ``gain_q16``)."""
        return self.gain_q16 / GAIN_ONE

    def transfer(self, code: int) -> int:
        """The pointwise transfer of one input code, in integers (the reference definition)."""
        v = code - self.black_level
        if v < 0:
            v = 0
        v = (v * self.gain_q16 + (1 << 15)) >> 16
        if v > self.output_max:
            v = self.output_max
        return v

    def transfer_table(self) -> np.ndarray:
        """The transfer of every input code 0 .. 2**input_bits - 1, as a lookup table."""
        codes = np.arange(1 << self.input_bits, dtype=np.int64)
        v = np.maximum(codes - self.black_level, 0)
        v = (v * self.gain_q16 + (1 << 15)) >> 16
        return np.minimum(v, self.output_max).astype(self.output_dtype)

    def describe(self) -> str:
        """One line for humans, e.g. ``3 ch, 12-bit in, 8-bit out, black 64, gain 0.0625``, or
        ``Bayer RGGB cells (R, Gr, Gb, B), 12-bit in (MSB of 16-bit words), 12-bit out, identity transfer``."""
        depth = f"{self.input_bits}-bit in" + (" (MSB of 16-bit words)" if self.is_msb else "")
        head = f"Bayer {self.cfa} cells (R, Gr, Gb, B)" if self.is_bayer else f"{self.channels} ch"
        text = f"{head}, {depth}, {self.output_bits}-bit out"
        text += ", identity transfer" if self.is_identity else \
            f", black {self.black_level}, gain {self.gain:g} (q16 {self.gain_q16})"
        return text + (f", sealed ({self.seal})" if self.is_sealed else "")

    def to_toml(self) -> str:
        """The spec as a TOML document that :func:`load_spec` reads back (strings quoted)."""
        lines = ["# keycam readout spec (docs/readout-spec.md)"]
        for name, value in self.model_dump().items():
            lines.append(f'{name} = "{value}"' if isinstance(value, str) else f"{name} = {value}")
        return "\n".join(lines) + "\n"

    # -- Bayer cells --------------------------------------------------------

    def cells(self, mosaic: np.ndarray, what: str = "mosaic") -> np.ndarray:
        """Bayer mode: a (2H, 2W[, 1]) mosaic (validated) as (H, W, 4) codes in canonical order (R, Gr, Gb, B),
        alignment removed (``word >> (16 - input_bits)`` for MSB input). dtype: the input's."""
        return to_cells(self.check_frame(mosaic, what), self.cfa, self.alignment_shift)

    def mosaic(self, cells: np.ndarray) -> np.ndarray:
        """Bayer mode: the inverse of :meth:`cells`: (H, W, 4) canonical codes as the (2H, 2W, 1) mosaic of
        this phase, in the input's words (codes shifted back to the top bits for MSB input)."""
        if not self.is_bayer:
            raise SpecError("mosaic: this spec is in pixel mode (cfa = 'none'); use a Bayer spec")
        if not isinstance(cells, np.ndarray) or cells.ndim != 3 or cells.shape[2] != 4 or min(cells.shape[:2]) < 1:
            shape = getattr(cells, "shape", type(cells).__name__)
            raise FrameError(f"cells have shape {shape}, expected (H, W, 4) codes (R, Gr, Gb, B)")
        return to_mosaic(np.asarray(cells, self.input_dtype), self.cfa, self.alignment_shift)

    # -- frame checks -------------------------------------------------------

    def check_frame(self, frame: np.ndarray, what: str = "frame") -> np.ndarray:
        """Validate a frame against this spec and return it as a C-contiguous (H, W, C) array.

        A 2-D (H, W) array is accepted for a 1-channel spec. In the Bayer mode the frame is the mosaic,
        (2H, 2W) or (2H, 2W, 1) with even height and width, returned as (2H, 2W, 1). Raises
        :class:`FrameError` naming the expected and the actual shape, dtype or code range. Codes above
        ``2**input_bits - 1`` are an error, never clipped (MSB-aligned words hold any value: the bits
        below the code are dropped).
        """
        if not isinstance(frame, np.ndarray):
            expected = "(2H, 2W) mosaic" if self.is_bayer else "(H, W, C)"
            raise FrameError(f"{what} is a {type(frame).__name__}, expected a numpy array of shape {expected}")
        if self.is_bayer:
            frame = self._check_mosaic(frame, what)
        else:
            frame = self._check_pixels(frame, what)
        if frame.dtype != self.input_dtype:
            words = " in MSB-aligned 16-bit words" if self.is_msb else ""
            raise FrameError(
                f"{what} has dtype {frame.dtype}, the spec's {self.input_bits}-bit input{words} expects "
                f"{self.input_dtype}"
            )
        if self.input_bits not in (8, 16) and not self.is_msb:
            top = int(frame.max())
            if top > self.input_max:
                raise FrameError(
                    f"{what} holds code {top}, above the {self.input_bits}-bit input range 0..{self.input_max}; "
                    f"codes are never clipped: fix the source or use a wider input_bits"
                )
        return np.ascontiguousarray(frame)

    def _check_pixels(self, frame: np.ndarray, what: str) -> np.ndarray:
        if frame.ndim == 2 and self.channels == 1:
            frame = frame[:, :, np.newaxis]  # (H, W) -> (H, W, 1)
        if frame.ndim != 3:
            raise FrameError(
                f"{what} has shape {frame.shape}, expected (H, W, {self.channels}) for a "
                f"{self.channels}-channel spec"
            )
        height, width, channels = frame.shape
        if height < 1 or width < 1:
            raise FrameError(f"{what} has shape {frame.shape}; height and width must be at least 1")
        if channels != self.channels:
            raise FrameError(
                f"{what} has {channels} channels (shape {frame.shape}), the spec expects {self.channels}; "
                f"convert the frame or use a {channels}-channel spec"
            )
        return frame

    def _check_mosaic(self, frame: np.ndarray, what: str) -> np.ndarray:
        if frame.ndim == 2:
            frame = frame[:, :, np.newaxis]  # (2H, 2W) -> (2H, 2W, 1)
        if frame.ndim != 3 or frame.shape[2] != 1:
            raise FrameError(
                f"{what} has shape {frame.shape}, expected a (2H, 2W) or (2H, 2W, 1) {self.cfa} mosaic for a Bayer "
                f"spec; give the raw photosites (edge.sensor.simulate_cfa makes one from a picture)"
            )
        height, width = frame.shape[:2]
        if height < 2 or width < 2 or height % 2 or width % 2:
            raise FrameError(
                f"{what} has shape {frame.shape}; a Bayer mosaic has an even height and width of at least 2 "
                f"(whole 2x2 cells): crop it to {height - height % 2}x{width - width % 2}"
            )
        return frame


DEFAULT_SPEC = ReadoutSpec()
"""8-bit RGB in, 8-bit out, identity transfer."""

PRESETS: dict[str, ReadoutSpec] = {
    "rgb8": DEFAULT_SPEC,
    "gray8": ReadoutSpec(channels=1),
    "rgb10": ReadoutSpec(input_bits=10, output_bits=10),
    "rgb12": ReadoutSpec(input_bits=12, output_bits=12),
    "raw10": ReadoutSpec(channels=1, input_bits=10, output_bits=10),
    "raw12": ReadoutSpec(channels=1, input_bits=12, output_bits=12),
    "rgb16to12": ReadoutSpec(input_bits=16, output_bits=12, gain_q16=GAIN_ONE >> 4),
    # version 2: Bayer cells (R, Gr, Gb, B) of a raw mosaic
    "bayer10": ReadoutSpec(spec_version=2, cfa="RGGB", channels=4, input_bits=10, output_bits=10),
    "bayer12": ReadoutSpec(spec_version=2, cfa="RGGB", channels=4, input_bits=12, output_bits=12),
    "bayer12to8": ReadoutSpec(spec_version=2, cfa="RGGB", channels=4, input_bits=12, output_bits=8,
                              gain_q16=GAIN_ONE >> 4),
    "bayer10msb": ReadoutSpec(spec_version=2, cfa="RGGB", channels=4, input_bits=10, output_bits=10,
                              input_alignment="msb"),
    "bayer12msb": ReadoutSpec(spec_version=2, cfa="RGGB", channels=4, input_bits=12, output_bits=12,
                              input_alignment="msb"),
    # the Raspberry Pi camera modules report BGGR (Camera Module 2 and 3: 10-bit; HQ: 12-bit); a Pi 4
    # delivers unpacked raw LSB-aligned, a Pi 5 MSB-aligned
    "bggr10": ReadoutSpec(spec_version=2, cfa="BGGR", channels=4, input_bits=10, output_bits=10),
    "bggr12": ReadoutSpec(spec_version=2, cfa="BGGR", channels=4, input_bits=12, output_bits=12),
    "bggr10msb": ReadoutSpec(spec_version=2, cfa="BGGR", channels=4, input_bits=10, output_bits=10,
                             input_alignment="msb"),
    "bggr12msb": ReadoutSpec(spec_version=2, cfa="BGGR", channels=4, input_bits=12, output_bits=12,
                             input_alignment="msb"),
    # version 4: the sealed readout (AES-256-GCM; the -chacha variants for CPUs without AES instructions, a Pi 4)
    "rgb8-sealed": ReadoutSpec(spec_version=4, seal="aes-256-gcm"),
    "gray8-sealed": ReadoutSpec(spec_version=4, channels=1, seal="aes-256-gcm"),
    "bggr10-sealed": ReadoutSpec(spec_version=4, cfa="BGGR", channels=4, input_bits=10, output_bits=10,
                                 seal="aes-256-gcm"),
    "rgb8-sealed-chacha": ReadoutSpec(spec_version=4, seal="chacha20-poly1305"),
    "gray8-sealed-chacha": ReadoutSpec(spec_version=4, channels=1, seal="chacha20-poly1305"),
    "bggr10-sealed-chacha": ReadoutSpec(spec_version=4, cfa="BGGR", channels=4, input_bits=10, output_bits=10,
                                        seal="chacha20-poly1305"),
}
"""Built-in specs that ``--spec`` accepts by name."""
