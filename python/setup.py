"""Build hook: compile libsgdnoise.so from the Swift sources and bundle it in the wheel.

`pip install ./python` (from the repository root) runs `swift build -c release -Xswiftc
-static-stdlib -Xlinker --strip-debug --product sgdnoise` (the Makefile's flags) in the Swift
package — the parent directory in a checkout, `swift/` in an sdist, which carries a copy of it — and
copies the library into the package, so the installed package needs no Swift toolchain at run time
(it still loads the system's OpenBLAS and LAPACKE; `make wheel` bundles those too). Set
SGDNOISE_LIBRARY to an already-built libsgdnoise.so to bundle that file instead of building.
"""

import os
import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist
from setuptools.dist import Distribution

try:
    from setuptools.command.bdist_wheel import bdist_wheel  # setuptools >= 70.1
except ImportError:
    from wheel.bdist_wheel import bdist_wheel

HERE = Path(__file__).resolve().parent
# What `swift build` needs of the Swift package (Tests: Package.swift declares the test target).
SWIFT_PACKAGE = ("Package.swift", "Sources", "Tests")


def swift_root() -> Path:
    """The Swift package: the copy an sdist carries in swift/, else the checkout around python/."""
    bundled = HERE / "swift"
    return bundled if (bundled / "Package.swift").is_file() else HERE.parent


class BuildWithSwift(build_py):
    def run(self):
        super().run()
        prebuilt = os.environ.get("SGDNOISE_LIBRARY")
        if prebuilt:
            library = Path(prebuilt)
        else:
            root = swift_root()
            if not (root / "Package.swift").is_file():
                raise RuntimeError(f"sgdnoise: no Package.swift in {root}; build from the source checkout or the sdist")
            subprocess.run(
                ["swift", "build", "-c", "release", "-Xswiftc", "-static-stdlib", "-Xlinker", "--strip-debug",
                 "--product", "sgdnoise"],
                cwd=root, check=True)
            library = root / ".build" / "release" / "libsgdnoise.so"
        target = Path(self.build_lib) / "sgdnoise" / "libsgdnoise.so"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(library, target)


class SdistWithSwift(sdist):
    """The sdist carries the Swift package in swift/, so that it builds from source wherever the
    Swift toolchain and OpenBLAS/LAPACKE (libopenblas-dev liblapacke-dev) are installed."""

    def make_release_tree(self, base_dir, files):
        super().make_release_tree(base_dir, files)
        root = swift_root()
        for name in SWIFT_PACKAGE:
            source, target = root / name, Path(base_dir) / "swift" / name
            if source.is_dir():
                shutil.copytree(source, target, ignore=shutil.ignore_patterns(".*", "__pycache__"))
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)


class BinaryDistribution(Distribution):
    """The wheel carries a native library: build into platlib and tag it for this platform."""

    def has_ext_modules(self):
        return True


class PlatformWheel(bdist_wheel):
    """Tag the wheel py3-none-<platform>: the package loads its library through ctypes, so it
    serves every Python 3 (no extension module, no CPython ABI). `make wheel` then turns
    linux_x86_64 into manylinux_* with auditwheel, bundling OpenBLAS and LAPACKE."""

    def get_tag(self):
        return "py3", "none", super().get_tag()[2]


setup(cmdclass={"build_py": BuildWithSwift, "sdist": SdistWithSwift, "bdist_wheel": PlatformWheel},
      distclass=BinaryDistribution)
