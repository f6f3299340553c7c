# quire — what a person types. CMake does the work; see CMakeLists.txt.
MAKEFLAGS += --no-print-directory
#   make            install missing Debian packages, build (Debug, ASan+UBSan)
#   make test       build and run every test (short mode of slow tests)
#   make run        build Release and run the main job
#   make bench      build Release and run the benchmarks against peers
#   make fuzz       build libFuzzer harnesses with clang and fuzz each a while
#   make tsan       build with ThreadSanitizer and run the threaded tests
#   make test-slow  the long mode of the slow tests
#   make format     clang-format every C file
JOBS    ?= $(shell nproc)
DEBUG   := build/debug
RELEASE := build/release
TSAN    := build/tsan
FUZZ    := build/fuzz
CMAKE_FLAGS ?=
FUZZ_SECONDS ?= 60

.PHONY: all deps debug release test test-slow run bench fuzz tsan format clean

all: debug

deps:
	@scripts/deps.sh

# Configure runs every time (about a second) so new component directories
# under src/, tests/, bench/ and fuzz/ are always picked up.
debug: deps
	cmake -S . -B $(DEBUG) -DCMAKE_BUILD_TYPE=Debug $(CMAKE_FLAGS) >/dev/null
	cmake --build $(DEBUG) -j$(JOBS)

release: deps
	cmake -S . -B $(RELEASE) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) >/dev/null
	cmake --build $(RELEASE) -j$(JOBS)

test: debug
	cd $(DEBUG) && ctest --output-on-failure -j$(JOBS) --timeout 600

test-slow: debug
	cd $(DEBUG) && QUIRE_TEST_LONG=1 ctest --output-on-failure -j$(JOBS) -L slow

tsan: deps
	cmake -S . -B $(TSAN) -DCMAKE_BUILD_TYPE=Debug -DQUIRE_SANITIZE=thread -DQUIRE_BENCH=OFF $(CMAKE_FLAGS) >/dev/null
	cmake --build $(TSAN) -j$(JOBS)
	cd $(TSAN) && TSAN_OPTIONS=halt_on_error=1 ctest --output-on-failure -j$(JOBS) -L tsan

run: release
	@scripts/run.sh $(RELEASE)

bench: release
	@scripts/bench.sh $(RELEASE)

fuzz: deps
	CC=clang cmake -S . -B $(FUZZ) -DCMAKE_BUILD_TYPE=Debug -DQUIRE_FUZZ=ON -DQUIRE_BENCH=OFF \
	  -DQUIRE_FUZZ_SECONDS=$(FUZZ_SECONDS) >/dev/null
	cmake --build $(FUZZ) -j$(JOBS)
	cmake --build $(FUZZ) --target fuzz_all

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build
