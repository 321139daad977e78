# respgate front door. On a fresh Debian 12 machine:
#   make run    install what is missing, build, start the local sandbox behind respgate
#   make test   install what is missing, build with ASan+UBSan, run every test
.PHONY: all deps build test run bench format clean

BUILD      ?= build
TEST_BUILD ?= build-asan
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)

# Everything the build, the tests and the sandbox need, from Debian.
DEPS := build-essential cmake pkg-config libevent-dev libjansson-dev libhiredis-dev \
        libcriterion-dev redis-server redis-sentinel redis-tools python3 python3-redis \
        redis-redisearch python3-jsonschema python3-prometheus-client
BENCH_DEPS := nutcracker haproxy

all: build

# Installs only the packages that are missing; as root, or through sudo.
define install
	@missing=""; for p in $(1); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  sudo=""; [ "$$(id -u)" -eq 0 ] || sudo="sudo"; \
	  $$sudo apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing \
	    >/dev/null || exit 1; \
	fi
endef

deps:
	$(call install,$(DEPS))

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DRG_TESTS=OFF >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

test: deps
	cmake -S . -B $(TEST_BUILD) -DCMAKE_BUILD_TYPE=Debug -DRG_SANITIZE=ON >/dev/null
	cmake --build $(TEST_BUILD) -j $(JOBS)
	cd $(TEST_BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 600

run: build
	tests/sandbox.sh $(BUILD)/respgate config/sandbox.json

bench: build
	$(call install,$(BENCH_DEPS))
	RESPGATE=$(BUILD)/respgate tests/bench/bench.sh

format:
	clang-format -i proxy/*.c proxy/*.h tests/unit/*.c

clean:
	rm -rf $(BUILD) $(TEST_BUILD)
