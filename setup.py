"""Builds the one compiled extension, neuralnmf._C, from csrc/.

CPU sources (csrc/*.cpp, csrc/cpu/*.cpp) are always compiled. CUDA sources (csrc/cuda/*.cu) are compiled
only when the installed torch was built with CUDA, nvcc is found (CUDA_HOME) and either a GPU is visible or
FORCE_CUDA=1. Environment switches:

    FORCE_CUDA=1       build the CUDA sources without a visible GPU (set TORCH_CUDA_ARCH_LIST, e.g. "9.0")
    FORCE_ONLY_CPU=1   never build the CUDA sources
    DEBUG=1            -O0 -g, assertions on
    NVCC_FLAGS=...     extra flags for nvcc

Install with `pip install --no-build-isolation -e .` so the build uses the torch you already have.
"""
import glob
import os

import torch
from setuptools import setup
from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension

ROOT = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.join("csrc")


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


def get_extensions():
    debug = _flag("DEBUG")
    with_cuda, reason = _cuda_decision()
    sources = sorted(glob.glob(os.path.join(CSRC, "*.cpp")) + glob.glob(os.path.join(CSRC, "cpu", "*.cpp")))
    cuda_sources = sorted(glob.glob(os.path.join(CSRC, "cuda", "*.cu")))
    if with_cuda and not cuda_sources:
        with_cuda, reason = False, "no CUDA sources in csrc/cuda"
    cxx = ["-O0", "-g"] if debug else ["-O3", "-DNDEBUG"]
    cxx += ["-std=c++17", "-fopenmp"] if os.name != "nt" else ["/std:c++17", "/openmp"]
    extra = {"cxx": cxx}
    define_macros = []
    extension = CppExtension
    if with_cuda:
        extension = CUDAExtension
        sources += cuda_sources
        nvcc = ["-O0", "-g", "-G"] if debug else ["-O3", "-DNDEBUG"]
        user = os.getenv("NVCC_FLAGS", "").split()
        nvcc += ["--expt-relaxed-constexpr"]
        if not any(f.startswith("-std=") for f in user):  # the C++ standard of cxx (torch would pick its own)
            nvcc.append("-std=c++17")
        nvcc += user
        extra["nvcc"] = nvcc
        define_macros.append(("WITH_CUDA", None))
    print(
        f"neuralnmf build: {'CPU + CUDA' if with_cuda else 'CPU only'} ({reason}); "
        f"{'debug' if debug else 'release'}; torch {torch.__version__}; "
        f"TORCH_CUDA_ARCH_LIST={os.getenv('TORCH_CUDA_ARCH_LIST', '(torch default)')}"
    )
    return [
        extension(
            "neuralnmf._C",
            sources,
            include_dirs=[os.path.join(ROOT, CSRC)],
            define_macros=define_macros,
            extra_compile_args=extra,
            extra_link_args=["-fopenmp"] if os.name != "nt" else [],
        )
    ]


setup(ext_modules=get_extensions(), cmdclass={"build_ext": BuildExtension})
