"""Helpers the training tests share (fixtures stay in conftest.py)."""

from training.experiments import get_experiment, override

# name -> (class, how the file is made); the class colour is recoverable after decoding.
FOLDER_FILES = {
    "red/rgb.jpg": (0, "jpeg"),
    "red/gray.jpeg": (0, "gray_jpeg"),
    "red/rgba.png": (0, "rgba_png"),
    "red/gray_alpha.png": (0, "gray_alpha_png"),
    "red/nested/deeper.PNG": (0, "png"),
    "green/rgb.jpg": (1, "jpeg"),
    "green/rgb2.jpg": (1, "jpeg"),
    "green/rgb.png": (1, "png"),
    "blue/rgb.jpg": (2, "jpeg"),
    "blue/gray.png": (2, "gray_png"),
}
BAD_FILES = ("red/truncated.jpg", "green/empty.png", "blue/not_an_image.jpg")

# A small SK net and the 96-image configuration of the embedded dataset: seconds per run.
TINY = [
    "dataset=scales_demo/tiny",
    'model_kwargs={"stage_depths": [1, 1], "stem": "imagenet", "cardinality": 4, "bottleneck_width": 4, '
    '"min_dim": 8}',
    "batch_size=16",
    "epochs=2",
]


def tiny(*assignments):
    return override(get_experiment("scales_demo"), TINY + list(assignments))
