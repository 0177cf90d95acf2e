"""Build of abpool's one compiled module, the segments kernel (src/abpool/segments/_kernel.c).

Everything else is in pyproject.toml. The kernel is compiled when abpool is installed, so no process compiles
anything when it runs; building from source needs a C compiler and the Python headers.
"""

import platform
import sys

from setuptools import Extension, setup

# The kernel's sums may be reassociated (so the loops over segments vectorise) and errno is never read; NaN and
# infinity keep their meaning, which the kernel relies on to report a non-finite density to the sampler.
GCC_LIKE_FLAGS = [
    "-O3",
    "-std=c11",
    "-fno-math-errno",
    "-fno-trapping-math",
    "-fno-signed-zeros",
    "-fassociative-math",
    "-freciprocal-math",
    "-ffp-contract=fast",
]

compile_args: list[str] = [] if sys.platform == "win32" else list(GCC_LIKE_FLAGS)
define_macros: list[tuple[str, str | None]] = []
libraries: list[str] = []
if sys.platform.startswith("linux") and platform.machine() in ("x86_64", "AMD64"):
    # glibc's vector maths library: vector exp and log for the loops over segments (see _kernel.c).
    define_macros.append(("ABPOOL_LIBMVEC", "1"))
    libraries.append("mvec")

setup(
    ext_modules=[
        Extension(
            "abpool.segments._kernel",
            sources=["src/abpool/segments/_kernel.c"],
            extra_compile_args=compile_args,
            define_macros=define_macros,
            libraries=libraries,
        )
    ]
)
