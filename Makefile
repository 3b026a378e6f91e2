# One-liners. `make run` and `make test` are scripts/start.sh and scripts/test.sh; the run-* targets
# download a model with `rotor pull` into models/ (resumable, sha256-verified) and serve it on GPU 0.
#   run-qwen / run-gemma: PROFILE=auto (default) picks the profile planned for that model on this card
#   (profiles/*.json; --profile auto implies --gpu); PROFILE=rtx-4090 (Qwen) or rtx-4090-gemma4 names
#   one, PROFILE=auto:throughput takes the many-slots variant.
#   run-llama8b: the Llama-3.1-8B settings below (q8_0 KV, 4 slots x 16K: 9.5 GiB by `rotor plan`).
#   SERVE_ARGS="--port 8081 ..." adds to rotor serve's arguments. A model file already in MODELS is
#   served as it is (scripts/gpu/cuda_run.sh memory serves random-weight files that way on the GPU).
# Repository and file names follow Unsloth's naming pattern and are assumed, not checked here (no
# network); if one differs, run build/rotor pull ORG/REPO FILE yourself.
ROTOR   ?= build/rotor
MODELS  ?= models
PROFILE ?= auto
PROFILE_ARG = $(if $(PROFILE),--profile $(PROFILE))
SERVE_ARGS ?=

.PHONY: run test build run-qwen run-gemma run-llama8b profiles memory-tables

run:
	scripts/start.sh

test:
	scripts/test.sh

build:
	scripts/setup.sh
	scripts/build.sh

# $(call pull_and_serve,REPO,FILE): `rotor pull` writes FILE only once its checksum is verified (FILE.part
# until then), so a FILE already there is complete and is served without asking the network.
define pull_and_serve
	test -f $(MODELS)/$(2) || $(ROTOR) pull $(1) $(2) -o $(MODELS)
	$(ROTOR) serve -m $(MODELS)/$(2) $(PROFILE_ARG) $(SERVE_ARGS)
endef

run-qwen: build
	$(call pull_and_serve,unsloth/Qwen3.5-27B-GGUF,Qwen3.5-27B-Q4_K_M.gguf)

run-gemma: build
	$(call pull_and_serve,unsloth/gemma-4-26B-A4B-it-GGUF,gemma-4-26B-A4B-it-Q4_K_M.gguf)

LLAMA8B_ARGS ?= --gpu --slots 4 --ctx-per-slot 16384 --kv-k q8_0 --kv-v q8_0

run-llama8b: build
	$(call pull_and_serve,unsloth/Llama-3.1-8B-Instruct-GGUF,Llama-3.1-8B-Instruct-Q4_K_M.gguf)

run-llama8b: PROFILE_ARG = $(LLAMA8B_ARGS)

# Regenerate the planner's outputs that are committed (tests check they are current).
profiles:
	python3 scripts/gen_profiles.py --rotor $(ROTOR) --out profiles

memory-tables:
	python3 scripts/gen_memory_tables.py --rotor $(ROTOR)
