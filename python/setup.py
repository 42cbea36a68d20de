"""Build hook: compile libsgdnoise.so from the Swift sources and bundle it in the wheel.

`pip install ./python` (from the repository root) runs `swift build -c release -Xswiftc
-static-stdlib -Xlinker --strip-debug --product sgdnoise` (the Makefile's flags) in the parent
directory and copies the library into the package, so the installed package needs no Swift toolchain at run time. Set SGDNOISE_LIBRARY to
an already-built libsgdnoise.so to bundle that file instead of building.
"""

import os
import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


class BuildWithSwift(build_py):
    def run(self):
        super().run()
        prebuilt = os.environ.get("SGDNOISE_LIBRARY")
        if prebuilt:
            library = Path(prebuilt)
        else:
            if not (ROOT / "Package.swift").is_file():
                raise RuntimeError(f"sgdnoise: no Package.swift in {ROOT}; build from the source checkout")
            subprocess.run(
                ["swift", "build", "-c", "release", "-Xswiftc", "-static-stdlib", "-Xlinker", "--strip-debug",
                 "--product", "sgdnoise"],
                cwd=ROOT, check=True)
            library = ROOT / ".build" / "release" / "libsgdnoise.so"
        target = Path(self.build_lib) / "sgdnoise" / "libsgdnoise.so"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(library, target)


class BinaryDistribution(Distribution):
    """The wheel carries a native library: tag it for this platform."""

    def has_ext_modules(self):
        return True


setup(cmdclass={"build_py": BuildWithSwift}, distclass=BinaryDistribution)
