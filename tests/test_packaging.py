"""The distribution's metadata agrees with itself: one version, a wheel tag and limited API that match
requires-python, optional dependencies as extras that the library can do without, py.typed, and the README's test
command is the one CI runs."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import neuralnmf

ROOT = Path(__file__).resolve().parent.parent
tomllib = pytest.importorskip("tomllib")  # Python >= 3.11 (requires-python is 3.10: then these tests are skipped)
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]


def test_the_version_is_written_once():
    assert "version" not in PROJECT and "version" in PROJECT["dynamic"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "neuralnmf._version.__version__"}
    tree = ast.parse((ROOT / "neuralnmf" / "_version.py").read_text())
    written = [node.value.value for node in tree.body if isinstance(node, ast.Assign)
               and [t.id for t in node.targets if isinstance(t, ast.Name)] == ["__version__"]]
    assert written == [neuralnmf.__version__]
    others = [p.relative_to(ROOT).as_posix() for p in (ROOT / "neuralnmf").rglob("*.py")
              if p.name != "_version.py" and re.search(r"^__version__\s*=", p.read_text(), re.M)]
    assert not others, f"__version__ written again in {others}"


def test_the_installed_metadata_has_the_version():
    try:
        installed = importlib.metadata.version("torch-neuralnmf")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("torch-neuralnmf is not installed (pip install -e .)")
    assert installed == neuralnmf.__version__, ("the installed metadata is of another version: reinstall "
                                                "(pip install --no-build-isolation -e .)")


def test_the_command_line_prints_the_version():
    out = subprocess.run([sys.executable, "-m", "neuralnmf", "--version"], capture_output=True, text=True,
                         timeout=120, cwd=ROOT)
    assert out.returncode == 0 and out.stdout.strip() == f"neuralnmf {neuralnmf.__version__}", out.stderr


def _limited_api():
    """setup.py's limited_api function, run on its own (setup.py itself builds when imported)."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    fn = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "limited_api")
    namespace = {"re": re}
    exec(compile(ast.Module([fn], []), "setup.py", "exec"), namespace)
    return namespace["limited_api"]


def test_the_wheel_tag_and_limited_api_follow_requires_python():
    minor = int(re.fullmatch(r">=3\.(\d+)", PROJECT["requires-python"]).group(1))
    assert _limited_api()((ROOT / "pyproject.toml").read_text()) == (f"cp3{minor}", f"0x03{minor:02X}0000")
    assert _limited_api()('requires-python = ">=3.9"\n') == ("cp39", "0x03090000")
    setup = (ROOT / "setup.py").read_text()
    assert re.search(r'"py_limited_api":\s*WHEEL_TAG', setup) and '("Py_LIMITED_API", PY_LIMITED_API)' in setup
    assert not re.search(r'py_limited_api"?\s*[:=]\s*"cp', setup), "a wheel tag written by hand in setup.py"


def test_optional_dependencies_are_extras_and_the_tests_install_them():
    required = " ".join(PROJECT["dependencies"])
    extras = PROJECT["optional-dependencies"]
    for package, extra in (("matplotlib", "plot"), ("tqdm", "progress"), ("tensorly", "tensor")):
        assert package not in required
        assert any(d.startswith(package) for d in extras[extra])
    assert "torch-neuralnmf[plot,progress,tensor,text]" in extras["all"]
    assert "torch-neuralnmf[all]" in extras["test"] and any(d.startswith("ruff") for d in extras["test"])


def test_the_library_runs_without_its_optional_dependencies():
    code = "\n".join([
        "import sys",
        "for name in ('matplotlib', 'tqdm', 'tensorly'):",
        "    sys.modules[name] = None  # makes their import fail",
        "import torch, neuralnmf, neuralnmf.plot, neuralnmf.cli, neuralnmf.tensor",
        "from neuralnmf.epochs import progress_bar",
        "assert progress_bar(3, None, 'epochs') is None",
        "model = neuralnmf.NeuralNMF(6, (3, 2), data=torch.rand(10, 6, dtype=torch.float64))",
        "neuralnmf.fit(model, torch.rand(10, 6, dtype=torch.float64), epochs=2)",
        "for call in (lambda: progress_bar(3, True, 'epochs'),",
        "             lambda: neuralnmf.plot.plot_loss_curves({'loss': [1.0, 0.5]})):",
        "    try:",
        "        call()",
        "    except ImportError as e:",
        "        print(e)",
    ])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    messages = out.stdout.strip().splitlines()
    assert len(messages) == 2, out.stdout
    assert "tqdm" in messages[0] and "pip install 'torch-neuralnmf[progress]'" in messages[0]
    assert "matplotlib" in messages[1] and "pip install 'torch-neuralnmf[plot]'" in messages[1]


def test_the_package_is_typed():
    assert (ROOT / "neuralnmf" / "py.typed").is_file()
    assert "py.typed" in PYPROJECT["tool"]["setuptools"]["package-data"]["neuralnmf"]


def test_the_readme_test_command_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    commands = [line for line in readme.splitlines() if line.startswith("pip install") and "pytest" in line]
    assert len(commands) == 1 and commands[0] in ci.splitlines(), commands
    assert "ruff check ." in commands[0]


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="needs a git checkout")
def test_the_walkthrough_folder_is_ignored_by_git():
    folder = re.search(r"--out (\S+)", (ROOT / "docs" / "real_corpus.md").read_text()).group(1)
    out = subprocess.run(["git", "check-ignore", "-q", f"{folder}/unsup/model.pt"], cwd=ROOT)
    assert out.returncode == 0, f"{folder}/ (docs/real_corpus.md's output) is not in .gitignore"
