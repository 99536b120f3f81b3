"""In our command lines the packages defer their names (PEP 562), and every public name still imports.

A command (`python -m keras_sknet.export`, a `keras-sknet-*` script: `cli.COMMAND_LINE`)
answers `--help` without Keras, so the packages' `__init__` import nothing heavy there;
`cli.import_names` gives them a module `__getattr__` that imports their names on first use.
The checks run in a subprocess started as the `keras-sknet-export` script.
"""

import importlib.util
import textwrap

from tests.helpers import run_as_user

PACKAGES = ["keras_sknet.utils", "keras_sknet.weights", "keras_sknet.analysis", "keras_sknet.export"]
if importlib.util.find_spec("keras_hub") is not None:
    PACKAGES.append("keras_sknet.hub")

COMMAND = textwrap.dedent(
    """
    import importlib, sys

    import keras_sknet
    from keras_sknet.utils import cli

    assert cli.COMMAND_LINE
    packages = [importlib.import_module(name) for name in PACKAGES]
    heavy = sorted({"keras", "tensorflow"} & set(sys.modules))
    assert not heavy, f"importing the packages imported {heavy}"
    for package in packages:
        deferred = [name for name in package.__all__ if name in vars(package)]
        assert not deferred, (package.__name__, deferred)
        assert set(package.__all__) <= set(dir(package)), package.__name__
    assert set(keras_sknet.__all__) <= set(dir(keras_sknet))

    from keras_sknet.export import ExportError  # what training.demo needed
    from keras_sknet.export.common import ExportError as defined

    assert ExportError is defined
    from keras_sknet.weights import registry  # a submodule, as before

    assert registry.__name__ == "keras_sknet.weights.registry"
    for package in packages:
        for name in package.__all__:
            assert getattr(package, name) is not None, (package.__name__, name)
        try:
            package.no_such_name
        except AttributeError as error:
            assert "no_such_name" in str(error), error
        else:
            raise AssertionError(f"{package.__name__}.no_such_name did not raise")
    print("ok")
    """
)


def test_every_public_name_imports_in_a_command_and_nothing_heavy_before(tmp_path):
    script = tmp_path / "keras-sknet-export"  # a console script's name: cli.COMMAND_LINE
    script.write_text(f"PACKAGES = {PACKAGES!r}\n{COMMAND}")
    result = run_as_user([str(script)], cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]
