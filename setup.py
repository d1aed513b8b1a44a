"""Builds the one compiled extension, neuralnmf._C, from csrc/.

CPU sources (csrc/*.cpp, csrc/cpu/*.cpp) are always compiled. CUDA sources (csrc/cuda/*.cu) are compiled
only when the installed torch was built with CUDA, nvcc is found (CUDA_HOME) and either a GPU is visible or
FORCE_CUDA=1. Environment switches:

    FORCE_CUDA=1       build the CUDA sources without a visible GPU (set TORCH_CUDA_ARCH_LIST, e.g. "9.0")
    FORCE_ONLY_CPU=1   never build the CUDA sources
    DEBUG=1            -O0 -g, assertions on
    NVCC_FLAGS=...     extra flags for nvcc
    NEURALNMF_CUDA_PACK=1|2            the layout of the k <= 32 CUDA kernels: a 32-lane group per column, or
                                       two columns per warp (default: 2 for float32 results, 1 for float64)
    NEURALNMF_CUDA_MIN_BLOCKS=1|3|4|6  their register budget, as launch bounds (default 4)

The last two are compile-time choices for benchmarks (csrc/cuda/group_kernels.cuh, benchmarks/bench_nnls_gpu.py);
every choice gives the same results.

Build habits taken from pytorch/extension-cpp and pytorch_scatter:

* OpenMP only where torch itself runs on OpenMP (``torch.__config__.parallel_info()``) and the platform's compiler
  takes -fopenmp (not Apple's clang); otherwise ``at::parallel_for`` runs on torch's own thread pool without it.
* One library for every Python version from ``requires-python`` on (pyproject.toml, read here: >= 3.10) with
  torch >= 2.6: the extension uses only TORCH_LIBRARY registrations and the limited Python C API (an empty
  module), no pybind11. setuptools' ``py_limited_api`` only names the file ``_C.abi3.so``; the build itself defines
  Py_LIMITED_API for that version (0x030A0000) and tags the wheel for it (cp310-abi3), so the two agree. With
  older torch it is built per Python version, as before.
* The torch and CUDA versions it was built for are compiled into ``neuralnmf._C`` (``torch_version``,
  ``cuda_version``); ``neuralnmf/_extension.py`` refuses a build that does not match the installed torch.

Install with `pip install --no-build-isolation -e .` so the build uses the torch you already have.
"""
import glob
import os
import re
import sys

import torch
from setuptools import setup
from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension

ROOT = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.join("csrc")
LIMITED_API = tuple(int(p) for p in torch.__version__.split("+")[0].split(".")[:2]) >= (2, 6)


def limited_api(pyproject: str) -> tuple[str, str]:
    """(wheel tag, Py_LIMITED_API value) for the oldest Python of pyproject's requires-python: ("cp310",
    "0x030A0000") for ">=3.10". The one place the limited API's version comes from."""
    found = re.search(r'^requires-python\s*=\s*">=\s*3\.(\d+)"', pyproject, re.M)
    if found is None:
        raise SystemExit('pyproject.toml: requires-python must read ">=3.N"')
    minor = int(found.group(1))
    return f"cp3{minor}", f"0x03{minor:02X}0000"


with open(os.path.join(ROOT, "pyproject.toml"), encoding="utf-8") as _f:
    WHEEL_TAG, PY_LIMITED_API = limited_api(_f.read())


def _flag(name):
    return os.getenv(name, "0") == "1"


def _cuda_decision():
    if _flag("FORCE_ONLY_CPU"):
        return False, "FORCE_ONLY_CPU=1"
    if torch.version.cuda is None:
        return False, f"torch {torch.__version__} has no CUDA"
    if CUDA_HOME is None:
        return False, "nvcc not found (CUDA_HOME unset)"
    if not (torch.cuda.is_available() or _flag("FORCE_CUDA")):
        return False, "no GPU visible and FORCE_CUDA is not 1"
    return True, f"torch CUDA {torch.version.cuda}, CUDA_HOME={CUDA_HOME}"


# Compile-time choices of the CUDA kernels (see the docstring): name -> allowed values.
CUDA_CHOICES = {"NEURALNMF_CUDA_PACK": ("1", "2"), "NEURALNMF_CUDA_MIN_BLOCKS": ("1", "3", "4", "6")}


def _cuda_choices():
    """-D flags for nvcc from the CUDA_CHOICES set in the environment at build time."""
    flags = []
    for name, allowed in CUDA_CHOICES.items():
        value = os.getenv(name, "")
        if value and value not in allowed:
            raise SystemExit(f"{name}={value}: expected one of {', '.join(allowed)} (or unset for the default)")
        if value:
            flags.append(f"-D{name}={value}")
    return flags


def _openmp():
    """(cxx flags, link flags, description): -fopenmp where torch runs on OpenMP and the compiler has it."""
    info = torch.__config__.parallel_info()
    if "backend: OpenMP" not in info or "OpenMP not found" in info:
        return [], [], "no OpenMP (torch's parallel backend is not OpenMP)"
    if sys.platform == "darwin":  # Apple's clang has no -fopenmp
        return [], [], "no OpenMP (macOS)"
    if os.name == "nt":
        return ["/openmp"], [], "OpenMP"
    return ["-fopenmp"], ["-fopenmp"], "OpenMP"


def get_extensions():
    debug = _flag("DEBUG")
    with_cuda, reason = _cuda_decision()
    sources = sorted(glob.glob(os.path.join(CSRC, "*.cpp")) + glob.glob(os.path.join(CSRC, "cpu", "*.cpp")))
    cuda_sources = sorted(glob.glob(os.path.join(CSRC, "cuda", "*.cu")))
    if with_cuda and not cuda_sources:
        with_cuda, reason = False, "no CUDA sources in csrc/cuda"
    omp_cxx, omp_link, omp = _openmp()
    # e.g. "NEURALNMF_CUDA_PACK=1,NEURALNMF_CUDA_MIN_BLOCKS=6" (no spaces: it travels inside a -D flag)
    choices = ",".join(flag[2:] for flag in _cuda_choices()) if with_cuda else ""
    cxx = ["-O0", "-g"] if debug else ["-O3", "-DNDEBUG"]
    cxx += (["-std=c++17"] if os.name != "nt" else ["/std:c++17"]) + omp_cxx
    # what the build is for, compiled into neuralnmf._C (C++ sources only: nvcc never sees the quotes)
    cxx += [f'-DNEURALNMF_TORCH_VERSION="{torch.__version__}"',
            f'-DNEURALNMF_CUDA_VERSION="{torch.version.cuda if with_cuda else ""}"',
            f'-DNEURALNMF_CUDA_CHOICES="{choices}"']
    extra = {"cxx": cxx}
    define_macros = [("Py_LIMITED_API", PY_LIMITED_API)] if LIMITED_API else []
    extension = CppExtension
    if with_cuda:
        extension = CUDAExtension
        sources += cuda_sources
        nvcc = ["-O0", "-g", "-G"] if debug else ["-O3", "-DNDEBUG"]
        user = os.getenv("NVCC_FLAGS", "").split()
        nvcc += ["--expt-relaxed-constexpr"]
        if not any(f.startswith("-std=") for f in user):  # the C++ standard of cxx (torch would pick its own)
            nvcc.append("-std=c++17")
        nvcc += _cuda_choices() + user
        extra["nvcc"] = nvcc
        define_macros.append(("WITH_CUDA", None))
    print(
        f"neuralnmf build: {'CPU + CUDA' if with_cuda else 'CPU only'} ({reason}); {omp}; "
        f"{f'one library for every Python from {WHEEL_TAG} on (limited API)' if LIMITED_API else 'per Python version'}; "
        f"{'debug' if debug else 'release'}; torch {torch.__version__}; "
        f"TORCH_CUDA_ARCH_LIST={os.getenv('TORCH_CUDA_ARCH_LIST', '(torch default)')}"
        + (f"; {choices}" if choices else "")
    )
    return [
        extension(
            "neuralnmf._C",
            sources,
            include_dirs=[os.path.join(ROOT, CSRC)],
            define_macros=define_macros,
            extra_compile_args=extra,
            extra_link_args=omp_link,
            py_limited_api=LIMITED_API,
        )
    ]


setup(
    ext_modules=get_extensions(),
    cmdclass={"build_ext": BuildExtension},
    options={"bdist_wheel": {"py_limited_api": WHEEL_TAG}} if LIMITED_API else {},
)
