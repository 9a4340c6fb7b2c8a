# flashlib — the two commands:  make demo   and   make test
# Everything else (packages, virtual environment, build) happens on the way.
SHELL := /bin/bash
JOBS  ?= $(shell nproc 2>/dev/null || echo 2)
PY    := .venv/bin/python
BUILD ?= build
LIB   := $(abspath $(BUILD))/lib/libflashlib.so
export FLASHLIB_LIBRARY := $(LIB)

.PHONY: all bootstrap configure build test test-c test-python test-cli format format-check demo asan bench-cpu clean

all: build

bootstrap:
	@bash scripts/bootstrap.sh

configure: bootstrap
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null

build: configure
	@cmake --build $(BUILD) -j $(JOBS)

test: build format-check test-c test-cli test-python
	@echo "make test: all suites passed"

test-c:
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-cli:
	@if [ -f tests/cli/test_cli.sh ]; then bash tests/cli/test_cli.sh $(BUILD)/bin/flashlib; fi

test-python:
	@PYTHONPATH=python $(PY) -m pytest tests/python -q -x -p no:cacheprovider

# Generated files (the calibration table) are not formatted.
FORMAT_FILES = $(shell git ls-files 'include/*.h' 'src/*.c' 'src/*.h' 'src/*.inc' 'tools/*.c' 'tools/*.h' \
                 'tests/*.c' 'tests/*.h' 'bench/*.c' 2>/dev/null | grep -v 'calib_data.inc')
format:
	@clang-format -i $(FORMAT_FILES)

format-check:
	@if command -v clang-format >/dev/null; then \
	  clang-format --dry-run -Werror $(FORMAT_FILES) && echo "format: ok"; \
	else echo "format: clang-format not installed, skipped"; fi

demo: build
	@PYTHONPATH=python $(PY) examples/demo.py

# C tests under AddressSanitizer + UBSan (CPU build).
asan: bootstrap
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DFL_SANITIZE=ON -DFL_WITH_CUDA=OFF >/dev/null
	@cmake --build build-asan -j $(JOBS) >/dev/null
	@cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  LSAN_OPTIONS=suppressions=$(abspath tests/lsan.supp) ctest --output-on-failure

bench-cpu: build
	@PYTHONPATH=python $(PY) bench/cpu/bench_kmeans_cpu.py
	@PYTHONPATH=python $(PY) bench/cpu/bench_pca_cpu.py

clean:
	@rm -rf $(BUILD) build-asan
