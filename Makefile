# Wharf: `make run` starts a development registry; `make test` runs every test.
# Tools the tests need are installed by scripts/tools.sh into $(WHARF_CACHE),
# outside the checkout, pinned and idempotent.

WHARF_CACHE ?= $(HOME)/.cache/wharf
export WHARF_CACHE
export PATH := $(WHARF_CACHE)/bin:$(HOME)/.cargo/bin:/usr/local/go/bin:$(PATH)
CARGO ?= cargo

.PHONY: run test tools lint unit operator-it image-check image-repro bench-selftest e2e bench images e2e-up e2e-down e2e-smoke

## run: the registry on 127.0.0.1:5000, storing under ./var/registry
run:
	$(CARGO) run --release -p wharf-registry -- serve

## test: every test (installs what the tests need first)
test: tools lint unit bench-selftest fuzz-smoke operator-it image-check e2e

tools:
	bash scripts/tools.sh

lint:
	python3 scripts/layers.py --selftest
	python3 scripts/layers.py registry/src operator/src registry/tests operator/tests
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

unit:
	$(CARGO) test --workspace --locked

## operator-it: the operator against a real kube-apiserver, etcd and kube-controller-manager; the chart's checks
operator-it:
	bash scripts/operator-it.sh

## image-check: both images build reproducibly, run as non-root, with their entrypoint and labels
image-check:
	bash scripts/image-check.sh

## image-repro: HEAD cloned and built from an empty target directory gives the same image digests (a full release build; not in make test)
image-repro:
	bash scripts/image-repro.sh

## bench-selftest: a missed benchmark target fails the run (synthetic input; runs no benchmark)
bench-selftest:
	bash bench/selftest.sh

## e2e: a real single-node cluster; helm install, Registry, pushes and node pulls, mirrors; torn down after
e2e:
	bash e2e/run.sh

## bench: wharf-registry vs distribution vs nginx on loopback; writes docs/benchmarks.md
bench: tools
	bash bench/run.sh

## images: both images as reproducible OCI layouts in target/images (PUSH=host/prefix to push)
images:
	bash scripts/images.sh

## e2e-up: a real single-node Kubernetes cluster on this machine (builds pinned binaries once)
e2e-up:
	bash e2e/cluster/build.sh all
	bash e2e/cluster/up.sh

## e2e-down: remove every process, interface, mount, iptables chain and sysctl change e2e made
e2e-down:
	bash e2e/cluster/down.sh --all

## e2e-smoke: pod, DNS, PVC, Service and exec on the running cluster; no packet left the machine
e2e-smoke:
	bash e2e/cluster/smoke.sh
	bash e2e/cluster/check-leaks.sh

# ------------------------------------------------------------------ fuzzing
# cargo-fuzz targets in registry/fuzz, built with the nightly toolchain
# (cargo +$(FUZZ_TOOLCHAIN) fuzz build); see docs/fuzzing.md.
FUZZ_TOOLCHAIN ?= nightly
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 6
export FUZZ_TOOLCHAIN

.PHONY: fuzz fuzz-smoke

## fuzz: every fuzz target for FUZZ_SECONDS (default 60) each, over the committed corpus
fuzz: tools
	bash scripts/fuzz.sh $(FUZZ_SECONDS)

## fuzz-smoke: replays the committed corpus and fuzzes each target FUZZ_SMOKE_SECONDS (part of `make test`)
fuzz-smoke: tools
	bash scripts/fuzz.sh $(FUZZ_SMOKE_SECONDS)
