"""The rules of docs/architecture.md, checked on the source tree (no import of the package: the files are read).

* The import layers: every module of ``neuralnmf`` belongs to one layer (``LAYERS``, lowest first) and imports
  only from its own layer and the layers below it: no upward arrow. Every import counts, at load time or inside a
  function.
* No module imports another at load time in a cycle (imports inside functions, and under ``TYPE_CHECKING``, run
  later and are left out).
* No module imports a private (``_name``) module of a sibling package: a package uses its own private modules and
  those of the packages that contain it.
* No source file is over 400 lines: the package's Python files, ``setup.py`` and the C++/CUDA sources under
  ``csrc/``.
* Each argument check is defined once (a ``check_*`` function of one name in one module; the matrix and tensor
  families' ``_checks.py`` mirror the shared one on purpose), and the one uniform draw of a random start is
  ``initialization.uniform``.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "neuralnmf"
MAX_LINES = 400

# The layers of docs/architecture.md, lowest first: a module may import from its own layer and those below.
# A name is a module or a package (then every module in it, unless a longer name says otherwise).
LAYERS = (
    ("base", ("neuralnmf._checks", "neuralnmf._version", "neuralnmf._optional", "neuralnmf.threads")),  # they import nothing from the package
    ("ops", ("neuralnmf._extension", "neuralnmf._library", "neuralnmf._fake", "neuralnmf._autograd",
             "neuralnmf._reference", "neuralnmf._validation", "neuralnmf.ops", "neuralnmf.sparse_products")),
    ("layers", ("neuralnmf.initialization", "neuralnmf.tree_start", "neuralnmf.layers", "neuralnmf._fitted")),
    ("models", ("neuralnmf.classifiers", "neuralnmf.models", "neuralnmf.projection", "neuralnmf.rank_selection",
                "neuralnmf.baselines", "neuralnmf.tensor")),
    ("training", ("neuralnmf.losses", "neuralnmf.optim", "neuralnmf.epochs", "neuralnmf.supervision",
                  "neuralnmf.holdout", "neuralnmf.train", "neuralnmf.serialization", "neuralnmf.tensor.losses",
                  "neuralnmf.tensor.train")),
    ("tools", ("neuralnmf.datasets", "neuralnmf.metrics", "neuralnmf.topics", "neuralnmf.plot", "neuralnmf.cli",
               "neuralnmf.tensor.topics", "neuralnmf.tensor.__init__", "neuralnmf.__main__")),
    ("package", ("neuralnmf.__init__",)),  # the public facade re-exports every layer
)
COMPILED = {"neuralnmf._C"}  # the kernels: below every layer


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts)  # a package's __init__ keeps its name: neuralnmf.tensor.__init__


def package_of(module: str) -> str:
    """The package a module is in (for a package's __init__: that package)."""
    return module.rsplit(".", 1)[0]


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def resolve(name: str) -> str | None:
    """The module file an imported dotted name refers to (a package: its __init__), or None outside the package."""
    if name in COMPILED:
        return name
    for candidate in (name, name + ".__init__"):
        if candidate in MODULES:
            return candidate
    return None


def imports(module: str) -> list[tuple[str, bool, int]]:
    """(imported module, at load time, line) for every import of a neuralnmf module in ``module``."""
    tree = ast.parse(MODULES[module].read_text(), filename=str(MODULES[module]))
    out = []

    def visit(node, load_time: bool):
        for child in ast.iter_child_nodes(node):
            later = load_time
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                later = False
            elif isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                later = False
            if isinstance(child, ast.Import):
                for alias in child.names:
                    target = resolve(alias.name)
                    if target:
                        out.append((target, load_time, child.lineno))
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package_of(module).split(".")
                    base = base[: len(base) - (child.level - 1)]
                    prefix = ".".join(base + ([child.module] if child.module else []))
                else:
                    prefix = child.module or ""
                if not prefix.startswith("neuralnmf"):
                    continue
                for alias in child.names:  # `from pkg import mod` imports pkg.mod; `from mod import name`, mod
                    target = resolve(f"{prefix}.{alias.name}") or resolve(prefix)
                    if target:
                        out.append((target, load_time, child.lineno))
            visit(child, later)

    visit(tree, True)
    return out


def layer_of(module: str) -> int:
    if module in COMPILED:
        return -1
    best, best_len = None, -1
    for index, (_, names) in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and len(name) > best_len:
                best, best_len = index, len(name)
    assert best is not None, f"{module} is in no layer of LAYERS: add it (and to docs/architecture.md)"
    return best


def test_every_module_is_in_a_layer():
    for module in MODULES:
        layer_of(module)


def test_no_module_imports_from_a_layer_above_it():
    upward = []
    for module in MODULES:
        own = layer_of(module)
        for target, _, line in imports(module):
            if layer_of(target) > own:
                upward.append(f"{MODULES[module].relative_to(ROOT)}:{line} ({LAYERS[own][0]}) imports {target} "
                              f"({LAYERS[layer_of(target)][0]})")
    assert not upward, "imports from a higher layer:\n" + "\n".join(upward)


def test_no_import_cycle_at_load_time():
    graph = {m: sorted({t for t, load_time, _ in imports(m) if load_time and t in MODULES and t != m})
             for m in MODULES}
    cycles, state = [], {}

    def walk(node, stack):
        state[node] = "open"
        stack.append(node)
        for nxt in graph[node]:
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                walk(nxt, stack)
        stack.pop()
        state[node] = "done"

    for module in graph:
        if module not in state:
            walk(module, [])
    assert not cycles, "import cycles at load time:\n" + "\n".join(cycles)


def private_owner(target: str) -> str | None:
    """The package whose private module ``target`` is (neuralnmf.tensor._checks -> neuralnmf.tensor), or None."""
    parts = target.split(".")
    for i, part in enumerate(parts):
        if part.startswith("_") and not (part.startswith("__") and part.endswith("__")):
            return ".".join(parts[:i])
    return None


def test_no_private_module_of_a_sibling_package_is_imported():
    found = []
    for module in MODULES:
        for target, _, line in imports(module):
            owner = private_owner(target)
            if owner is not None and target not in COMPILED and not (module + ".").startswith(owner + "."):
                found.append(f"{MODULES[module].relative_to(ROOT)}:{line} imports {target}, private to {owner}")
    assert not found, "private modules of other packages imported:\n" + "\n".join(found)


def source_files() -> list[Path]:
    files = [ROOT / "setup.py", *PACKAGE.rglob("*.py")]
    for pattern in ("*.h", "*.cuh", "*.cu", "*.cpp"):
        files += (ROOT / "csrc").rglob(pattern)
    return sorted(files)


def test_there_are_sources_to_check():
    names = {p.relative_to(ROOT).as_posix() for p in source_files()}
    assert {"setup.py", "neuralnmf/ops.py", "csrc/nnls.cpp", "csrc/cuda/group_solver.cuh"} <= names


@pytest.mark.parametrize("path", source_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_source_file_is_over_the_line_limit(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(ROOT)} has {lines} lines (limit {MAX_LINES}): split it"


def function_definitions() -> dict[str, list[str]]:
    """Module-level function names (a leading underscore dropped) -> the modules that define them."""
    found = defaultdict(list)
    for module, path in MODULES.items():
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef):
                found[node.name.lstrip("_")].append(module)
    return found


# The data checks of the matrix and tensor families mirror the shared ones by name (architecture.md, "What
# repeats on purpose"): each checks its own kind of data.
FAMILY_CHECKS = {"neuralnmf._checks", "neuralnmf.baselines._checks", "neuralnmf.tensor._checks"}


def test_each_check_is_defined_once():
    twice = {name: modules for name, modules in function_definitions().items()
             if name.startswith("check_") and len([m for m in modules if m not in FAMILY_CHECKS])
             + min(1, len([m for m in modules if m in FAMILY_CHECKS])) > 1}
    assert not twice, ("checks defined in several modules (use the one in neuralnmf/_checks.py, or give a "
                       f"different check its own name): {twice}")


def test_no_function_is_defined_twice_in_a_module():
    for module, path in MODULES.items():
        names = [node.name for node in ast.parse(path.read_text()).body
                 if isinstance(node, (ast.FunctionDef, ast.ClassDef))]
        assert len(names) == len(set(names)), f"{module} defines {sorted({n for n in names if names.count(n) > 1})} twice"


# U[0, 1) draws: the one draw of random starts is initialization.uniform. Data generators (datasets/, the generated
# problem of the CLI's nnls demo, and the papers' numpy streams) draw their numbers themselves.
UNIFORM_DRAWS = {"rand", "rand_like", "uniform_", "random_sample"}
DRAWS_DATA = ("neuralnmf/datasets/", "neuralnmf/cli/demos.py", "neuralnmf/tensor/numpy_streams.py")


def test_the_uniform_draw_is_defined_once():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel == "neuralnmf/initialization.py" or rel.startswith(DRAWS_DATA):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "attr", getattr(node.func, "id", None))
                if name in UNIFORM_DRAWS:
                    found.append(f"{rel}:{node.lineno}: {ast.unparse(node)}")
    assert not found, "uniform draws outside initialization.uniform:\n" + "\n".join(found)
    assert "def uniform(" in (PACKAGE / "initialization.py").read_text()
