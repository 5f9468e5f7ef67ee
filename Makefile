# stx-registry: make help lists the targets.
GO          ?= go
STATICCHECK ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2
RUN_DIR     := $(CURDIR)/run
BIN_DIR     := $(CURDIR)/bin
# COMMIT is the checkout's commit for -version, for the builds where the go
# tool embeds none (a linked git worktree, -buildvcs=false); empty outside git.
COMMIT      := $(shell git rev-parse --short=12 HEAD 2>/dev/null)
ifneq ($(COMMIT),)
COMMIT      := $(COMMIT)$(if $(shell git status --porcelain 2>/dev/null),-dirty)
endif
GOBUILD     := CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-X stx-registry/shared/buildinfo.commit=$(COMMIT)'
# OCF_AGENTS are the agents in ops/ocf; stx-common.sh is the shell they
# source, not an agent.
OCF_AGENTS  := $(filter-out %.sh,$(wildcard ops/ocf/*))
# DAEMONS are the directories of the two binaries; each keeps the list of
# the packages it links in DAEMON/testdata/linked-packages.txt.
DAEMONS     := registry token
# linked prints, sorted, the packages binary $(1) links when built as make
# build does (no cgo) for the shipping platform (linux/amd64): every module
# package and every importable standard package (net/http/pprof, expvar,
# os/exec show up). Standard packages under internal/ and vendor/ are left
# out: they follow the Go release, not our imports.
linked = CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) list -deps -f '{{if .Standard}}std {{end}}{{.ImportPath}}' ./$(1) | \
	awk '$$1 != "std" { print $$1; next } $$2 !~ /(^|\/)internal(\/|$$)/ && $$2 !~ /^vendor\// { print $$2 }' | LC_ALL=C sort

.PHONY: help build run demo-config check test test-deps fuzz clean deps-update deps-check

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build bin/stx-registry and bin/stx-token-server
	$(GOBUILD) -o $(BIN_DIR)/stx-registry ./registry
	$(GOBUILD) -o $(BIN_DIR)/stx-token-server ./token

demo-config: build ## write ./run/: certificates, users file (user demo), configs, storage root
	sh ops/demo-config.sh $(RUN_DIR) $(BIN_DIR)

run: demo-config ## run both daemons on 127.0.0.1:9001 and :9002 in the foreground (Ctrl-C stops)
	sh ops/run-demo.sh $(RUN_DIR) $(BIN_DIR)

test-deps: ## install the Debian packages the tests drive (skopeo, podman, containerd, ...)
	sh ops/install-test-deps.sh

check: test-deps ## vet, gofmt, staticcheck, shellcheck, OCF meta-data (xmllint), mandoc -Tlint, linked-package lists
	$(GO) vet ./...
	@out=$$(gofmt -l registry token shared ops); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(STATICCHECK) ./...
	shellcheck -s sh ops/*.sh .ci/run
	shellcheck -s sh ops/ocf/* ops/stx-gencerts
	for a in $(OCF_AGENTS); do OCF_ROOT=/usr/lib/ocf sh "$$a" meta-data | (cd /usr/share/resource-agents && xmllint --noout --valid -) || exit 1; done
	mandoc -Tlint -W warning man/*
	$(MAKE) --no-print-directory deps-check

deps-check: ## fail when a binary links packages other than DAEMON/testdata/linked-packages.txt lists
	@for d in $(DAEMONS); do \
	  $(call linked,$$d) | diff -u $$d/testdata/linked-packages.txt - || { \
	    echo "$$d: the linked packages changed (+ new, - gone): review each new dependency, then run make deps-update and commit $$d/testdata/linked-packages.txt"; exit 1; }; \
	done

deps-update: ## rewrite DAEMON/testdata/linked-packages.txt from go list -deps (review the diff)
	@for d in $(DAEMONS); do $(call linked,$$d) >$$d/testdata/linked-packages.txt.tmp && mv $$d/testdata/linked-packages.txt.tmp $$d/testdata/linked-packages.txt || exit 1; done

test: test-deps ## every test: unit tests with -race, fuzz seeds, end-to-end with real clients
	$(GO) test -race -count=1 -timeout 30m ./...

fuzz: ## run each fuzz target for FUZZTIME (default 30s)
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list 'Fuzz.*' $$pkg | grep '^Fuzz'); do \
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $${FUZZTIME:-30s} $$pkg || exit 1; \
	  done; \
	done

.PHONY: bench
bench: test-deps ## measure token, Keystone and image throughput against same-run references; QUICK=1 for a short run; writes BENCHMARKS.md
	$(GO) run ./ops/bench $(if $(filter 1 yes true,$(QUICK)),-quick) -out $(CURDIR)/BENCHMARKS.md

clean: ## remove bin/ (run/ holds the demo password and images: rm -rf run yourself)
	rm -rf $(BIN_DIR)
