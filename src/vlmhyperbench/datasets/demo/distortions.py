"""Image distortions, one per dataset subset, each driven by a seeded numpy ``Generator``.

Strengths scale with the image width so a larger page is distorted alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image, ImageFilter

from vlmhyperbench.datasets.demo.layout import DESIGN_WIDTH

Distortion = Callable[[Image.Image, np.random.Generator], Image.Image]
WHITE = (255, 255, 255)


def _scale(image: Image.Image) -> float:
    return image.width / DESIGN_WIDTH


def clean(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    return image.copy()


def blur(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Gaussian blur, like a slightly out-of-focus photo."""
    radius = float(rng.uniform(1.2, 1.8)) * _scale(image)
    return image.filter(ImageFilter.GaussianBlur(radius))


def noise(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Gaussian sensor noise (same on every channel) plus 0.5 % salt-and-pepper pixels."""
    pixels = np.asarray(image, dtype=np.float32)
    height, width = pixels.shape[:2]
    pixels = pixels + rng.normal(0.0, 18.0, size=(height, width, 1))
    speckle = rng.random((height, width))
    pixels[speckle < 0.0025] = 0.0
    pixels[speckle > 0.9975] = 255.0
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), "RGB")


def rotated(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Rotated 2–5 degrees either way, as if scanned askew; the corners are filled white."""
    angle = float(rng.uniform(2.0, 5.0)) * float(rng.choice((-1.0, 1.0)))
    return image.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=WHITE)


def low_contrast(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Contrast squeezed to about a third around a light grey, like a faded print."""
    factor = float(rng.uniform(0.25, 0.35))
    level = 175.0
    pixels = level + (np.asarray(image, dtype=np.float32) - level) * factor
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), "RGB")


DISTORTIONS: dict[str, Distortion] = {
    "clean": clean,
    "blur": blur,
    "noise": noise,
    "rotated": rotated,
    "low_contrast": low_contrast,
}
SUBSETS: tuple[str, ...] = tuple(DISTORTIONS)


def check_subsets(subsets: Sequence[str]) -> None:
    """Raise ``ValueError`` naming the unknown subsets and listing the known ones."""
    unknown = [name for name in subsets if name not in DISTORTIONS]
    if unknown:
        raise ValueError(
            f"unknown subset(s) {', '.join(map(repr, unknown))}; known: {', '.join(SUBSETS)}"
        )


def apply_distortion(image: Image.Image, subset: str, rng: np.random.Generator) -> Image.Image:
    check_subsets([subset])
    return DISTORTIONS[subset](image.convert("RGB"), rng)
