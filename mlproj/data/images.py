"""Images as built-in data: scikit-learn's digits as 1x8x8 images, and a folder with one sub-folder per class.

Both are `DataSource`s (mlproj/data/base.py), like the tables: `prepare()` loads the images as uint8
(N, C, H, W), splits them reproducibly and stratified (the tables' own split), and fits the normalisation on
the training split (`pixels.ImagePreprocessing`, plain JSON in the packaged model); `loaders()` gives the
built-in task on-device batches (`ImageBatches`: uint8 on the device, converted, augmented and normalised
per slice). Each split's `raw` column holds the encoded images (PNG/JPEG bytes), what the packaged model
takes: the test plots and the model's input example go through the served path.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from mlproj.config.schema import TaskKind
from mlproj.data.base import DataSource, check_seed, check_split_fractions
from mlproj.data.batches import TensorBatches
from mlproj.data.pixels import ImagePreprocessing, decode, encode_png, to_array
from mlproj.data.preprocess import InputError
from mlproj.data.table import Table
from mlproj.errors import ConfigError

if TYPE_CHECKING:
    import torch

    from mlproj.data.prepare import PreparedData

log = logging.getLogger(__name__)

EXTENSIONS = (".png", ".jpg", ".jpeg")
Augment = Literal["hflip", "vflip", "crop", "rotate", "color"]


@dataclass
class Images:
    """What a source loads: pixels, labels, the encoded files, and what names the data in MLflow."""

    pixels: np.ndarray  # uint8 (N, C, H, W)
    labels: pd.Series  # one class per image
    encoded: list[bytes]  # each image as a file: the packaged model's input
    names: list[str]  # each image's name (the logged dataset lists them)
    name: str
    source: str


@dataclass(kw_only=True, eq=False)
class ImageSource(DataSource):
    """Keys every image source shares: size, augmentation, the split and batching."""

    image_size: int | None = None  # side of the square the network sees (None: the images' own size)
    augment: list[Augment] = field(default_factory=list)  # training only, per image, on the device
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    split_seed: int = 42
    batch_size: int = 64
    shuffle: bool = True

    def __post_init__(self) -> None:
        check_split_fractions(self.val_fraction, self.test_fraction)
        check_seed("data.split_seed", self.split_seed)
        if self.batch_size < 1:
            raise ConfigError(f"data.batch_size={self.batch_size} must be >= 1")
        if self.image_size is not None and not 4 <= self.image_size <= 1024:
            raise ConfigError(f"data.image_size={self.image_size} must be between 4 and 1024 (or null)")

    def load(self) -> Images:
        raise NotImplementedError

    def prepare(self) -> PreparedData:
        from mlproj.data.prepare import SPLITS, PreparedData, Split, _split

        images = self.load()
        target = images.labels.reset_index(drop=True)
        labels = sorted(target.unique().tolist(), key=lambda v: (str(type(v)), v))
        if len(labels) < 2:
            raise ConfigError(f"data: {images.name} has a single class ({labels}); classification needs two")
        if len(target) < 10:
            raise ConfigError(f"data: {images.name} has {len(target)} images; at least 10 are needed to split")
        holdout = self.val_fraction + self.test_fraction
        index = np.arange(len(target))
        train, rest = _split(index, holdout, target, "classification", self.split_seed)
        val, test = _split(rest, self.test_fraction / holdout, target.iloc[rest], "classification", self.split_seed)
        pre = ImagePreprocessing.fit(images.pixels[train], labels)
        codes = target.map({label: i for i, label in enumerate(labels)}).to_numpy(dtype=np.int64)
        splits = {}
        for name, rows in zip(SPLITS, (train, val, test), strict=True):
            raw = pd.DataFrame({pre.column: [images.encoded[i] for i in rows]})
            splits[name] = Split(raw, target.iloc[rows].reset_index(drop=True), images.pixels[rows], codes[rows])
        features = pd.DataFrame({"file": images.names})
        table = Table(features, target.rename("target"), images.name, images.source, TaskKind.classification)
        return PreparedData(table, "classification", pre, splits)  # type: ignore[arg-type]

    def loaders(self, prepared: PreparedData, seed: int, steps_per_chunk: int) -> dict[str, Any]:
        import torch

        pre: ImagePreprocessing = prepared.pre  # type: ignore[assignment]
        return {
            name: ImageBatches(
                torch.from_numpy(np.ascontiguousarray(s.x)),
                torch.from_numpy(s.y),
                self.batch_size,
                shuffle=self.shuffle and name == "train",
                seed=seed,
                chunk=steps_per_chunk if name == "train" else 1,
                pre=pre,
                augment=list(self.augment) if name == "train" else [],
            )
            for name, s in prepared.splits.items()
        }

    def _sized(self, image: Any) -> np.ndarray:
        size = self.image_size or None
        return to_array(image, (size, size) if size else (image.height, image.width))


class ImageBatches(TensorBatches):
    """TensorBatches over uint8 images: each slice (a whole chunk at once) becomes float, is augmented (training)
    and normalised on the device, so a step reads a quarter of the memory float32 would take."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, *, pre: ImagePreprocessing,
                 augment: list[str], **kwargs: Any) -> None:  # fmt: skip
        super().__init__(x, y, batch_size, **kwargs)
        self.pre, self.ops = pre, augment
        self._stats: tuple[torch.Tensor, torch.Tensor] | None = None

    def _slices(self, rows: int) -> Any:
        from mlproj.data.augment import augment

        for x, y in super()._slices(rows):
            pixels = x.float() / 255.0
            if self.ops:
                pixels = augment(pixels, self.ops)
            mean, std = self._mean_std(pixels.device)
            yield (pixels - mean) / std, y

    def _mean_std(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        if self._stats is None or self._stats[0].device != device:
            shape = (1, -1, 1, 1)
            self._stats = (
                torch.tensor(self.pre.mean, device=device).view(shape),
                torch.tensor(self.pre.std, device=device).view(shape),
            )
        return self._stats


@dataclass(kw_only=True, eq=False)
class DigitsImages(ImageSource):
    """scikit-learn's 8x8 digits (shipped with the package) as 1x8x8 grayscale images, 10 classes."""

    def load(self) -> Images:
        from PIL import Image
        from sklearn.datasets import load_digits

        bunch = load_digits()
        # 0..16 intensities to 0..255 pixels (distinct values stay distinct), as a PNG of the digit holds them
        gray = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)
        pixels = np.stack([self._sized(Image.fromarray(g, "L")) for g in gray])
        encoded = [encode_png(p) for p in pixels]
        names = [f"digit_{i:04d}.png" for i in range(len(gray))]
        return Images(pixels, pd.Series(bunch.target), encoded, names, "digits_images", "sklearn.datasets.load_digits")


@dataclass(kw_only=True, eq=False)
class ImageFolder(ImageSource):
    """Your own images: `path` holds one sub-folder per class, each with PNG/JPEG files (read with Pillow)."""

    path: str
    image_size: int | None = 32
    color: Literal["auto", "gray", "rgb"] = "auto"  # auto: rgb unless every image is grayscale

    def load(self) -> Images:
        root = Path(self.path).expanduser()
        if not root.is_dir():
            raise ConfigError(f"data.path={self.path!r}: no such folder (one sub-folder per class expected)")
        files = _class_files(root)
        if len(files) < 2:
            found = ", ".join(sorted(files)) or "none"
            raise ConfigError(
                f"data.path={self.path!r} needs a sub-folder of images per class (2 or more); found: {found}"
            )
        entries = [(label, file) for label, paths in files.items() for file in paths]
        blobs = [file.read_bytes() for _, file in entries]
        modes = [_header_mode(blob, file) for blob, (_, file) in zip(blobs, entries, strict=True)]
        gray = all(m in ("1", "L", "LA", "I", "I;16", "F") for m in modes)
        mode = "L" if self.color == "gray" or (self.color == "auto" and gray) else "RGB"
        pixels = [self._sized(_decoded(blob, mode, file)) for blob, (_, file) in zip(blobs, entries, strict=True)]
        if len({p.shape for p in pixels}) > 1:
            raise ConfigError("data.image_size=null needs images of one size; these differ: set data.image_size")
        labels = pd.Series([label for label, _ in entries])
        names = [str(file.relative_to(root)) for _, file in entries]
        return Images(np.stack(pixels), labels, blobs, names, root.name, str(root.resolve()))

    def _sized(self, image: Any) -> np.ndarray:
        if self.image_size is None:  # the images' own size: they must all have one
            return to_array(image, (image.height, image.width))
        return super()._sized(image)


def _decoded(blob: bytes, mode: str, file: Path) -> Any:
    try:
        return decode(blob, mode)
    except InputError as exc:
        raise ConfigError(f"data.path: {file}: {exc}") from None


def _header_mode(blob: bytes, file: Path) -> str:
    """The colour mode from the file's header (the pixels are decoded later, once, in the training mode)."""
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(blob)) as image:
            return image.mode
    except OSError as exc:
        raise ConfigError(f"data.path: {file} is not a readable image: {exc}") from None


def _class_files(root: Path) -> dict[str, list[Path]]:
    """Class name -> its image files (sorted: the order, hence the split, does not depend on the filesystem)."""
    found: dict[str, list[Path]] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in EXTENSIONS)
        if files:
            found[folder.name] = files
        else:
            log.warning("data.path: %s holds no PNG/JPEG file; not a class", folder)
    return found
