# stowage — `make demo` and `make test` work on a fresh Debian 12 machine (as root).
SHELL := /bin/bash
.DEFAULT_GOAL := build

# rustup's toolchain, also when the caller's PATH lacks it
export PATH := $(HOME)/.cargo/bin:$(PATH)
CARGO ?= cargo
BUILD := $(CURDIR)/build
# Which Nix to build against comes from .cargo/config.toml (Debian's, headers from `make setup`).
export STOWAGE_PLUGIN := $(CURDIR)/target/release/libstowage.so

.PHONY: setup build test demo clean

setup:
	@scripts/setup-debian.sh

build: setup
	$(CARGO) build --release --locked

test: build
	$(CARGO) test --release --locked

demo: build
	@scripts/demo.sh

clean:
	rm -rf target $(BUILD)
