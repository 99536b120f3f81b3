"""A folder of images, one sub-folder per class: users' own data.

Two layouts are read:

    root/<class>/**/<image>              splits "train" and "validation" are cut by a
                                         stable hash of each file's path
                                         (`validation_fraction`), "all" is everything
    root/<split>/<class>/**/<image>      the split folders themselves ("train",
                                         "validation", "val", "test", ...)

Class indices follow the sorted class-folder names (as
`keras.utils.image_dataset_from_directory` does), the same in every split.
Files whose extension is not an image format are ignored. Image files that
cannot be decoded (corrupt, truncated, empty) are found by one parallel
decoding pass, skipped and counted in the log, or reported as an error with
`strict=True`.
"""

import dataclasses
import logging
import os
import zlib

import numpy as np

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
# Folder names that mark the split layout.
SPLIT_FOLDER_NAMES = ("train", "training", "validation", "val", "valid", "test", "testing")
HASH_SPLITS = ("train", "validation", "all")
_HASH_BUCKETS = 10_000


@dataclasses.dataclass(frozen=True)
class ImageFolder:
    """The files of an image folder, listed once.

    Attributes:
        root: the folder.
        class_names: sorted class-folder names; index = label.
        files: split name -> tuple of `(path, label)`, before any decoding check.
        hashed_splits: True when the splits are cut by hash from one class tree.
    """

    root: str
    class_names: tuple
    files: dict
    hashed_splits: bool

    @property
    def splits(self):
        return tuple(self.files)


def _subdirs(path):
    return sorted(e.name for e in os.scandir(path) if e.is_dir() and not e.name.startswith("."))


def _images_under(path):
    found = []
    for dirpath, dirnames, filenames in os.walk(path, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS):
                found.append(os.path.join(dirpath, name))
    return found


def _in_validation(relative_path, fraction):
    bucket = zlib.crc32(relative_path.replace(os.sep, "/").encode("utf-8")) % _HASH_BUCKETS
    return bucket < fraction * _HASH_BUCKETS


def list_image_folder(root, validation_fraction=0.1):
    """Lists an image folder's classes and files per split.

    Args:
        root: the folder (either layout of the module docstring).
        validation_fraction: share of files put in "validation" when the
            folder has no split folders; the choice depends only on each
            file's path relative to `root`, so it is stable when files are
            added.

    Returns:
        An `ImageFolder`.

    Raises:
        ValueError: `root` is not a folder, has no class folders or no images.
    """
    root = os.path.expanduser(os.fspath(root))
    if not os.path.isdir(root):
        raise ValueError(
            f"The image folder does not exist or is not a directory. Received: data_dir={root!r} "
            "(expected root/<class>/<image> or root/<split>/<class>/<image>)"
        )
    if not 0.0 <= validation_fraction < 1.0:
        raise ValueError(f"`validation_fraction` must be in [0, 1). Received: {validation_fraction!r}")
    top = _subdirs(root)
    split_dirs = [d for d in top if d.lower() in SPLIT_FOLDER_NAMES]
    if split_dirs:
        class_names = tuple(sorted({c for split in split_dirs for c in _subdirs(os.path.join(root, split))}))
        roots = {split: os.path.join(root, split) for split in split_dirs}
    else:
        class_names = tuple(top)
        roots = {None: root}
    if not class_names:
        raise ValueError(
            f"No class folders in {root!r}: expected root/<class>/<image> or root/<split>/<class>/<image>"
        )
    labels = {name: i for i, name in enumerate(class_names)}
    files = {}
    for split, split_root in roots.items():
        entries = []
        for name in class_names:
            class_dir = os.path.join(split_root, name)
            if os.path.isdir(class_dir):
                entries += [(path, labels[name]) for path in _images_under(class_dir)]
        files[split] = tuple(entries)
    if not split_dirs:
        everything = files.pop(None)
        validation = tuple(
            e for e in everything if _in_validation(os.path.relpath(e[0], root), validation_fraction)
        )
        chosen = {path for path, _ in validation}
        files = {
            "train": tuple(e for e in everything if e[0] not in chosen),
            "validation": validation,
            "all": everything,
        }
    if not any(files.values()):
        raise ValueError(f"No image files ({', '.join(IMAGE_EXTENSIONS)}) in the class folders of {root!r}")
    return ImageFolder(root, class_names, files, hashed_splits=not split_dirs)


def find_undecodable(paths, num_parallel_calls=None):
    """Indices of the files that cannot be read or fully decoded by TensorFlow.

    One parallel `tf.data` pass decodes every file (truncated JPEGs and PNGs
    fail only when decoded to the end, so headers are not enough).

    Args:
        paths: a sequence of file paths.
        num_parallel_calls: decoding parallelism (default `tf.data.AUTOTUNE`).

    Returns:
        A sorted list of indices into `paths`.
    """
    if not paths:
        return []
    import tensorflow as tf

    from training.data.preprocessing import decode_rgb

    num_parallel_calls = num_parallel_calls or tf.data.AUTOTUNE
    indices = tf.data.Dataset.from_tensor_slices((np.arange(len(paths), dtype=np.int64), list(paths)))
    decoded = indices.map(
        lambda i, path: (i, tf.shape(decode_rgb(tf.io.read_file(path)))[0]),
        num_parallel_calls=num_parallel_calls,
    ).ignore_errors()
    good = np.zeros(len(paths), dtype=bool)
    for i, _ in decoded.as_numpy_iterator():
        good[i] = True
    return [int(i) for i in np.flatnonzero(~good)]


def find_undecodable_pil(paths, num_threads=None):
    """Indices of the files that Pillow cannot read or fully decode (the grain pipeline's check).

    Args:
        paths: a sequence of file paths.
        num_threads: decoding threads (default: the CPU count).

    Returns:
        A sorted list of indices into `paths`.
    """
    from concurrent.futures import ThreadPoolExecutor

    from training.data.numpy_augment import read_rgb

    def bad(path):
        try:
            read_rgb(path)
            return False
        except (OSError, ValueError, SyntaxError):
            return True

    with ThreadPoolExecutor(num_threads or os.cpu_count()) as pool:
        return [i for i, failed in enumerate(pool.map(bad, paths)) if failed]


def folder_split_files(folder, split, strict=False, validate=True, find_bad=find_undecodable):
    """The `(paths, labels)` of one split, with undecodable files removed.

    Args:
        folder: an `ImageFolder`.
        split: one of `folder.splits`.
        strict: raise instead of skipping undecodable files.
        validate: decode every file once to find the bad ones; with False,
            bad files are left in and the pipeline drops them as it meets
            them (a TensorFlow warning per file).
        find_bad: the check of `validate`: `find_undecodable` (TensorFlow's
            decoders, the tf.data pipeline's) or `find_undecodable_pil` (grain's).

    Returns:
        `(paths, labels)`: a list of str and an int64 NumPy array.

    Raises:
        ValueError: unknown split, an empty split, or bad files when strict.
    """
    if split not in folder.files:
        raise ValueError(
            f"Unknown split for the image folder {folder.root!r}. Received: split={split!r}; "
            f"available: {folder.splits}"
        )
    entries = folder.files[split]
    if not entries:
        raise ValueError(f"The split {split!r} of the image folder {folder.root!r} has no image files")
    paths = [path for path, _ in entries]
    labels = np.array([label for _, label in entries], dtype=np.int64)
    if validate:
        bad = find_bad(paths)
        if bad:
            names = ", ".join(os.path.relpath(paths[i], folder.root) for i in bad[:10])
            more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
            if strict:
                raise ValueError(
                    f"{len(bad)} of {len(paths)} image files in {folder.root!r} (split {split!r}) cannot be "
                    f"decoded: {names}{more}"
                )
            logger.warning(
                "Skipped %d of %d image files in %r (split %r) that cannot be decoded: %s%s",
                len(bad),
                len(paths),
                folder.root,
                split,
                names,
                more,
            )
            keep = np.ones(len(paths), dtype=bool)
            keep[bad] = False
            paths = [p for p, k in zip(paths, keep) if k]
            labels = labels[keep]
            if not paths:
                raise ValueError(f"No decodable image files in {folder.root!r} (split {split!r})")
    return paths, labels
