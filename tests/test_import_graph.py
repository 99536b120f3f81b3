"""keras_sknet's packages import one way, down a flight of stairs, with no cycles.

Each module of keras_sknet belongs to a level; it may import its own package
and those on lower levels (or on its own level, so long as no cycle forms),
never a higher one. Imports inside functions count: deferring an import hides
a dependency from import time, not from the design. The modules are read with
`ast`, not imported: fast, and without TensorFlow.

    0  utils, platform, version, _keras_config   (Keras and NumPy helpers)
    1  layers                                    (utils)
    2  weights                                   (checkpoints, conversion onto layers)
    3  applications                              (the zoo; weights="imagenet" uses weights)
    4  analysis, export                          (work on built models)
    5  hub                                       (keras-hub classes; optional, never imported by keras_sknet)
    6  keras_sknet itself and every __main__     (the command lines and the package's front)

`weights` cannot import `applications` to build the model a checkpoint is
converted into: the model function builds it and hands it down
(`keras_sknet.weights.sources.prepared`); the models' records live in
`keras_sknet.weights.records`, which every level above reads. Likewise the layers
register their multiply-add counts with `keras_sknet.utils.flops.register_macs`.
"""

import ast
import pathlib

PACKAGE = "keras_sknet"
ROOT = pathlib.Path(__file__).resolve().parent.parent / PACKAGE

LEVELS = {
    "utils": 0,
    "platform": 0,
    "version": 0,
    "_keras_config": 0,
    "layers": 1,
    "weights": 2,
    "applications": 3,
    "analysis": 4,
    "export": 4,
    "hub": 5,
}
TOP = 6  # `keras_sknet/__init__.py` and the `__main__` modules
TOP_NAME = "(entry points)"


def _modules():
    """{dotted module name: path} of every module of the package."""
    modules = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = (PACKAGE,) + path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _group(module):
    """The part of keras_sknet that `module` belongs to, for levels and cycles."""
    parts = module.split(".")
    if len(parts) == 1 or parts[-1] == "__main__":
        return TOP_NAME
    return parts[1]


def _level(group):
    return TOP if group == TOP_NAME else LEVELS[group]


def _imports(module, path, modules):
    """`(imported keras_sknet module, line)` for every import in the file, functions included."""
    is_package = path.name == "__init__.py"
    package = module if is_package else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module
            for alias in node.names:
                # `from keras_sknet import applications` imports the subpackage.
                candidate = f"{source}.{alias.name}"
                yield (candidate if candidate in modules else source), node.lineno


def _edges():
    """[(from group, to group, "file:line", imported module)] across groups of keras_sknet."""
    modules = _modules()
    edges = []
    for module, path in modules.items():
        for imported, line in _imports(module, path, modules):
            if imported != PACKAGE and not imported.startswith(PACKAGE + "."):
                continue
            source, target = _group(module), _group(imported)
            if imported == PACKAGE:
                target = TOP_NAME
            if source != target:
                where = f"{path.relative_to(ROOT.parent)}:{line}"
                edges.append((source, target, where, imported))
    return edges


def _cycle(graph):
    """One cycle of `graph` ({node: {successors}}) as a list of nodes, or None."""
    state = {}

    def visit(node, trail):
        state[node] = "open"
        trail.append(node)
        for successor in sorted(graph.get(node, ())):
            if state.get(successor) == "open":
                return trail[trail.index(successor) :] + [successor]
            if successor not in state:
                found = visit(successor, trail)
                if found:
                    return found
        state[node] = "done"
        trail.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node, [])
            if found:
                return found
    return None


def test_every_part_has_a_level():
    groups = {_group(module) for module in _modules()} - {TOP_NAME}
    assert groups <= set(LEVELS), f"give these a level in LEVELS: {sorted(groups - set(LEVELS))}"


def test_no_import_goes_up_a_level():
    upward = [
        f"{where}: {source} (level {_level(source)}) imports {imported} ({target}, level {_level(target)})"
        for source, target, where, imported in _edges()
        if _level(target) > _level(source)
    ]
    assert not upward, "imports up the stairs:\n" + "\n".join(upward)


def test_no_cycle_between_parts():
    graph = {}
    where = {}
    for source, target, at, _ in _edges():
        graph.setdefault(source, set()).add(target)
        where.setdefault((source, target), {})[at] = None  # in order, once per line
    cycle = _cycle(graph)
    if cycle:
        steps = [
            f"{a} -> {b}: {', '.join(list(where[a, b])[:3])}" for a, b in zip(cycle, cycle[1:], strict=False)
        ]
        raise AssertionError("a cycle between keras_sknet's parts:\n" + "\n".join(steps))


def test_the_walker_sees_function_level_and_relative_imports(tmp_path):
    # The checks above are only as good as _imports: a deferred and a relative import count.
    package = tmp_path / PACKAGE / "utils"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("from . import a\n")
    (package / "a.py").write_text("def f():\n    from ..layers import conv\n    import keras_sknet.weights\n")
    modules = {f"{PACKAGE}.utils": None, f"{PACKAGE}.utils.a": None, f"{PACKAGE}.layers.conv": None}
    assert list(_imports(f"{PACKAGE}.utils", package / "__init__.py", modules)) == [(f"{PACKAGE}.utils.a", 1)]
    assert sorted(_imports(f"{PACKAGE}.utils.a", package / "a.py", modules)) == [
        (f"{PACKAGE}.layers.conv", 2),
        (f"{PACKAGE}.weights", 3),
    ]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}}) is None


def test_only_the_hub_imports_the_hub():
    # keras_sknet.hub imports keras-hub, an optional dependency: `import keras_sknet` (and every
    # other part and command line) must work without it.
    importers = [
        f"{where} imports {imported}"
        for source, target, where, imported in _edges()
        if target == "hub" and not where.startswith(f"{PACKAGE}/hub/")
    ]
    assert not importers, "\n".join(importers)


# In our command lines (`keras_sknet.utils.cli.COMMAND_LINE`) these packages' `__init__` import
# nothing, so that `--help` answers without Keras: the package's code imports its names from the
# modules that define them (`from keras_sknet.weights.registry import PRETRAINED`), never from the
# package (`from keras_sknet.weights import PRETRAINED`), which would import all of the package on
# first use (`cli.import_names`).
DEFERRED_PACKAGES = ("utils", "weights", "analysis", "hub")


def test_names_come_from_modules_not_from_packages_that_defer_their_imports():
    modules = _modules()
    deferred = {f"{PACKAGE}.{name}" for name in DEFERRED_PACKAGES}
    found = []
    for module, path in modules.items():
        if module in deferred:
            continue  # the package's own __init__ defines its names
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and not node.level and node.module in deferred:
                names = [a.name for a in node.names if f"{node.module}.{a.name}" not in modules]
                if names:
                    found.append(f"{path.relative_to(ROOT.parent)}:{node.lineno}: {', '.join(names)}")
    assert not found, f"import these from their modules ({', '.join(sorted(deferred))} defer):\n" + "\n".join(
        found
    )


# The repository's trainer (training/) uses the library; the library never imports it
# ("data flows one way"; the trainer is not installed with the package), and its own modules
# import one way too.
TRAINING = ROOT.parent / "training"


def _training_modules():
    """{dotted module name: path} of every module of training/."""
    modules = {}
    for path in sorted(TRAINING.rglob("*.py")):
        parts = ("training",) + path.relative_to(TRAINING).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def test_the_library_never_imports_training():
    modules = _modules()
    found = [
        f"{path.relative_to(ROOT.parent)}:{line}: {imported}"
        for module, path in modules.items()
        for imported, line in _imports(module, path, modules)
        if imported.split(".")[0] == "training"
    ]
    assert not found, "keras_sknet imports the trainer:\n" + "\n".join(found)


def test_no_cycle_between_training_modules():
    modules = _training_modules()
    graph = {}
    where = {}
    for module, path in modules.items():
        for imported, line in _imports(module, path, modules):
            if imported in modules and imported != module:
                graph.setdefault(module, set()).add(imported)
                where.setdefault((module, imported), f"{path.relative_to(TRAINING.parent)}:{line}")
    assert len(graph) > 5  # the walker sees training/'s imports
    cycle = _cycle(graph)
    if cycle:
        steps = [f"{a} -> {b}: {where[a, b]}" for a, b in zip(cycle, cycle[1:], strict=False)]
        raise AssertionError("a cycle between training/'s modules:\n" + "\n".join(steps))
