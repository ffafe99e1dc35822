"""Image folders as the project reads them, and the one rule for which images are used.

``ImageFolderIndex`` scans an ImageFolder layout root/<class>/**/<image> once; ``split_folders`` finds train/ beside
test/ (or val/).

Which images are used is one rule for every loader of the project (``load_image``): a file must be a JPEG, PNG, BMP,
TIFF, WebP or PNM by its content, decode completely with PIL (a truncated file, or a JPEG whose scan is damaged so
that libjpeg stops, is refused; ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` must stay False), and be at least
``MIN_IMAGE_SIDE`` pixels high and wide (resampling needs two pixels a side). Any other file is skipped and counted,
never a crash: the torchvision two-view dataset (``augment.two_view``) and the clean-view dataset (``data.clean_views``)
hand back a skip marker, the DALI loaders (``data.dali``) leave such files out up front (``unusable_files``), so both
pretraining loaders use the same files. A caller names what it skipped (``skipped_among``, ``describe_skipped``) and
records it in its results file (``skipped_record``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from inv_kernels.hashing import digest_lines

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
# What a bad file raises in PIL: OSError (truncated, unidentified), SyntaxError / ValueError (broken headers),
# DecompressionBombError (an absurd size).
DECODE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)
MIN_IMAGE_SIDE = 2  # the fewest pixels an image may have in height and in width to be used
FORMATS = "JPEG, PNG, BMP, TIFF, WebP or PNM"  # what both PIL and DALI's decoder read, told by content


@dataclass(frozen=True)
class ImageFolderIndex:
    """Sorted (path, label) lists of an ImageFolder layout root/<class>/**/<image>, scanned once.

    Args:
        root: the folder holding one subfolder per class (hidden entries are ignored; images found recursively).
        extensions: file endings counted as images, case-insensitive.

    Raises:
        FileNotFoundError: root does not exist. NotADirectoryError: root is a file.
        ValueError: root is empty, has no class subfolders, or some class folders hold no images (named).
    """

    root: Path
    extensions: tuple[str, ...] = IMG_EXTENSIONS
    classes: tuple[str, ...] = field(init=False)
    paths: tuple[str, ...] = field(init=False)
    labels: tuple[int, ...] = field(init=False)

    def __post_init__(self) -> None:
        root = Path(self.root)
        if not root.exists():
            raise FileNotFoundError(f"ImageFolderIndex: folder {str(root)!r} does not exist")
        if not root.is_dir():
            raise NotADirectoryError(f"ImageFolderIndex: {str(root)!r} is not a folder")
        entries = [e for e in os.scandir(root) if not e.name.startswith(".")]
        if not entries:
            raise ValueError(f"ImageFolderIndex: folder {str(root)!r} is empty")
        classes = sorted(e.name for e in entries if e.is_dir())
        if not classes:
            raise ValueError(
                f"ImageFolderIndex: folder {str(root)!r} has no class subfolders "
                f"(expected root/<class>/<image>; found only files such as {entries[0].name!r})"
            )
        exts = tuple(x.lower() for x in self.extensions)
        paths, labels, empty = [], [], []
        for label, name in enumerate(classes):
            found = sorted(
                os.path.join(d, f)
                for d, subdirs, files in os.walk(root / name, followlinks=True)
                for f in files
                if f.lower().endswith(exts)
                and not f.startswith(".")
                and not any(part.startswith(".") for part in Path(d).relative_to(root).parts)
            )
            if not found:
                empty.append(name)
            paths += found
            labels += [label] * len(found)
        if empty:
            raise ValueError(
                f"ImageFolderIndex: class folder(s) with no images ({', '.join(exts)}) in "
                f"{str(root)!r}: {', '.join(empty[:10])}{' ...' if len(empty) > 10 else ''}"
            )
        object.__setattr__(self, "root", root)
        object.__setattr__(self, "classes", tuple(classes))
        object.__setattr__(self, "paths", tuple(paths))
        object.__setattr__(self, "labels", tuple(labels))

    def __len__(self) -> int:
        return len(self.paths)


def decode_rgb(path: str | Path) -> Tensor:
    """Decodes an image file with PIL to a (3, H, W) uint8 tensor (greyscale, palette and alpha -> RGB).

    Raises:
        OSError, SyntaxError, ValueError, PIL.Image.DecompressionBombError: a corrupt or truncated file
            (``DECODE_ERRORS``).
    """
    # PIL only warns between MAX_IMAGE_PIXELS and twice that; the check refuses from MAX_IMAGE_PIXELS on without a
    # warnings filter (filters are process-wide, and the folder check decodes on several threads).
    with Image.open(path) as img:
        width, height = img.size
        if Image.MAX_IMAGE_PIXELS is not None and width * height > Image.MAX_IMAGE_PIXELS:
            raise Image.DecompressionBombError(
                f"{width}x{height} pixels, over PIL's limit of {Image.MAX_IMAGE_PIXELS} (PIL.Image.MAX_IMAGE_PIXELS)"
            )
        rgb = img.convert("RGB")  # loads the pixels: a truncated file raises here
    return torch.from_numpy(np.asarray(rgb).copy()).permute(2, 0, 1).contiguous()  # (3, H, W)


class UnusableImageError(ValueError):
    """An image file that the loaders skip: ``path`` and ``reason`` (e.g. "1x1 pixels (under 2x2)",
    "cannot be decoded (OSError: ...)")."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = str(path), reason


def size_problem(width: int, height: int) -> str | None:
    """Why an image of width x height pixels is not used (smaller than ``MIN_IMAGE_SIDE`` a side), else None."""
    if width < MIN_IMAGE_SIDE or height < MIN_IMAGE_SIDE:
        return f"{width}x{height} pixels (under {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE})"
    return None


def _content_problem(head: bytes) -> str | None:
    """Why a file starting with ``head`` (its first 16 bytes) is no image of ``FORMATS``, else None."""
    if not head:
        return "empty file"
    if (
        head.startswith((b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"BM", b"II*\x00", b"MM\x00*"))
        or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")
        or (len(head) > 2 and head[0:1] == b"P" and head[1:2] in b"123456" and head[2:3].isspace())
    ):
        return None
    return f"not a {FORMATS} file (starts with {head[:8].hex(' ')})"


def load_image(path: str | Path) -> Tensor:
    """Decodes an image file by the rule every loader follows (see the module's docstring).

    Returns:
        (3, H, W) uint8, H and W >= MIN_IMAGE_SIDE.

    Raises:
        UnusableImageError: the file is unreadable, empty, of another format, does not decode, or is too small; its
            ``reason`` says which.
    """
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError as error:
        raise UnusableImageError(path, f"unreadable ({error.strerror or error})") from None
    problem = _content_problem(head)
    if problem is None:
        try:
            image = decode_rgb(path)  # (3, H, W) uint8
        except DECODE_ERRORS as error:
            problem = f"cannot be decoded ({type(error).__name__}: {error})"
        else:
            problem = size_problem(image.shape[2], image.shape[1])
    if problem is not None:
        raise UnusableImageError(path, problem)
    return image


def unusable_reason(path: str | Path) -> str | None:
    """Why the loaders skip ``path`` (``load_image`` refuses it), or None when it is used."""
    try:
        load_image(path)
    except UnusableImageError as error:
        return error.reason
    return None


# digest of a file list -> (digest of the files' sizes and change times, their unusable files)
_CHECKED: dict[str, tuple[str, list[tuple[str, str]]]] = {}


def unusable_files(paths: Sequence[str], *, threads: int = 1) -> list[tuple[str, str]]:
    """(path, reason) of the files of ``paths`` that ``load_image`` refuses, in order: every file decoded once.

    The decodes run on ``threads`` threads (PIL releases the GIL while decoding). The answer is kept for the rest
    of the process, so checking the same unchanged files again (same sizes and change times) decodes nothing.
    """

    def stamp(path: str) -> str:
        try:
            info = os.stat(path)
        except OSError:
            return f"{path}\0missing"
        return f"{path}\0{info.st_size}\0{info.st_mtime_ns}"

    key, stamps = digest_lines(paths), digest_lines(map(stamp, paths))
    known = _CHECKED.get(key)
    if known is not None and known[0] == stamps:
        return list(known[1])
    Image.init()  # PIL's format plugins, loaded once before the threads open files
    with ThreadPoolExecutor(max(1, threads)) as pool:
        reasons = list(pool.map(unusable_reason, paths, chunksize=64))
    found = [(path, reason) for path, reason in zip(paths, reasons) if reason is not None]
    _CHECKED[key] = (stamps, found)
    return list(found)


def skipped_among(
    paths: Sequence[str], kept: Iterable[int], explain: Callable[[int], str | None] | None = None
) -> list[tuple[str, str]]:
    """(path, reason) of each file of ``paths`` left out of ``kept`` (positions of the images used), in order,
    each file once.

    Args:
        paths: the files a loader was given (a file may repeat).
        kept: the positions in ``paths`` that gave an image.
        explain: position -> the reason it was left out; default ``unusable_reason`` of its file (the file is
            decoded again: meant for the few files skipped). None or "" reads "unusable when read".
    """
    explain = explain or (lambda i: unusable_reason(paths[i]))
    used, seen, skipped = set(int(i) for i in kept), set(), []
    for i, path in enumerate(paths):
        if i not in used and path not in seen:
            seen.add(path)
            skipped.append((path, explain(i) or "unusable when read"))
    return skipped


def describe_skipped(skipped: Sequence[tuple[str, str]], limit: int = 5) -> str:
    """ "skipped 2 unusable images: a.jpg (1x1 pixels (under 2x2)), b.jpg (cannot be decoded (...))", naming the
    first ``limit`` (path, reason) pairs; "" when none."""
    if not skipped:
        return ""
    shown = ", ".join(f"{path} ({reason})" for path, reason in skipped[:limit])
    more = f" and {len(skipped) - limit} more" if len(skipped) > limit else ""
    return f"skipped {len(skipped)} unusable image{'s' if len(skipped) != 1 else ''}: {shown}{more}"


def skipped_record(skipped: Sequence[tuple[str, str]]) -> dict:
    """The results-file form of (path, reason) pairs: {"count": n, "files": [{"path", "reason"}, ...]}."""
    return {"count": len(skipped), "files": [{"path": str(path), "reason": reason} for path, reason in skipped]}


def describe_records(records: dict[str, dict], limit: int = 5) -> list[str]:
    """One line "<set>: skipped n unusable images: ..." per set of ``records`` ({set: ``skipped_record``}) that
    skipped any."""
    return [
        f"{name}: {describe_skipped([(f['path'], f['reason']) for f in record['files']], limit)}"
        for name, record in records.items()
        if record["count"]
    ]


def split_folders(root: str | Path) -> tuple[Path, Path | None]:
    """(training folder, held-out folder or None) of a folder that is either an ImageFolder itself or holds
    ``train/`` beside ``test/`` (or ``val/``), as CIFAR-10, Tiny-ImageNet and the built-in data are laid out."""
    root = Path(root)
    held_out = next((root / name for name in ("test", "val") if (root / name).is_dir()), None)
    if (root / "train").is_dir() and held_out is not None:
        return root / "train", held_out
    return root, None
