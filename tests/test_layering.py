"""The layers of the code point down: every import under inv_kernels/ and pipelines/ (at any depth, inside functions
too) is checked against the layer order of CONTRIBUTING.md ("Architecture"). A module may import only from its own
layer or lower ones, the library never imports pipelines/, and pipelines/ holds only ``main()`` entry points (and
their CLI helpers in ``pipelines/_cli.py``), which import no private name of the library."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("inv_kernels", "pipelines")
# Module prefix -> layer, lowest first; the longest matching prefix decides. A new module must fall under one.
LAYERS = {
    # 0 base: no inv_kernels import above it
    "inv_kernels._C": 0,  # the compiled kernels, loaded by _ext for the ops
    "inv_kernels._ext": 0,
    "inv_kernels._triton": 0,
    "inv_kernels._validate": 0,
    "inv_kernels.backend": 0,
    "inv_kernels.distributed": 0,
    "inv_kernels.hashing": 0,
    "inv_kernels.io": 0,
    "inv_kernels.provenance": 0,
    "inv_kernels.reporting": 0,
    "inv_kernels.testing": 0,
    "inv_kernels.precision": 0,
    # 1 ops
    "inv_kernels.ops": 1,
    # 2 data, transforms, augmentation, statistics; the package root re-exports ops and the statistics
    "inv_kernels": 2,
    "inv_kernels.augment": 2,
    "inv_kernels.data": 2,
    "inv_kernels.stats": 2,
    "inv_kernels.transforms": 2,
    # 3 models
    "inv_kernels.models": 3,
    # 4 features and evaluation
    "inv_kernels.downstream": 4,
    "inv_kernels.feature_cache": 4,
    "inv_kernels.measure": 4,
    "inv_kernels.probes": 4,
    # 5 training
    "inv_kernels.train": 5,
    # 6 studies, and the one-call Python API over them
    "inv_kernels.api": 6,
    "inv_kernels.correlation": 6,
    "inv_kernels.fusion": 6,
    "inv_kernels.study": 6,
    "inv_kernels.transfer": 6,
    # 7 entry points
    "pipelines": 7,
}
COMPILED = {"inv_kernels._C"}  # extension modules: no .py file to find
HELPERS = {"pipelines/__init__.py", "pipelines/_cli.py"}  # pipelines/ files that are no entry point


def layer_of(module: str) -> int | None:
    """The layer of a dotted module name by its longest prefix in LAYERS (None: none matches)."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        layer = LAYERS.get(".".join(parts[:end]))
        if layer is not None:
            return layer
    return None


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(dotted: str) -> bool:
    """Whether a dotted name is a module or package of the tree (not a name defined in one)."""
    base = ROOT.joinpath(*dotted.split("."))
    return dotted in COMPILED or base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imports(path: Path, package: str | None = None) -> list[tuple[int, str, str]]:
    """(line, module imported, as written) for each import of the project's packages in ``path``; relative imports
    are resolved against ``package`` (default: the file's own)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    if package is None:
        package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, f"import {alias.name}") for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module
            for alias in node.names:
                target = f"{source}.{alias.name}"
                found.append(
                    (
                        node.lineno,
                        target if is_module(target) else source,
                        f"from {'.' * node.level}{node.module or ''} import {alias.name}",
                    )
                )
    return [item for item in found if item[1].split(".")[0] in PACKAGES]


def sources() -> list[Path]:
    return sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py"))


def test_every_module_has_a_layer():
    missing = [str(path.relative_to(ROOT)) for path in sources() if layer_of(module_name(path)) is None]
    assert not missing, f"modules with no layer in tests/test_layering.py LAYERS: {', '.join(missing)}"


def test_imports_point_down():
    problems = []
    for path in sources():
        here = module_name(path)
        mine = layer_of(here)
        for line, target, written in imports(path):
            where = f"{path.relative_to(ROOT)}:{line}: {written}"
            if here.startswith("inv_kernels") and target.split(".")[0] == "pipelines":
                problems.append(f"{where}: the library imports an entry point")
                continue
            theirs = layer_of(target)
            if mine is not None and theirs is not None and theirs > mine:
                problems.append(f"{where}: layer {mine} ({here}) imports layer {theirs} ({target})")
    assert not problems, "imports that point up:\n" + "\n".join(problems)


def test_pipelines_hold_entry_points_that_use_public_names():
    problems = []
    for path in sorted((ROOT / "pipelines").glob("*.py")):
        name = str(path.relative_to(ROOT))
        tree = ast.parse(path.read_text(), filename=name)
        if name not in HELPERS and not any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in tree.body):
            problems.append(f"{name}: no main() (library code belongs in inv_kernels/)")
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("inv_kernels"):
                private = [a.name for a in node.names if a.name.startswith("_")]
                problems += [f"{name}:{node.lineno}: imports the private {p} of {node.module}" for p in private]
    assert not problems, "\n".join(problems)


def test_the_checks_catch_what_they_should(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import os\nfrom . import folders\n\n\ndef f():\n    from pipelines.measure import main\n"
        "    import inv_kernels.train.trainer\n    from ..ops import infonce\n"
    )
    assert imports(probe, package="inv_kernels.data") == [
        (2, "inv_kernels.data.folders", "from . import folders"),
        (6, "pipelines.measure", "from pipelines.measure import main"),
        (7, "inv_kernels.train.trainer", "import inv_kernels.train.trainer"),
        (8, "inv_kernels.ops.infonce", "from ..ops import infonce"),
    ]
    assert layer_of("inv_kernels.data.dali.two_view") == 2 and layer_of("inv_kernels") == 2
    assert layer_of("inv_kernels.ops.infonce") == 1 and layer_of("pipelines.measure") == 7
    assert layer_of("inv_kernels.ops.augment_params") == 1 and layer_of("inv_kernels.augment.params") == 2
    assert layer_of("numpy") is None
    assert is_module("inv_kernels.data.folders") and not is_module("inv_kernels.data.folders.load_image")
