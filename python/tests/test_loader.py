"""The loader (SGDNOISE_LIBRARY override, failure messages), the version, the public names, and the
doctests of the package's docstrings."""

from __future__ import annotations

import doctest
import importlib
import os
import pkgutil
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import sgdnoise

PACKAGE_DIR = Path(sgdnoise.__file__).resolve().parent
PYTHON_DIR = PACKAGE_DIR.parent


def run_python(code: str, **env_changes) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter with the package importable; ``None`` removes a
    variable from the environment."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PYTHON_DIR), env.get("PYTHONPATH")) if p)
    for key, value in env_changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)


IMPORT_AND_REPORT = """
try:
    import sgdnoise
except ImportError as exc:
    print("ImportError:", exc)
else:
    print("loaded", sgdnoise._lib.lib._name)
"""


def test_missing_library_path_raises_import_error_naming_it(tmp_path):
    missing = tmp_path / "does-not-exist" / "libsgdnoise.so"
    proc = run_python(IMPORT_AND_REPORT, SGDNOISE_LIBRARY=str(missing))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ImportError:"), proc.stdout
    assert str(missing) in proc.stdout
    assert "SGDNOISE_LIBRARY" in proc.stdout


def test_unloadable_file_raises_import_error_naming_it(tmp_path):
    bogus = tmp_path / "libsgdnoise.so"
    bogus.write_text("not a shared library\n")
    proc = run_python(IMPORT_AND_REPORT, SGDNOISE_LIBRARY=str(bogus))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ImportError:"), proc.stdout
    assert str(bogus) in proc.stdout


def test_override_loads_the_given_library(tmp_path):
    copy = tmp_path / "custom" / "libsgdnoise.so"
    copy.parent.mkdir()
    shutil.copy2(sgdnoise._lib.lib._name, copy)
    proc = run_python(IMPORT_AND_REPORT, SGDNOISE_LIBRARY=str(copy))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"loaded {copy}"


def test_default_lookup_finds_bundled_or_checkout_library():
    proc = run_python(IMPORT_AND_REPORT, SGDNOISE_LIBRARY=None)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("loaded "), proc.stdout
    path = Path(proc.stdout.split(" ", 1)[1].strip())
    candidates = [PACKAGE_DIR / "libsgdnoise.so", PYTHON_DIR.parent / ".build" / "release" / "libsgdnoise.so"]
    assert path in candidates and path.is_file()


def package_version_from_source() -> str:
    text = (PACKAGE_DIR / "_version.py").read_text()
    match = re.search(r'^__version__\s*=\s*["\']([^"\']+)["\']', text, re.MULTILINE)
    assert match, "_version.py must define __version__"
    return match.group(1)


def test_version_matches_version_file():
    expected = package_version_from_source()
    assert sgdnoise.__version__ == expected
    assert sgdnoise._lib.version() == expected  # the C library's sgdnoise_version()
    assert re.fullmatch(r"\d+\.\d+\.\d+([.-]?\w+)*", expected)


def test_public_names():
    for name in sgdnoise.__all__:
        assert hasattr(sgdnoise, name), name
    for name in ("noise_covariance", "stationary_covariance", "SGDNoiseError", "InvalidArgumentError",
                 "UnstableError", "NumericalError"):
        assert name in sgdnoise.__all__


def package_modules():
    names = ["sgdnoise"] + [f"sgdnoise.{m.name}" for m in pkgutil.iter_modules([str(PACKAGE_DIR)])]
    return [importlib.import_module(n) for n in names]


@pytest.mark.parametrize("module", package_modules(), ids=lambda m: m.__name__)
def test_doctests(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} doctests failed in {module.__name__}"


def test_public_functions_have_doctests():
    finder = doctest.DocTestFinder()
    for fn in (sgdnoise.noise_covariance, sgdnoise.stationary_covariance):
        tests = finder.find(fn)
        assert sum(len(t.examples) for t in tests) > 0, f"{fn.__name__} has no doctest"
