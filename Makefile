# stowage — `make demo` and `make test` work on a fresh Debian 12 machine (as root).
SHELL := /bin/bash
.DEFAULT_GOAL := build

# rustup's toolchain, also when the caller's PATH lacks it
export PATH := $(HOME)/.cargo/bin:$(PATH)
CARGO ?= cargo
BUILD := $(CURDIR)/build

# The Nix releases stowage is built and tested against; `make test NIX=2.26` limits a run to one.
NIXES := 2.8 2.26
NIX ?= $(NIXES)
export STOWAGE_NIXES := $(NIX)

# Per Nix: where pkg-config finds it, where its commands are, and the plugin's target folder.
# Debian's 2.8 headers come from `make setup` (see .cargo/config.toml); 2.26 is built by it.
pkgconfig_2.8 := /usr/lib/nix/pkgconfig
bin_2.8 := /usr/bin
target_2.8 := $(CURDIR)/target
pkgconfig_2.26 := $(BUILD)/nix-2.26/lib/pkgconfig
bin_2.26 := $(BUILD)/nix-2.26/bin
target_2.26 := $(CURDIR)/target/nix-2.26
plugin = $(target_$(1))/release/libstowage.so
with_nix = PKG_CONFIG_PATH=$(pkgconfig_$(1)) CARGO_TARGET_DIR=$(target_$(1)) STOWAGE_NIX_BIN=$(bin_$(1)) \
	STOWAGE_VALIDATORS=$(BUILD)/validators/bin \
	STOWAGE_PLUGIN=$(call plugin,$(1)) STOWAGE_EXPECT_NIX=$(1) STOWAGE_BUILDER=$(BUILDER)
# a plugin built for a Nix other than $(1), for the test that it is refused
other_plugin = $(call plugin,$(firstword $(filter-out $(1),$(NIX))))

# The image builder that derivations run, inside the Nix sandbox too: a static executable without
# the plugin's C++. Only its own link is static (`cargo rustc` hands the flags to it alone), so it
# shares every compiled dependency with the Nix 2.8 plugin's build, whose `stowage` (dynamic)
# then takes its place in target/release: it is copied out first (by a rename, so that a builder
# running meanwhile is not in the way). Stripped: the plugin carries it, and every image's
# closure does. The plugins embed it.
BUILDER := $(CURDIR)/target/builder/stowage

.PHONY: setup builder build test fuzz bench demo clean

setup:
	@scripts/setup-debian.sh

# (It needs nothing `make setup` installs, so `make -j2 build` compiles it while setup runs.)
builder:
	$(call with_nix,2.8) $(CARGO) rustc --release --locked --package stowage --bin stowage -- \
		-C target-feature=+crt-static -C strip=symbols
	@mkdir -p $(dir $(BUILDER))
	@cmp -s $(target_2.8)/release/stowage $(BUILDER) || \
		{ cp $(target_2.8)/release/stowage $(BUILDER).new && mv $(BUILDER).new $(BUILDER); }

build: setup builder
	$(foreach n,$(NIX),$(call with_nix,$(n)) $(CARGO) build --release --locked --workspace &&) true

# The image tests that run again in library mode (without the plugin): every function and option
# group.
LIBRARY_TESTS := pinned_images images sbom tags_and_annotations existing_images fixture_archives binary_cache customisation build_image explicit_layers oci pull remote_builder nixpkgs_binding nix_db concurrency

# Every integration test, tests/*.rs, so that a new one cannot be left out: `cli` runs once (it
# needs no Nix), and so does `large_files` (it writes 8 GiB some six times, for about eight
# minutes, and what it tests — tar's large sizes — is the core's, the same for every Nix),
# `cross_nix` only with two Nix releases, `pinned_images` (the images whose bytes are written
# down) first, the rest once per Nix.
INTEGRATION_TESTS := $(filter-out cli large_files cross_nix pinned_images,$(basename $(notdir $(wildcard tests/*.rs))))

# The fuzz targets (fuzz/, HACKING.md), by cargo-fuzz (`make setup` installs it) on the stable
# toolchain, whether or not a nightly is there: RUSTC_BOOTSTRAP=1 lets cargo-fuzz's -Z flags
# through, so a machine with stable alone fuzzes, with the compiler that builds the rest.
# AddressSanitizer (cargo-fuzz's default) links rustc's own runtime, shipped with the stable
# toolchain: no clang is needed. Each run starts from its target's committed inputs — its seeds
# (fuzz/corpus) and every crash once found (fuzz/regressions) — and adds what it finds to a
# working corpus (fuzz/target/corpus, not committed); crashes go to fuzz/artifacts/TARGET. An
# input that takes 10 s counts as a hang; libFuzzer's limit of 2 GB counts as running out of
# memory.
FUZZ := RUSTC_BOOTSTRAP=1 $(CARGO) +stable fuzz
FUZZ_TARGETS := read_images unpack_layers registry_documents references plan nar function_args
FUZZ_SECONDS ?= 300
fuzz_inputs = fuzz/corpus/$(1) $(wildcard fuzz/regressions/$(1))
fuzz_run = mkdir -p fuzz/target/corpus/$(1) && \
	$(FUZZ) run $(1) fuzz/target/corpus/$(1) $(call fuzz_inputs,$(1)) -- -timeout=10 $(2)

# Each target for FUZZ_SECONDS (`make fuzz FUZZ_TARGETS=nar FUZZ_SECONDS=3600`).
fuzz:
	$(FUZZ) build
	$(foreach t,$(FUZZ_TARGETS),$(call fuzz_run,$(t),-max_total_time=$(FUZZ_SECONDS)) &&) true

# The Rust tests once, and the fuzz targets: every committed input again (a crash found once
# stays found), then 6 s of new inputs each; then everything that runs Nix with the plugin, once
# per Nix; then the image tests in library mode, once per Nix.
test: build
	$(call with_nix,$(firstword $(NIX))) $(CARGO) test --release --locked --package stowage-core
	$(FUZZ) build
	$(foreach t,$(FUZZ_TARGETS),$(FUZZ) run $(t) $(call fuzz_inputs,$(t)) -- -runs=0 && \
		$(call fuzz_run,$(t),-max_total_time=6 -verbosity=0 -print_funcs=0) &&) true
	$(call with_nix,$(firstword $(NIX))) $(CARGO) test --release --locked --test cli --test large_files
	$(foreach n,$(NIX),$(call with_nix,$(n)) $(CARGO) test --release --locked --test pinned_images && \
		$(call with_nix,$(n)) STOWAGE_OTHER_PLUGIN=$(call other_plugin,$(n)) \
		$(CARGO) test --release --locked $(addprefix --test ,$(INTEGRATION_TESTS)) \
		$(if $(word 2,$(NIX)),--test cross_nix) &&) true
	$(foreach n,$(NIX),$(call with_nix,$(n)) STOWAGE_MODE=library \
		$(CARGO) test --release --locked $(addprefix --test ,$(LIBRARY_TESTS)) &&) true

# Performance against baselines measured in the same run (see benches/layered.rs).
bench: build
	$(call with_nix,2.8) $(CARGO) bench --locked --bench layered

# The demo needs Debian's Nix 2.8 alone: it installs the demo's packages and builds the plugin
# for 2.8, whatever NIX says (Nix 2.26 is built by `make test`'s setup, not here); the packages
# are installed while the builder compiles.
demo:
	@$(MAKE) --no-print-directory -j2 build NIX=2.8 STOWAGE_SETUP=demo
	@$(call with_nix,2.8) scripts/demo.sh

clean:
	rm -rf target $(BUILD)
