# respgate front door. On a fresh Debian 12 machine:
#   make run    install what is missing, build, start the local sandbox behind respgate
#   make test   install what is missing, build with ASan+UBSan, run every test
#               (and each libFuzzer target briefly, when clang is here)
#   make fuzz   build the libFuzzer targets and run each for FUZZ_SECONDS
#   make tsan   build with ThreadSanitizer, run the threaded integration tests
# docs/testing.md tells what each runs and how long it takes.
.PHONY: all deps fuzz-deps node-deps build test fuzz tsan run bench format clean image container-test

BUILD      ?= build
TEST_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
TSAN_BUILD ?= build-tsan
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
# How long each libFuzzer target runs: in make fuzz, and in make test (ctest label fuzz).
FUZZ_SECONDS      ?= 60
FUZZ_TEST_SECONDS ?= 20
FUZZ_TARGETS := fuzz_request_framer fuzz_reply_framer fuzz_info fuzz_config

# CI (CI=true) builds with -Werror; users do not (their compiler may warn about
# what ours does not). make test RG_WERROR=ON turns it on by hand.
CI_ON     := $(filter true TRUE True 1 yes,$(CI))
RG_WERROR ?= $(if $(CI_ON),ON,OFF)

# Everything the build, the tests and the sandbox need, from Debian.
DEPS := build-essential cmake pkg-config libevent-dev libjansson-dev libhiredis-dev libssl-dev openssl \
        libcriterion-dev redis-server redis-sentinel redis-tools python3 python3-redis \
        redis-redisearch python3-jsonschema python3-prometheus-client
# Node.js for the client tests (make node-deps), when none is on PATH.
NODE_DEPS := nodejs npm
BENCH_DEPS := nutcracker haproxy valgrind
# libFuzzer: clang, and its runtime, which Debian ships apart (clang only recommends it).
FUZZ_DEPS := clang libclang-rt-14-dev

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

fuzz-deps:
	$(call install,$(FUZZ_DEPS))

# The Node.js clients of tests/integration/test_node_clients.py (ioredis, node-redis),
# as package-lock.json pins them; npm ci again only when the lock file is newer.
# Debian's nodejs and npm come in only when no node/npm is on PATH: a Node.js from
# elsewhere (NodeSource's, as on CI's machines) bundles npm and conflicts with
# Debian's npm package, so they cannot be in DEPS.
NODE_DIR := tests/clients/node
NODE_ON_PATH = $(shell command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 && echo yes)
node-deps:
	$(if $(NODE_ON_PATH),,$(call install,$(NODE_DEPS)))
	@if [ ! -d $(NODE_DIR)/node_modules ] || [ $(NODE_DIR)/package-lock.json -nt $(NODE_DIR)/node_modules ]; then \
	  echo "npm ci in $(NODE_DIR)"; \
	  npm ci --prefix $(NODE_DIR) --no-audit --no-fund --loglevel=error >/dev/null && touch $(NODE_DIR)/node_modules; \
	fi

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DRG_TESTS=OFF -DRG_WERROR=$(RG_WERROR) >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

# CI installs clang so that the fuzz entries always run there; elsewhere they run
# when clang and libFuzzer are present, and ctest shows fuzz.skipped otherwise.
test: deps node-deps $(if $(CI_ON),fuzz-deps)
	cmake -S . -B $(TEST_BUILD) -DCMAKE_BUILD_TYPE=Debug -DRG_SANITIZE=ON -DRG_WERROR=$(RG_WERROR) \
	  -DRG_FUZZ_TESTS=ON -DRG_FUZZ_TEST_SECONDS=$(FUZZ_TEST_SECONDS) >/dev/null
	cmake --build $(TEST_BUILD) -j $(JOBS)
	cd $(TEST_BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 600

# Each target for FUZZ_SECONDS, one after the other; the corpus grows in
# $(FUZZ_BUILD)/fuzz-work/corpus, crashes land in $(FUZZ_BUILD)/fuzz-work/artifacts.
# FUZZ_ARGS passes libFuzzer flags (e.g. FUZZ_ARGS=-jobs=2).
fuzz: deps fuzz-deps
	cmake -S . -B $(FUZZ_BUILD) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug -DRG_FUZZ=ON \
	  -DRG_WERROR=$(RG_WERROR) >/dev/null
	cmake --build $(FUZZ_BUILD) -j $(JOBS)
	@mkdir -p $(FUZZ_BUILD)/fuzz-work
	@for t in $(FUZZ_TARGETS); do \
	  tests/fuzz/run.sh $(FUZZ_BUILD)/tests/fuzz/$$t $(FUZZ_SECONDS) $(FUZZ_BUILD)/fuzz-work $(FUZZ_ARGS) \
	    >$(FUZZ_BUILD)/fuzz-work/$$t.log 2>&1 || { tail -60 $(FUZZ_BUILD)/fuzz-work/$$t.log; exit 1; }; \
	  grep -h "^#.*DONE" $(FUZZ_BUILD)/fuzz-work/$$t.log | sed "s/^/$$t: /"; \
	done

# ThreadSanitizer (gcc) over the integration tests that exercise the threads;
# TSAN_LABEL=integration runs all of them (about 80 s more). Never -Werror: this
# build is -O1, where gcc's -Wmaybe-uninitialized sees false positives that the
# -Werror build of make test (-O0) does not; its warnings still show.
TSAN_LABEL ?= threaded
tsan: deps
	cmake -S . -B $(TSAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DRG_SANITIZE=thread -DRG_WERROR=OFF \
	  -DRG_FUZZ_TESTS=OFF >/dev/null
	cmake --build $(TSAN_BUILD) -j $(JOBS) --target respgate
	cd $(TSAN_BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 600 -L $(TSAN_LABEL)

run: build
	tests/sandbox.sh $(BUILD)/respgate config/sandbox.json

bench: build
	$(call install,$(BENCH_DEPS))
	RESPGATE=$(BUILD)/respgate tests/bench/bench.sh

# The container image (docker/Dockerfile, docs/container.md): with docker when its daemon
# answers, else podman (docker/podman-local.sh: a private store and a base image made from
# the machine's apt mirror, as no registry is reachable here). IMAGE_ENGINE=docker|podman
# chooses; PODMAN_LOCAL=0 uses the machine's own podman settings.
IMAGE        ?= respgate
IMAGE_ENGINE ?=
image:
	IMAGE=$(IMAGE) IMAGE_ENGINE=$(IMAGE_ENGINE) docker/build-image.sh

# Builds the image with podman and runs it: non-root, read-only, against a real Redis
# and Sentinel on loopback; probes, healthcheck, ConfigMap reload, drain on stop, the
# Kubernetes manifest (podman play kube) and the compose demo. tests/container/run.sh.
container-test:
	tests/container/run.sh

format:
	clang-format -i proxy/*.c proxy/*.h tests/unit/*.c tests/fuzz/*.c tests/fuzz/*.h

clean:
	rm -rf $(BUILD) $(TEST_BUILD) $(FUZZ_BUILD) $(TSAN_BUILD)
