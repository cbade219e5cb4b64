"""Image-classification data for the NAS-Bench-201 and DARTS spaces.

Specs:
  digits        scikit-learn's handwritten digits (1,797 8x8 grey images, shipped
                inside scikit-learn, so nothing is downloaded), upsampled to 32x32
                bilinearly and repeated to 3 channels.
  cifar10:PATH  CIFAR-10 from the standard "python version" batches the user
                already has: PATH holds data_batch_1..5 and test_batch (or holds
                the cifar-10-batches-py folder). Nothing is downloaded.

Splits: train / reg / val are carved from the training images, stratified by
class and seeded, so no split depends on luck and every class is represented:
`reg` is the held-out part the landmark regulariser scores on, `val` ranks
architectures. CIFAR-10's test_batch is loaded as `.test` and never used by the
search. Images are normalised per channel with the train split's own mean and
std (recorded in the manifest). Only `train` is augmented: random crop from a
zero-padded image (CIFAR-10 also random horizontal flips; digits are not
flipped, since a mirrored digit is a different symbol).

The CIFAR-10 batches are Python pickles. They are read with an unpickler that
only admits numpy arrays (no other class can be constructed, so no code runs),
and only from files the user points to.
"""
from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from .settings import REG_FRACTION, VAL_FRACTION
from .spec import parse_spec
from .transforms import loader_base_seed

__all__ = ["ClassificationSplits", "ImageClassificationDataset",
           "build_classification_splits", "load_cifar10", "load_digits"]

IMAGE_SIZE = 32
CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_FILE = "test_batch"
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")


# ---- sources: (images [N, C, 32, 32] uint8 or float in [0, 1], labels int64 [N]) ------
def load_digits() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits as sk_digits
    d = sk_digits()
    grey = torch.from_numpy(d.images.astype(np.float32) / 16.0)[:, None]  # 0..16 -> [0, 1]
    images = F.interpolate(grey, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear",
                           align_corners=False).clamp_(0.0, 1.0)
    return images, torch.from_numpy(d.target.astype(np.int64))


class _ArrayUnpickler(pickle.Unpickler):
    """Admits the globals a numpy array needs and nothing else."""

    # Arrays pickled by numpy 1.x or 2.x (protocol <= 4: _reconstruct; 5: _frombuffer),
    # and bytes pickled by Python 3 at protocol 2 (_codecs.encode); none of these runs code.
    ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
               ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer")}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} (only numpy arrays are allowed)")
        return super().find_class(module, name)


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as fh:
            batch = _ArrayUnpickler(fh, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            MemoryError) as err:  # a flipped byte can ask for a huge allocation
        raise ValueError(f"{path} is not a CIFAR-10 python batch ({type(err).__name__}: {err})") from err
    if not isinstance(batch, dict):
        raise ValueError(f"{path} is not a CIFAR-10 python batch (no dict inside)")
    data, labels = batch.get(b"data", batch.get("data")), batch.get(b"labels", batch.get("labels"))
    if data is None or labels is None:
        raise ValueError(f"{path}: CIFAR-10 batch lacks 'data' or 'labels'")
    data, labels = np.asarray(data), np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{path}: 'labels' are {labels.dtype}, expected integers in 0..9")
    labels = labels.astype(np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * IMAGE_SIZE * IMAGE_SIZE:
        raise ValueError(f"{path}: 'data' is {data.dtype} {data.shape}, expected uint8 [N, 3072]")
    if labels.shape != (data.shape[0],) or labels.min(initial=0) < 0 or labels.max(initial=0) > 9:
        raise ValueError(f"{path}: 'labels' must be {data.shape[0]} integers in 0..9")
    return data.reshape(-1, 3, IMAGE_SIZE, IMAGE_SIZE), labels


def load_cifar10(path: str | Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(train images, train labels, test images, test labels), images uint8 [N, 3, 32, 32]."""
    root = Path(path).expanduser()
    if not (root / CIFAR10_TRAIN_FILES[0]).is_file() and (root / "cifar-10-batches-py").is_dir():
        root = root / "cifar-10-batches-py"
    if root.is_file():
        raise FileNotFoundError(f"cifar10:{root} is a file; pass the folder of the python batches "
                                "(extract cifar-10-python.tar.gz: tar xzf, then cifar10:PATH/cifar-10-batches-py)")
    if not root.is_dir():
        raise FileNotFoundError(f"CIFAR-10 folder not found: {root}")
    names = (*CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILE)
    missing = [n for n in names if not (root / n).is_file()]
    if missing:
        raise FileNotFoundError(f"CIFAR-10 folder {root} lacks {', '.join(missing)} (expected the "
                                f"python batches {', '.join(names)}; this tool does not download them)")
    train = [_read_cifar_batch(root / n) for n in CIFAR10_TRAIN_FILES]
    x_test, y_test = _read_cifar_batch(root / CIFAR10_TEST_FILE)
    return (torch.from_numpy(np.concatenate([x for x, _ in train])),
            torch.from_numpy(np.concatenate([y for _, y in train])),
            torch.from_numpy(x_test), torch.from_numpy(y_test))


# ---- the Dataset ---------------------------------------------------------------------
def _as_unit(images: torch.Tensor) -> torch.Tensor:
    return images.float().div_(255.0) if images.dtype == torch.uint8 else images.float()


def channel_stats(images: torch.Tensor, index: np.ndarray, chunk: int = 4096) -> tuple[list[float], list[float]]:
    """Per-channel mean and std over images[index], in chunks (CIFAR-10 in float is 600 MB)."""
    total = sq = None
    count = 0
    for start in range(0, len(index), chunk):
        x = _as_unit(images[torch.from_numpy(index[start:start + chunk])]).double()
        s, s2 = x.sum(dim=(0, 2, 3)), x.square().sum(dim=(0, 2, 3))
        total, sq = (s, s2) if total is None else (total + s, sq + s2)
        count += x.shape[0] * x.shape[2] * x.shape[3]
    mean = total / count
    std = (sq / count - mean.square()).clamp_min(1e-12).sqrt()
    return mean.tolist(), std.tolist()


class ImageClassificationDataset(Dataset):
    """Items {"image": float [3, 32, 32] normalised, "label": int64} of images[index]."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, index: np.ndarray,
                 mean: list[float], std: list[float], *, augment: bool = False,
                 pad: int = 4, flip: bool = False):
        self.images, self.labels = images, labels  # shared by all splits; never copied
        self.index = np.asarray(index, dtype=np.int64)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
        self.augment, self.pad, self.flip = augment, pad, flip

    def __len__(self) -> int:
        return len(self.index)

    def ids(self) -> list[int]:
        return self.index.tolist()

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        k = int(self.index[i])
        x = _as_unit(self.images[k])
        if self.augment:
            # Seeded by the epoch's seed and the sample: a resumed run replays it, and
            # any number of loader workers gives the same crops and flips.
            rng = np.random.default_rng([loader_base_seed(), i])
            x = F.pad(x, (self.pad,) * 4)
            dy, dx = (int(v) for v in rng.integers(0, 2 * self.pad + 1, 2))
            x = x[:, dy:dy + IMAGE_SIZE, dx:dx + IMAGE_SIZE]
            if self.flip and rng.random() < 0.5:
                x = x.flip(-1)
        x = (x - self.mean) / self.std
        if x.shape[0] == 1:  # grey sources feed the 3-channel stem
            x = x.expand(3, -1, -1)
        return {"image": x.contiguous(), "label": self.labels[k]}


# ---- splits ----------------------------------------------------------------------------
def stratified_split(labels: np.ndarray, seed: int, val_fraction: float, reg_fraction: float
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, reg, val) indices: each class split by the same fractions, seeded."""
    for name, frac in (("val_fraction", val_fraction), ("reg_fraction", reg_fraction)):
        if not 0.0 <= frac < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {frac}")
    if val_fraction + reg_fraction >= 1.0:
        raise ValueError(f"val_fraction + reg_fraction = {val_fraction + reg_fraction} leaves no training data")
    rng = np.random.default_rng([seed, 0xC1A55])
    parts: tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]] = ([], [], [])
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_val, n_reg = round(len(idx) * val_fraction), round(len(idx) * reg_fraction)
        parts[2].append(idx[:n_val])
        parts[1].append(idx[n_val:n_val + n_reg])
        parts[0].append(idx[n_val + n_reg:])
    train, reg, val = (np.sort(np.concatenate(p)) for p in parts)
    if len(train) == 0:
        raise ValueError("the split leaves no training images; lower val_fraction / reg_fraction")
    return train, reg, val


@dataclass
class ClassificationSplits:
    train: ImageClassificationDataset
    reg: ImageClassificationDataset
    val: ImageClassificationDataset
    test: ImageClassificationDataset | None
    spec: str
    seed: int
    num_classes: int
    classes: tuple[str, ...]
    skipped: list[str] = field(default_factory=list)  # a batch file is read whole: none

    def manifest(self) -> dict[str, Any]:
        """JSON-able record: the indices of each split into the source's training
        images (for CIFAR-10: data_batch_1..5 concatenated in order), seed, statistics."""
        return {"spec": self.spec, "seed": self.seed, "task": "classification",
                "image_size": [IMAGE_SIZE, IMAGE_SIZE], "num_classes": self.num_classes,
                "classes": list(self.classes),
                "normalisation": {"mean": self.train.mean.flatten().tolist(),
                                  "std": self.train.std.flatten().tolist(), "from": "train split"},
                "train": self.train.ids(), "reg": self.reg.ids(), "val": self.val.ids(),
                "test": f"{CIFAR10_TEST_FILE} ({len(self.test)} images, unused by the search)"
                if self.test is not None else None}


def build_classification_splits(spec: str, seed: int = 0, val_fraction: float = VAL_FRACTION,
                                reg_fraction: float = REG_FRACTION,
                                augment: bool = True) -> ClassificationSplits:
    kind, path = parse_spec(spec, classification=True)
    seed = int(seed)
    x_test = y_test = None
    if kind == "digits":
        images, labels = load_digits()
        pad, flip, classes = 2, False, tuple(str(i) for i in range(10))
    else:
        images, labels, x_test, y_test = load_cifar10(path)
        pad, flip, classes = 4, True, CIFAR10_CLASSES
        present = torch.unique(labels).tolist()
        if len(present) < 2:  # trains to 100% error, or a trivial 0%, and ranks nothing
            held = (f"every training image has label {present[0]} ({classes[present[0]]})"
                    if present else "the batches hold no training image")
            raise ValueError(f"{spec}: {held}; a classifier needs two classes or more")
    train, reg, val = stratified_split(labels.numpy(), seed, val_fraction, reg_fraction)
    mean, std = channel_stats(images, train)

    def split(index: np.ndarray, aug: bool) -> ImageClassificationDataset:
        return ImageClassificationDataset(images, labels, index, mean, std, augment=aug, pad=pad, flip=flip)

    test = (ImageClassificationDataset(x_test, y_test, np.arange(len(y_test)), mean, std)
            if x_test is not None else None)
    return ClassificationSplits(train=split(train, augment), reg=split(reg, False), val=split(val, False),
                                test=test, spec=spec, seed=seed, num_classes=len(classes), classes=classes)
