# SPDX-License-Identifier: MIT
# Everyday commands. Each one installs missing Debian packages first.
BUILD ?= build
JOBS ?= 2
CMAKE_FLAGS ?=
# Debian's python3, which the setup installs python3-pytest for.
PYTHON ?= $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || echo python3)

FUZZ_SECONDS ?= 60
# enqueue -> start samples per run of make bench-peers
SAMPLES ?= 1000
FUZZ_BUILD ?= build-fuzz

.PHONY: all deps build test sanitize tsan fuzz demo bench bench-peers install uninstall clean

all: build

deps:
	@bash scripts/setup.sh

build: deps
	cmake -S . -B $(BUILD) -DOMNIQ_WERROR=ON $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j$(JOBS)

# The whole test suite.
test: build
	ctest --test-dir $(BUILD) --output-on-failure -j$(JOBS)

# The whole suite under AddressSanitizer + UndefinedBehaviorSanitizer.
sanitize: deps
	$(MAKE) test BUILD=build-asan CMAKE_FLAGS="-DCMAKE_BUILD_TYPE=Debug -DOMNIQ_SANITIZE=address,undefined"

# The whole suite under ThreadSanitizer.
tsan: deps
	$(MAKE) test BUILD=build-tsan CMAKE_FLAGS="-DCMAKE_BUILD_TYPE=Debug -DOMNIQ_SANITIZE=thread"

# Every fuzz target (fuzz/) for FUZZ_SECONDS each, built with clang and
# ASan+UBSan in $(FUZZ_BUILD); fails at the first fault found.
fuzz: deps
	@command -v clang >/dev/null || { echo "make fuzz: needs clang (scripts/setup.sh installs it)" >&2; exit 1; }
	CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=Debug -DOMNIQ_FUZZ=ON \
	  -DOMNIQ_SANITIZE=address,undefined -DBUILD_TESTING=OFF -DOMNIQ_BUILD_CONTRACT=OFF
	cmake --build $(FUZZ_BUILD) -j$(JOBS) --target fuzz_targets
	bash fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

# OmniQ's main job: a worker pool running a mix of tasks on ./omniq-data.
demo: build
	./$(BUILD)/demo

bench: build
	@for b in $(BUILD)/bench_*; do echo "== $$b"; ./$$b || exit 1; done
	@echo "== bench/bench_python.py"
	@OMNIQ_LIBRARY=$(BUILD)/libomniq.so PYTHONPATH=python $(PYTHON) bench/bench_python.py $(BUILD)

# OmniQ beside beanstalkd and Redis (Debian's, installed by setup.sh peers),
# started on loopback for the run and stopped after it (bench/peers/run.sh).
# Not part of `make test` or CI.
bench-peers:
	@bash scripts/setup.sh peers
	cmake -S . -B $(BUILD) -DOMNIQ_WERROR=ON -DOMNIQ_BENCH_PEERS=ON $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j$(JOBS) --target bench_peers
	bash bench/peers/run.sh $(BUILD) $(SAMPLES)

install: build
	cmake --install $(BUILD) $(if $(PREFIX),--prefix $(PREFIX))

# Removes what the last `make install` from $(BUILD) installed.
uninstall:
	cmake --build $(BUILD) --target uninstall

clean:
	rm -rf build build-asan build-tsan build-fuzz
