"""Images, edits and the plaintext band rule of the accuracy benchmark (``bench_accuracy``).

Theory of operation
-------------------
The fuzzy PDQ match releases a report when at least ``t = 2`` of the ``L`` bands of the
upload's hash carry exactly the reference's 32 bits in that band (docs/design.md "Bands"):
a band's tag is found only when the OPRF inputs are equal, and two found bands of one line
give the secret. So, given the two hashes, the decision is a deterministic function of them,
and this module evaluates it in plaintext (:func:`agreeing_bands`, :func:`accepts`) for the
large counts; ``bench_accuracy`` checks on a sample that the real private protocol decides
exactly the same.

Images are natural-looking pictures made by :func:`blindmatch.samples.photo_like` and the
photographs scikit-image ships in its wheel (``skimage.data``: read from its data folder,
nothing is downloaded), plus Grace Hopper's portrait from matplotlib's sample data. Edits
(:data:`EDITS`) are the ones a platform sees: re-encoding, resizing, blur, sharpening,
brightness and contrast, grayscale, noise, overlays, crops, and the dihedral transforms;
``severe`` ones push distances past the threshold so that the curve is measured on both
sides of it.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

from blindmatch.fingerprint.pdq import pdq_dihedral_from_rgb, pdq_from_rgb
from blindmatch.psi.bands import Banding
from blindmatch.samples import photo_like

__all__ = [
    "EDITS",
    "Edit",
    "Picture",
    "accepts",
    "agreeing_bands",
    "analytic_accept",
    "analytic_band_agreement",
    "band_matrix",
    "distances",
    "flip_bits",
    "generated_pictures",
    "hash_of",
    "photographs",
    "query_hashes",
]

U8 = npt.NDArray[np.uint8]
Edit = Callable[[Image.Image], Image.Image]

# Photographs in scikit-image's wheel (file names in skimage.data's folder). Binary or
# synthetic ones (horse, logo, chessboards, phantom, text-only pages) are left out.
_SKIMAGE_PHOTOS = (
    "astronaut.png",
    "brick.png",
    "camera.png",
    "cell.png",
    "chelsea.png",
    "coffee.png",
    "coins.png",
    "grass.png",
    "gravel.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "microaneurysms.png",
    "moon.png",
    "motorcycle_left.png",
    "retina.jpg",
    "rocket.jpg",
)


@dataclass(frozen=True, slots=True)
class Picture:
    """An original image: where it came from and its RGB pixels."""

    name: str
    source: str  # "generated" or "photograph"
    rgb: U8


def generated_pictures(count: int, seed: int, size: tuple[int, int] = (512, 384)) -> list[Picture]:
    """``count`` photo-like pictures, alternately landscape and portrait."""
    rng = np.random.default_rng([seed, 7])
    out = []
    for i in range(count):
        width, height = size if i % 2 == 0 else size[::-1]
        out.append(Picture(f"generated-{i:03d}", "generated", photo_like(rng, width, height)))
    return out


def photographs(limit: int | None = None) -> list[Picture]:
    """The photographs shipped by scikit-image and matplotlib, as RGB (grey ones expanded).

    Returns an empty list when neither package is installed (the ``bench`` extra).
    """
    paths: list[Path] = []
    try:
        import skimage.data

        folder = Path(skimage.data.data_dir)
        paths += [folder / name for name in _SKIMAGE_PHOTOS if (folder / name).is_file()]
    except ImportError:
        pass
    try:
        import matplotlib as mpl

        hopper = Path(mpl.get_data_path()) / "sample_data" / "grace_hopper.jpg"
        if hopper.is_file():
            paths.append(hopper)
    except ImportError:
        pass
    out = []
    for path in paths[:limit]:
        with Image.open(path) as image:
            rgb = np.asarray(image.convert("RGB"))
        out.append(Picture(path.stem, "photograph", rgb))
    return out


def _jpeg(quality: int) -> Callable[[Image.Image], Image.Image]:
    def edit(image: Image.Image) -> Image.Image:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=quality)
        buffer.seek(0)
        with Image.open(buffer) as decoded:
            return decoded.convert("RGB")

    return edit


def _resize(factor: float) -> Callable[[Image.Image], Image.Image]:
    def edit(image: Image.Image) -> Image.Image:
        size = (max(8, round(image.width * factor)), max(8, round(image.height * factor)))
        return image.resize(size, Image.Resampling.BILINEAR)

    return edit


def _blur(fraction: float) -> Callable[[Image.Image], Image.Image]:
    """Gaussian blur of radius ``fraction`` of the longer side."""

    def edit(image: Image.Image) -> Image.Image:
        return image.filter(ImageFilter.GaussianBlur(fraction * max(image.size)))

    return edit


def _enhance(kind: type[ImageEnhance.Brightness | ImageEnhance.Contrast], factor: float) -> Edit:
    def edit(image: Image.Image) -> Image.Image:
        return kind(image).enhance(factor)

    return edit


def _noise(sigma: float) -> Callable[[Image.Image], Image.Image]:
    def edit(image: Image.Image) -> Image.Image:
        rng = np.random.default_rng(int(sigma * 1000) + image.width)
        noisy = np.asarray(image, dtype=np.float32) + rng.normal(
            0, sigma, (image.height, image.width, 3)
        )
        return Image.fromarray(np.clip(noisy + 0.5, 0, 255).astype(np.uint8))

    return edit


def _crop(fraction: float) -> Callable[[Image.Image], Image.Image]:
    """Cut ``fraction`` of each side away (a centred crop keeping ``1 - 2 fraction``)."""

    def edit(image: Image.Image) -> Image.Image:
        dx, dy = round(image.width * fraction), round(image.height * fraction)
        return image.crop((dx, dy, image.width - dx, image.height - dy))

    return edit


def _overlay(fraction: float) -> Callable[[Image.Image], Image.Image]:
    """A caption bar and a logo box covering about ``fraction`` of the area."""

    def edit(image: Image.Image) -> Image.Image:
        out = image.copy()
        draw = ImageDraw.Draw(out)
        bar = round(image.height * fraction * 0.7)
        draw.rectangle((0, image.height - bar, image.width, image.height), fill=(20, 20, 20))
        draw.text((8, image.height - bar + 2), "shared via example.app", fill=(240, 240, 240))
        side = round(min(image.size) * fraction**0.5 * 0.5)
        draw.rectangle((image.width - side - 6, 6, image.width - 6, side + 6), fill=(230, 40, 40))
        return out

    return edit


def _rotate(degrees: float) -> Callable[[Image.Image], Image.Image]:
    def edit(image: Image.Image) -> Image.Image:
        return image.rotate(degrees, Image.Resampling.BILINEAR, expand=False)

    return edit


def _then(*edits: Callable[[Image.Image], Image.Image]) -> Callable[[Image.Image], Image.Image]:
    def edit(image: Image.Image) -> Image.Image:
        for step in edits:
            image = step(image)
        return image

    return edit


def _grayscale(image: Image.Image) -> Image.Image:
    return ImageOps.grayscale(image).convert("RGB")


def _sharpen(image: Image.Image) -> Image.Image:
    return image.filter(ImageFilter.UnsharpMask(radius=2, percent=150, threshold=2))


EDITS: dict[str, tuple[str, Edit]] = {
    # name: (group, edit). Groups: "common" (what platforms see every day), "severe" (heavier
    # than the matcher is meant for: they fill the curve past d = 31), "dihedral".
    "jpeg-95": ("common", _jpeg(95)),
    "jpeg-70": ("common", _jpeg(70)),
    "jpeg-40": ("common", _jpeg(40)),
    "jpeg-20": ("common", _jpeg(20)),
    "resize-0.25": ("common", _resize(0.25)),
    "resize-0.5": ("common", _resize(0.5)),
    "resize-0.75": ("common", _resize(0.75)),
    "resize-1.5": ("common", _resize(1.5)),
    "resize-2": ("common", _resize(2.0)),
    "blur-0.2%": ("common", _blur(0.002)),
    "blur-0.5%": ("common", _blur(0.005)),
    "sharpen": ("common", _sharpen),
    "brightness-0.7": ("common", _enhance(ImageEnhance.Brightness, 0.7)),
    "brightness-1.3": ("common", _enhance(ImageEnhance.Brightness, 1.3)),
    "contrast-0.7": ("common", _enhance(ImageEnhance.Contrast, 0.7)),
    "contrast-1.3": ("common", _enhance(ImageEnhance.Contrast, 1.3)),
    "grayscale": ("common", _grayscale),
    "noise-4": ("common", _noise(4.0)),
    "noise-12": ("common", _noise(12.0)),
    "overlay-3%": ("common", _overlay(0.03)),
    "overlay-8%": ("common", _overlay(0.08)),
    "crop-2%": ("common", _crop(0.02)),
    "crop-5%": ("common", _crop(0.05)),
    "resize-0.5+jpeg-50": ("common", _then(_resize(0.5), _jpeg(50))),
    "brightness-1.2+jpeg-60": ("common", _then(_enhance(ImageEnhance.Brightness, 1.2), _jpeg(60))),
    "crop-10%": ("severe", _crop(0.10)),
    "crop-15%": ("severe", _crop(0.15)),
    "rotate-3": ("severe", _rotate(3.0)),
    "rotate-6": ("severe", _rotate(6.0)),
    "blur-2%": ("severe", _blur(0.02)),
    "overlay-20%": ("severe", _overlay(0.20)),
    "jpeg-5+noise-20": ("severe", _then(_jpeg(5), _noise(20.0))),
    "mirror": ("dihedral", ImageOps.mirror),
    "flip": ("dihedral", ImageOps.flip),
    "rotate-90": ("dihedral", lambda image: image.transpose(Image.Transpose.ROTATE_90)),
    "rotate-180": ("dihedral", lambda image: image.transpose(Image.Transpose.ROTATE_180)),
    "mirror+jpeg-70": ("dihedral", _then(ImageOps.mirror, _jpeg(70))),
}


def hash_of(rgb: U8) -> tuple[bytes, int]:
    """The PDQ hash bytes and quality of an RGB array."""
    fingerprint = pdq_from_rgb(rgb)
    return bytes(fingerprint.hash), fingerprint.quality


def query_hashes(rgb: U8, *, dihedral: bool) -> list[bytes]:
    """The hashes a platform queries for one upload: one, or its 8 dihedral variants.

    With ``dihedral`` these are the 8 hashes ``Upload.dihedral`` takes, in
    ``DIHEDRAL_NAMES`` order (the image as it is first): an upload matches if any of its
    variants releases the report. The plaintext rule over them is checked against the
    session's own dihedral option in ``bench_accuracy._protocol_check_dihedral``.
    """
    if not dihedral:
        return [hash_of(rgb)[0]]
    return [bytes(f.hash) for f in pdq_dihedral_from_rgb(rgb)]


def _bits(hashes: Sequence[bytes]) -> U8:
    array = np.frombuffer(b"".join(hashes), dtype=np.uint8).reshape(len(hashes), -1)
    return np.unpackbits(array, axis=1)


def distances(a: Sequence[bytes], b: Sequence[bytes]) -> npt.NDArray[np.int64]:
    """Hamming distance of ``a[i]`` to ``b[i]`` for every ``i``."""
    out: npt.NDArray[np.int64] = (_bits(a) != _bits(b)).sum(axis=1).astype(np.int64)
    return out


def band_matrix(banding: Banding, hashes: Sequence[bytes]) -> npt.NDArray[np.uint32]:
    """The ``(n, L)`` band values ``V`` of ``hashes`` (as in the band inputs)."""
    packed = banding.pack_band_values(np.frombuffer(b"".join(hashes), dtype=np.uint8))
    return np.ascontiguousarray(packed).view(">u4")[:, :, 0].astype(np.uint32)


def agreeing_bands(
    upload: npt.NDArray[np.uint32], reference: npt.NDArray[np.uint32]
) -> npt.NDArray[np.int64]:
    """Per row, the bands on which the two hashes carry the same bits (same shapes)."""
    out: npt.NDArray[np.int64] = (upload == reference).sum(axis=-1).astype(np.int64)
    return out


def accepts(banding: Banding, agreeing: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    """The protocol's decision from the agreeing band counts: ``>= t`` releases the report."""
    return agreeing >= banding.threshold


def flip_bits(hash_bytes: bytes, count: int, rng: np.random.Generator) -> bytes:
    """``hash_bytes`` with ``count`` distinct random bits flipped (distance exactly ``count``)."""
    bits = np.unpackbits(np.frombuffer(hash_bytes, dtype=np.uint8))
    positions = rng.choice(bits.size, size=count, replace=False)
    bits[positions] ^= 1
    return np.packbits(bits).tobytes()


def analytic_band_agreement(
    d: npt.ArrayLike, k: int = 32, bits: int = 256
) -> npt.NDArray[np.float64]:
    """P(one band of ``k`` random positions avoids all ``d`` differing bits) =
    C(bits - d, k) / C(bits, k)."""
    dd = np.asarray(d, dtype=np.float64)
    p = np.ones_like(dd)
    for i in range(k):
        p *= np.clip(bits - dd - i, 0, None) / (bits - i)
    return p


def analytic_accept(d: npt.ArrayLike, count: int, threshold: int = 2) -> npt.NDArray[np.float64]:
    """P(at least ``threshold`` of ``count`` bands agree) at distance ``d``, bands taken as
    independent draws (the figures of docs/design.md).

    The binomial tail is summed term by term in logs, so rates down to 1e-300 keep their
    precision (``1 - P(0) - P(1)`` would cancel to zero below about 1e-16).
    """
    p = analytic_band_agreement(d)
    m = np.arange(threshold, count + 1, dtype=np.float64)
    log_choose = np.array(
        [math.lgamma(count + 1) - math.lgamma(x + 1) - math.lgamma(count - x + 1) for x in m]
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = (
            log_choose[None, :]
            + m[None, :] * np.log(p.reshape(-1, 1))
            + (count - m)[None, :] * np.log1p(-p.reshape(-1, 1))
        )
        tail = np.exp(logs)
    tail = np.nan_to_num(tail, nan=0.0).sum(axis=1)
    tail = np.where(p.reshape(-1) >= 1.0, 1.0, tail)
    return np.clip(tail, 0.0, 1.0).reshape(p.shape)
