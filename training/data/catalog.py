"""Which datasets the pipelines know, what they contain, and loading them from TFDS.

A dataset is named as TensorFlow Datasets names it ("imagenet2012",
"imagenette/320px-v2", "cifar100:3.0.2", ...), or "folder" for a folder of
images. Each known name carries its pipeline style and default image size.
Any other TFDS image classification dataset (features `image` and `label`,
or `supervised_keys`) gets the CIFAR style at its own size when its images
have a fixed size of at most `SMALL_IMAGE_SIZE` (svhn, mnist, ...), the
ImageNet style at 224 otherwise.
"""

import dataclasses
import os

from training.data import folder as folder_lib
from training.data import options


@dataclasses.dataclass(frozen=True)
class _Entry:
    style: str
    image_size: int
    eval_split: str
    description: str


# Styles: `options.STYLES`.
_ENTRIES = {
    "imagenet2012": _Entry(
        "imagenet", 224, "validation", "ILSVRC-2012 via TFDS; needs the two tars in `manual_dir`"
    ),
    "imagenette": _Entry("imagenet", 224, "validation", "10 easy ImageNet classes (TFDS download)"),
    "cifar10": _Entry("cifar", 32, "test", "CIFAR-10 (TFDS download)"),
    "cifar100": _Entry("cifar", 32, "test", "CIFAR-100 (TFDS download)"),
    "scales_demo": _Entry(
        "flip", 64, "test", "embedded offline dataset: shapes at 1.0x/1.5x/2.0x (Section 4.4)"
    ),
    "folder": _Entry(
        "imagenet", 224, "validation", "a folder of images, one sub-folder per class (`data_dir`)"
    ),
}
SUPPORTED_DATASETS = tuple(_ENTRIES)
STYLES = options.STYLES
SMALL_IMAGE_SIZE = 64


class DatasetUnavailableError(FileNotFoundError):
    """A dataset is not prepared locally and cannot be downloaded or generated here."""


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What a trainer needs to know about a dataset.

    Attributes:
        name: the name as given.
        style: default pipeline style, one of `STYLES`.
        image_size: default training / evaluation image side.
        num_classes: number of classes.
        class_names: class names, index = label (None when TFDS has none).
        splits: split name -> number of examples (for folders: files listed,
            before the decodability check).
        train_split: the split to train on.
        eval_split: the split to evaluate on.
    """

    name: str
    style: str
    image_size: int
    num_classes: int
    class_names: tuple
    splits: dict
    train_split: str
    eval_split: str


def base_name(name):
    """The dataset name without config and version: "imagenette/320px-v2:1.0.0" -> "imagenette"."""
    return name.split(":")[0].split("/")[0]


def resolve(name):
    """The catalogue entry of a dataset name; None for other TFDS datasets (see `generic_entry`).

    Raises:
        ValueError: the name is neither supported nor a registered TFDS dataset.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"`name` must be a dataset name (str). Received: name={name!r}")
    base = base_name(name)
    if base in _ENTRIES:
        return _ENTRIES[base]
    import tensorflow_datasets as tfds  # only for names outside the catalogue

    if base in tfds.list_builders(with_community_datasets=False):
        return None  # decided by the images: `generic_entry`
    raise ValueError(
        f"Unknown dataset. Received: name={name!r}. Supported: {', '.join(SUPPORTED_DATASETS)}, "
        "or any TFDS image classification dataset with `image` and `label` features "
        "(see `tfds.list_builders()`); a folder of images is name='folder' with data_dir=<folder>."
    )


def generic_entry(builder):
    """The entry of a TFDS image dataset outside the catalogue, from its image feature."""
    image_key, _ = image_label_keys(builder)
    height, width = builder.info.features[image_key].shape[:2]
    splits = builder.info.splits
    eval_split = "validation" if "validation" in splits else "test" if "test" in splits else "validation"
    if height is not None and height == width and height <= SMALL_IMAGE_SIZE:
        return _Entry("cifar", height, eval_split, "small fixed-size images")
    return _Entry("imagenet", 224, eval_split, "TFDS image classification dataset")


def _data_dir_root(builder):
    """The data_dir a builder reads from: its data path without "<name>/<config>/<version>"."""
    path = os.fspath(builder.data_dir)
    suffix = "/" + builder.info.full_name
    return path[: -len(suffix)] if path.endswith(suffix) else path


def _not_available_message(builder, name, data_dir, manual_dir, reason):
    data_dir = data_dir or _data_dir_root(builder)
    lines = [f"The TFDS dataset {name!r} is not prepared under data_dir={os.fspath(data_dir)!r} ({reason})."]
    if builder.MANUAL_DOWNLOAD_INSTRUCTIONS:
        default_manual = os.path.join(os.fspath(data_dir), "downloads", "manual")
        lines.append(
            f"It needs a manual download: put the files below in `manual_dir` "
            f"(received manual_dir={manual_dir!r}; without it TFDS looks in {default_manual!r}) and call "
            "again with download=True to prepare it once:\n" + builder.MANUAL_DOWNLOAD_INSTRUCTIONS.strip()
        )
    elif base_name(name) == "scales_demo":
        lines.append("It is generated locally on first use (download=True), without network access.")
    else:
        lines.append(
            "It is downloaded on first use (download=True), which needs network access. Without network: "
            "prepare it on a machine with network access (`tfds build "
            f"{name} --data_dir=DIR`), copy DIR here and pass data_dir=DIR; or put the downloaded archives "
            "in `manual_dir` (read by datasets that support manual downloads)."
        )
    lines.append("Prepared datasets are read from data_dir/<name>/<config>/<version>.")
    return "\n".join(lines)


def load_builder(name, data_dir=None, manual_dir=None, download=True):
    """A TFDS builder whose data is prepared, preparing it if allowed.

    Args:
        name: a TFDS name (with optional config and version).
        data_dir: where TFDS datasets live (TFDS's default when None).
        manual_dir: the folder with manually downloaded archives (ImageNet).
        download: prepare the dataset when it is missing (downloads for most
            datasets, which TFDS retries for about 3 minutes without network;
            `scales_demo` is generated locally).

    Returns:
        A `tfds.core.DatasetBuilder` with `is_prepared()`.

    Raises:
        DatasetUnavailableError: not prepared and it cannot be prepared here;
            the message explains `manual_dir` / `data_dir`.
    """
    import tensorflow_datasets as tfds

    from training.data import scales  # noqa: F401  (registers the scales_demo builder)

    data_dir = os.path.expanduser(os.fspath(data_dir)) if data_dir is not None else None
    manual_dir = os.path.expanduser(os.fspath(manual_dir)) if manual_dir is not None else None
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError as error:
        raise ValueError(f"Unknown TFDS dataset. Received: name={name!r} ({error})") from error
    if builder.is_prepared():
        return builder
    if not download:
        raise DatasetUnavailableError(
            _not_available_message(builder, name, data_dir, manual_dir, "download=False")
        )
    config = tfds.download.DownloadConfig(manual_dir=manual_dir, try_download_gcs=False)
    try:
        builder.download_and_prepare(download_config=config)
    except Exception as error:  # network, missing manual files, checksum: all mean "not available here"
        reason = (
            f"preparing it failed: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        )
        raise DatasetUnavailableError(
            _not_available_message(builder, name, data_dir, manual_dir, reason)
        ) from error
    return builder


def image_label_keys(builder):
    """The (image, label) feature names of a TFDS image classification dataset."""
    import tensorflow_datasets as tfds

    features = builder.info.features
    keys = ("image", "label")
    if not all(k in features for k in keys):
        keys = builder.info.supervised_keys
    if not keys or len(keys) != 2 or not isinstance(features[keys[0]], tfds.features.Image):
        raise ValueError(
            f"The TFDS dataset {builder.info.full_name!r} is not an image classification dataset: expected "
            f"an `image` and a `label` feature (or supervised_keys), got features {list(features)}"
        )
    return keys


def dataset_info(name, data_dir=None, manual_dir=None, download=True, validation_fraction=0.1):
    """Describes a dataset: classes, splits and sizes, default style and image size.

    Args:
        name: a name of `SUPPORTED_DATASETS`, another TFDS image dataset, or
            "folder".
        data_dir: TFDS data directory; for "folder" the image folder.
        manual_dir, download: as in `load_builder` (TFDS datasets only).
        validation_fraction: for folders without split folders.

    Returns:
        A `DatasetInfo`.

    Example:
        >>> dataset_info("scales_demo").num_classes
        8
    """
    entry = resolve(name)
    if base_name(name) == "folder":
        if data_dir is None:
            raise ValueError(
                "name='folder' reads the image folder given as data_dir. Received: data_dir=None"
            )
        folder = folder_lib.list_image_folder(data_dir, validation_fraction)
        splits = {split: len(files) for split, files in folder.files.items()}
        train = "train" if "train" in splits else folder.splits[0]
        evaluation = next((s for s in ("validation", "val", "valid", "test") if s in splits), train)
        return DatasetInfo(
            name,
            entry.style,
            entry.image_size,
            len(folder.class_names),
            folder.class_names,
            splits,
            train,
            evaluation,
        )
    import tensorflow_datasets as tfds

    builder = load_builder(name, data_dir, manual_dir, download)
    entry = entry or generic_entry(builder)
    _, label_key = image_label_keys(builder)
    label = builder.info.features[label_key]
    if not isinstance(label, tfds.features.ClassLabel):
        raise ValueError(f"The label feature {label_key!r} of {name!r} is not a ClassLabel: {label!r}")
    splits = {split: info.num_examples for split, info in builder.info.splits.items()}
    evaluation = entry.eval_split if entry.eval_split in splits else ("test" if "test" in splits else "train")
    names = tuple(label.names) if getattr(label, "names", None) else None
    return DatasetInfo(
        name, entry.style, entry.image_size, label.num_classes, names, splits, "train", evaluation
    )
