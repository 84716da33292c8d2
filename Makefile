# The two commands a newcomer needs: `make demo` and `make test`.
# Both run the idempotent set-up first.

export CARGO_TARGET_DIR ?= $(HOME)/.cache/byos3/target
CARGO ?= cargo

.PHONY: setup demo test bench build

setup:
	scripts/setup

build: setup
	$(CARGO) build --workspace --all-targets

demo: setup
	$(CARGO) run -q -p byos3-tests --bin byos3-demo

test: setup
	scripts/test

bench:
	scripts/bench
