"""Seeded initial weights stay what they were: every family, every weight's path and values.

`keras.utils.set_random_seed(0)` makes a model's initial weights reproducible, and tests
compare numbers from such models (tests/test_platforms.py trains them on two kernel
libraries against a 1e-4 bound). The values depend on the order in which the layers create
their initializers and weights, which a change to how the blocks are built can shuffle
without changing any shape. tests/data/initial_weights.json holds a fingerprint of every
initial weight of one tiny model per family (path, shape, first values, sum, sum of
squares), recorded from the code before the blocks shared a base class; rerecord it with
`python -m tests.test_initial_weights` only for a change meant to change initial weights.
"""

import json
import pathlib

import keras
import numpy as np
import pytest

from keras_sknet import applications

FIXTURE = pathlib.Path(__file__).parent / "data" / "initial_weights.json"
FIRST_VALUES = 4
_CIFAR = dict(stem="cifar", cardinality=4, bottleneck_width=4, input_shape=(32, 32, 3), classes=5)
_SHUFFLENET = dict(alpha=0.5, stage_depths=(1, 1, 1), input_shape=(64, 64, 3), classes=5)

# One tiny model per family; the SK ones in the layouts the named models use.
FAMILIES = {
    "sknet": lambda: applications.SKNet((1, 1), min_dim=4, **_CIFAR),
    "sknet_imagenet_stem": lambda: applications.SKNet(
        (1, 1), cardinality=4, min_dim=4, output_stride=16, input_shape=(64, 64, 3), classes=5
    ),
    "sknet_m3_per_path_groups": lambda: applications.SKNet(
        (1, 1), kernel_sizes=(3, 5, 7), sk_groups=(2, 4, 4), min_dim=4, **_CIFAR
    ),
    "sknet_no_attention": lambda: applications.SKNet((1, 1), attention=False, **_CIFAR),
    "sknet29_cifar": lambda: applications.SKNet(
        (1, 1, 1), kernel_sizes=(3, 1), reduction=32, min_dim=4, **_CIFAR
    ),
    "resnext": lambda: applications.SKNet((1, 1), block="resnext", **_CIFAR),
    "seresnext": lambda: applications.SKNet((1, 1), block="resnext", se_reduction=4, **_CIFAR),
    "skresnet": lambda: applications.SKResNet((1, 1, 1, 1), input_shape=(64, 64, 3), classes=5),
    "shufflenet": lambda: applications.ShuffleNetV2(**_SHUFFLENET),
    "shufflenet_se": lambda: applications.ShuffleNetV2(attention="se", se_min_dim=4, **_SHUFFLENET),
    "shufflenet_sk": lambda: applications.ShuffleNetV2(attention="sk", **_SHUFFLENET),
}


def fingerprint(build):
    """`[[path, shape, first values, sum, sum of squares], ...]` of the initial weights, seed 0."""
    keras.utils.set_random_seed(0)
    model = build()
    rows = []
    for weight in model.weights:
        values = np.asarray(keras.ops.convert_to_numpy(weight), "float64").ravel()
        rows.append(
            [
                weight.path,
                list(weight.shape),
                values[:FIRST_VALUES].tolist(),
                float(values.sum()),
                float(np.square(values).sum()),
            ]
        )
    return rows


pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="recorded from TensorFlow's random ops"
)


@pytest.fixture(scope="module")
def recorded():
    return json.loads(FIXTURE.read_text())


@pytest.mark.parametrize("family", FAMILIES)
def test_seeded_initial_weights_are_the_recorded_ones(family, recorded):
    expected, actual = recorded[family], fingerprint(FAMILIES[family])
    assert [row[:2] for row in actual] == [row[:2] for row in expected]
    for (path, _, *numbers), (_, _, *want) in zip(actual, expected):
        first, total, squares = numbers
        np.testing.assert_allclose(first, want[0], rtol=1e-6, atol=1e-7, err_msg=path)
        np.testing.assert_allclose([total, squares], want[1:], rtol=1e-5, atol=1e-4, err_msg=path)


@pytest.mark.parametrize("family", FAMILIES)
def test_no_two_kernels_start_from_the_same_draws(family):
    # One unseeded initializer shared by a block's convolutions (it fixes its seed when made)
    # once started SKConv's two paths, and a bottleneck's conv3 and shortcut, identical.
    keras.utils.set_random_seed(0)
    model = FAMILIES[family]()
    first_seen = {}
    for weight in model.weights:
        if weight.path.endswith("kernel") and np.prod(weight.shape) > 1:
            values = np.asarray(keras.ops.convert_to_numpy(weight)).ravel()[:16]
            key = (tuple(weight.shape), values.tobytes())
            assert key not in first_seen, f"{weight.path} starts as {first_seen[key]} does"
            first_seen[key] = weight.path


if __name__ == "__main__":
    # One weight a line, so that a diff of the file names the weights that changed.
    families = [
        f"{json.dumps(name)}: [\n" + ",\n".join(json.dumps(row) for row in fingerprint(build)) + "\n]"
        for name, build in FAMILIES.items()
    ]
    FIXTURE.parent.mkdir(exist_ok=True)
    FIXTURE.write_text("{\n" + ",\n".join(families) + "\n}\n")
    print(f"wrote {FIXTURE}")
