# Developer shortcuts. CI runs `bash .ci/run`, not this file.

PEER_MANIFEST := benches/peer/Cargo.toml
# The peer benchmark is its own cargo workspace; it keeps its build in a target dir of its own
# unless CARGO_TARGET_DIR says otherwise.
PEER_TARGET ?= $(if $(CARGO_TARGET_DIR),$(CARGO_TARGET_DIR),benches/peer/target)

.PHONY: help bench-peer

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 14

bench-peer: ## ours vs tikv-client 0.4 on one mock cluster: prints a table (about 2-4 min; PEER_BENCH_SCALE=0.1 for a smoke run)
	CARGO_TARGET_DIR=$(PEER_TARGET) cargo build --release --locked --manifest-path $(PEER_MANIFEST)
	$(PEER_TARGET)/release/bench-peer
