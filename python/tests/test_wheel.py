"""The binary wheel of `make wheel` works on its own: installed into a fresh virtual environment, with
the Swift toolchain off PATH and nothing of the checkout importable, it runs the README's Python
examples, and its library loads OpenBLAS, LAPACKE and their runtime libraries from the wheel, never
from the system. The sdist carries the Swift package, to build from source where Swift is present.

`make test` builds the wheel (`make wheel`) before running this suite; without a wheel in dist/ the
tests skip, which `make test` turns into a failure (conftest.py)."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from readme_examples import python_blocks, section

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "python" / "sgdnoise"
LIB = ROOT / ".build" / "release" / "libsgdnoise.so"
WHEEL_NAME = re.compile(r"sgdnoise-(?P<version>[^-]+)-py3-none-manylinux_\d+_\d+_x86_64\.whl")
# What the installed library may load from the system: glibc's family, the C++ and GCC runtimes.
SYSTEM = {"linux-vdso.so.1", "ld-linux-x86-64.so.2", "libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2",
          "librt.so.1", "libstdc++.so.6", "libgcc_s.so.1"}
# Libraries that must come from the wheel when they are loaded at all (numpy's own OpenBLAS comes
# from numpy's wheel, also inside the virtual environment).
MUST_BE_BUNDLED = re.compile(r"blas|lapack|gfortran|quadmath|tmglib|swift|sgdnoise")


@pytest.fixture(scope="module")
def wheel() -> Path:
    found = sorted((ROOT / "dist").glob("sgdnoise-*.whl"))
    if not found:
        pytest.skip("no wheel in dist/: run `make wheel`")
    assert len(found) == 1, f"make wheel leaves one wheel in dist/, found {[w.name for w in found]}"
    return found[0]


def test_the_wheel_is_tagged_for_every_python3_on_manylinux(wheel):
    from sgdnoise._version import __version__

    match = WHEEL_NAME.fullmatch(wheel.name)
    assert match and match["version"] == __version__, wheel.name
    with zipfile.ZipFile(wheel) as z:
        metadata = z.read(f"sgdnoise-{__version__}.dist-info/WHEEL").decode()
    tag = wheel.name.removeprefix(f"sgdnoise-{__version__}-").removesuffix(".whl")
    assert f"Tag: {tag}\n" in metadata and "Root-Is-Purelib: false" in metadata, metadata


def test_the_wheel_bundles_the_checkouts_library_with_openblas_and_lapacke(wheel):
    from elftools.elf.elffile import ELFFile  # pyelftools, auditwheel's dependency

    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        bundled = [n.removeprefix("sgdnoise.libs/") for n in names
                   if n.startswith("sgdnoise.libs/") and not n.endswith("/")]
        libraries = [n for n in names if re.search(r"\.so(\.|$)", n)]
        assert set(libraries) == {"sgdnoise/libsgdnoise.so"} | {f"sgdnoise.libs/{b}" for b in bundled}, libraries
        for stem in ("libopenblas", "liblapacke", "liblapack", "libgfortran", "libquadmath"):
            assert any(b.startswith(stem) for b in bundled), (stem, bundled)
        # Not stale: the checkout's Python modules, and its library (auditwheel only relinks it).
        sources = {p.name: p.read_bytes() for p in PACKAGE.iterdir() if p.suffix == ".py" or p.name == "py.typed"}
        shipped = {n.split("/")[1]: z.read(n) for n in names if re.fullmatch(r"sgdnoise/[^/]+\.(py|typed)", n)}
        assert shipped == sources, "dist/ holds a stale wheel: run `make wheel`"
        shipped_library = io.BytesIO(z.read("sgdnoise/libsgdnoise.so"))
        with open(LIB, "rb") as built:
            text = [ELFFile(f).get_section_by_name(".text").data() for f in (shipped_library, built)]
        assert text[0] == text[1], f"the wheel's libsgdnoise.so is not {LIB}: run `make wheel`"


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory):
    """A fresh virtual environment (no system site-packages) with the wheel installed (numpy comes
    from PyPI), and the environment its programs run in: no Swift toolchain on PATH, nothing of the
    checkout on PYTHONPATH, no SGDNOISE_LIBRARY, no loader path."""
    home = tmp_path_factory.mktemp("venv").resolve()
    subprocess.run([sys.executable, "-m", "venv", str(home)], check=True)
    python = home / "bin" / "python"
    swift = shutil.which("swift")
    toolchains = {str(Path(swift).resolve().parent), str(Path(swift).parent)} if swift else set()
    path = [str(home / "bin")] + [p for p in os.environ.get("PATH", "").split(os.pathsep)
                                  if p and p not in toolchains and "/opt/swift" not in p]
    env = {k: v for k, v in os.environ.items()
           if k not in {"PYTHONPATH", "PYTHONHOME", "SGDNOISE_LIBRARY", "LD_LIBRARY_PATH", "LD_PRELOAD"}}
    env.update(PATH=os.pathsep.join(path), VIRTUAL_ENV=str(home))
    assert shutil.which("swift", path=env["PATH"]) is None
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel)],
                   check=True, env=env, timeout=600)
    site = subprocess.run([str(python), "-I", "-c", "import sysconfig; print(sysconfig.get_path('platlib'))"],
                          check=True, env=env, capture_output=True, text=True).stdout.strip()
    return {"python": python, "site": Path(site).resolve(), "env": env, "cwd": home}


def run(venv, code: str) -> str:
    """Runs ``code`` in the virtual environment's Python, isolated (-I) and outside the checkout."""
    out = subprocess.run([str(venv["python"]), "-I", "-c", code], cwd=venv["cwd"], env=venv["env"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_the_installed_library_resolves_nothing_outside_the_wheel_but_the_c_runtime(venv):
    library = venv["site"] / "sgdnoise" / "libsgdnoise.so"
    ldd = subprocess.run(["ldd", str(library)], env=venv["env"], capture_output=True, text=True, check=True).stdout
    assert "not found" not in ldd, ldd
    resolved = dict(re.findall(r"^\s*(\S+)(?: => (\S+))? \(0x", ldd, flags=re.M))
    outside = {name: path for name, path in resolved.items()
               if not Path(path or name).resolve().is_relative_to(venv["site"] / "sgdnoise.libs")
               and Path(name).name not in SYSTEM}
    assert not outside, ldd
    inside = [name for name in resolved if name not in SYSTEM and Path(name).name not in SYSTEM]
    for stem in ("libopenblas", "liblapacke", "libgfortran"):
        assert any(n.startswith(stem) for n in inside), ldd


PROBE = """
import json, sgdnoise, sgdnoise._lib
maps = sorted({line.split()[-1] for line in open("/proc/self/maps") if ".so" in line.rsplit("/", 1)[-1]})
print("PROBE", json.dumps({"package": sgdnoise.__file__, "library": sgdnoise._lib.lib._name, "maps": maps}))
"""


def test_the_readme_example_runs_from_the_wheel_alone_as_from_the_checkout(venv):
    code = python_blocks("## Python")[0]
    printed, probe = run(venv, code + PROBE).split("PROBE ")
    probe = json.loads(probe)
    site = venv["site"]
    assert Path(probe["package"]).resolve() == site / "sgdnoise" / "__init__.py", probe["package"]
    assert Path(probe["library"]).resolve() == site / "sgdnoise" / "libsgdnoise.so", probe["library"]
    mapped = [Path(m) for m in probe["maps"]]
    assert any(m.parent == site / "sgdnoise.libs" and m.name.startswith("libopenblas") for m in mapped), mapped
    foreign = [m for m in mapped if MUST_BE_BUNDLED.search(m.name) and not m.is_relative_to(venv["cwd"])]
    assert not foreign, foreign
    # The same numbers as the checkout's package and library print.
    env = dict(os.environ, PYTHONPATH=str(ROOT / "python"), SGDNOISE_LIBRARY=str(LIB))
    checkout = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert checkout.returncode == 0, checkout.stderr[-3000:]
    assert printed == checkout.stdout and printed.count("\n") >= 4, (printed, checkout.stdout)


def test_the_readme_learning_curve_example_prints_what_the_readme_shows_from_the_wheel(venv):
    printed = run(venv, python_blocks("### Learning curves under schedules")[0]).strip().splitlines()
    shown = section("### Learning curves under schedules")
    assert len(printed) == 2 and all(line in shown for line in printed), printed


def test_the_sdist_carries_the_swift_package_and_builds_it_there(tmp_path):
    """The sdist holds every tracked file of the Swift package under swift/, and its build runs
    `swift build` there (a stand-in `swift` on PATH records where; a real build from the sdist
    takes minutes)."""
    subprocess.run([sys.executable, "setup.py", "-q", "egg_info", "-e", str(tmp_path), "sdist", "-d", str(tmp_path)],
                   cwd=ROOT / "python", check=True, capture_output=True)
    (sdist,) = tmp_path.glob("sgdnoise-*.tar.gz")
    with tarfile.open(sdist) as tar:
        tar.extractall(tmp_path, filter="data")
    top = tmp_path / sdist.name.removesuffix(".tar.gz")
    tracked = subprocess.run(["git", "ls-files", "Package.swift", "Sources", "Tests"], cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout.split()
    assert "Package.swift" in tracked and any(t.startswith("Sources/SGDNoiseCABI/") for t in tracked)
    assert all((top / "swift" / t).read_bytes() == (ROOT / t).read_bytes() for t in tracked)
    assert (top / "sgdnoise" / "_lib.py").is_file() and (top / "setup.py").is_file()

    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "swift").write_text('#!/bin/sh\npwd -P > "$SWIFT_CALLED_IN"\nmkdir -p .build/release\n'
                                'echo built > .build/release/libsgdnoise.so\n')
    (fake / "swift").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "SGDNOISE_LIBRARY"}
    env.update(PATH=f"{fake}{os.pathsep}{os.environ['PATH']}", SWIFT_CALLED_IN=str(tmp_path / "called"))
    subprocess.run([sys.executable, "setup.py", "-q", "build_py", "-d", str(tmp_path / "lib")], cwd=top, env=env,
                   check=True, capture_output=True)
    assert Path((tmp_path / "called").read_text().strip()) == (top / "swift").resolve()
    assert (tmp_path / "lib" / "sgdnoise" / "libsgdnoise.so").read_text() == "built\n"
