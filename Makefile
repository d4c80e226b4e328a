# tollgate build. `make` builds build/tollgate; `make run` and `make test`
# first install what is missing (scripts/deps.sh). Variants build into their
# own folders: build-asan (ASan+UBSan) and build-fuzz (libFuzzer, clang).

CC      ?= cc
BUILD   ?= build
PKGS    := libuv libcurl yaml-0.1 libcrypto sqlite3
OPT     ?= -O2
CFLAGS  := $(XCFLAGS) -std=c11 -D_GNU_SOURCE $(OPT) -g -Wall -Wextra -Werror -Wshadow -Wvla \
           -Isrc $(shell pkg-config --cflags $(PKGS)) -pthread -MMD -MP
LDLIBS  := $(XLDFLAGS) $(shell pkg-config --libs $(PKGS)) -lhttp_parser -pthread
SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer

SRCS    := $(shell find src -name '*.c' | sort)
OBJS    := $(SRCS:%.c=$(BUILD)/%.o)
LIBOBJS := $(filter-out $(BUILD)/src/main.o,$(OBJS))
UNITS   := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(wildcard tests/unit/test_*.c))
FUZZERS := $(patsubst tests/fuzz/%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
CONFIG  ?= examples/tollgate.yaml
FUZZ_SECONDS ?= 20

.PHONY: all run test unit e2e asan test-asan fuzz fuzz-build bench deps clean format
all: $(BUILD)/tollgate

$(BUILD)/tollgate: $(OBJS)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/tests/%: tests/unit/%.c $(LIBOBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS) -lcmocka

deps:
	@scripts/deps.sh build

run: deps
	@$(MAKE) --no-print-directory all
	$(BUILD)/tollgate serve --config $(CONFIG)

# Unit tests, end-to-end tests, both again under ASan+UBSan, and a short
# fuzzing run of every fuzz target.
test:
	@scripts/deps.sh test
	@$(MAKE) --no-print-directory all unit-bins
	@$(MAKE) --no-print-directory unit e2e
	@$(MAKE) --no-print-directory test-asan
	@$(MAKE) --no-print-directory fuzz

unit-bins: $(UNITS)

unit: $(UNITS)
	@set -e; for t in $(UNITS); do echo "== $$t"; $$t; done

e2e: $(BUILD)/tollgate
	cd tests && TOLLGATE_BIN=$(abspath $(BUILD)/tollgate) node --test --test-concurrency=1 e2e/

test-asan:
	@$(MAKE) --no-print-directory BUILD=build-asan XCFLAGS="$(SAN)" XLDFLAGS="$(SAN)" OPT=-O1 \
	    all unit-bins unit e2e

fuzz:
	@$(MAKE) --no-print-directory BUILD=build-fuzz CC=clang OPT=-O1 \
	    XCFLAGS="-fsanitize=fuzzer-no-link,address,undefined" fuzz-build
	@for f in $(FUZZERS); do \
	    mkdir -p build-fuzz/corpus-$$f; \
	    echo "== fuzz $$f ($(FUZZ_SECONDS)s)"; \
	    build-fuzz/$$f -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -print_final_stats=1 \
	        build-fuzz/corpus-$$f tests/fuzz/seeds/$${f#fuzz_} >build-fuzz/$$f.log 2>&1; \
	    rc=$$?; grep -E '^stat::number_of_executed_units|^Done' build-fuzz/$$f.log; \
	    if [ $$rc -ne 0 ]; then tail -n 60 build-fuzz/$$f.log; echo "fuzz $$f FAILED"; exit 1; fi; \
	done

fuzz-build: $(addprefix $(BUILD)/,$(FUZZERS))

$(BUILD)/fuzz_%: tests/fuzz/fuzz_%.c $(LIBOBJS)
	$(CC) $(CFLAGS) -fsanitize=fuzzer,address,undefined -o $@ $^ $(LDLIBS)

# Two layouts (docs/benchmarks.md): throughput with the proxy alone on core 0
# and the load on core 1; then 1-connection latency with everything on one
# core, where a cross-core wake-up of this VM does not swamp the proxy's cost.
# Then the metering micro benchmarks: journal append cost per fsync policy,
# and ledger projection and report times over BENCH_LEDGER_RECORDS (10M);
# then closing a month of BENCH_CLOSE_RECORDS (10M) for 10,000 customers.
bench:
	@scripts/deps.sh bench
	@$(MAKE) --no-print-directory all $(BUILD)/bench/journal_bench $(BUILD)/bench/ledger_bench \
	    $(BUILD)/bench/close_bench $(BUILD)/bench/route_bench
	bench/run.sh
	BENCH_CORE_LOAD=0 BENCH_CONNS=1 BENCH_TARGETS="direct nginx tollgate tollgate-nometer" bench/run.sh
	$(BUILD)/bench/journal_bench
	$(BUILD)/bench/ledger_bench $${BENCH_LEDGER_RECORDS:-10000000}
	$(BUILD)/bench/close_bench $${BENCH_CLOSE_RECORDS:-10000000}
	$(BUILD)/bench/route_bench

format:
	clang-format -i $(SRCS) $(wildcard src/*/*.h src/*/*/*.h)

clean:
	rm -rf build build-asan build-fuzz

-include $(OBJS:.o=.d)

# Micro benchmarks (make bench runs them): the journal's append cost per
# request by fsync policy, the ledger's projection rate and report time,
# closing a period, and the routing decision's cost.
$(BUILD)/bench/%: bench/%.c $(LIBOBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS)
