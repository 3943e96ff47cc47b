# IronClaw build. `make` builds build/ironclaw and build/ironclaw-guest.
# Sources are picked up by folder, so adding a file to a subsystem needs no edit here.
#
#   make                 host CLI + guest agent
#   make SANITIZE=address,undefined   the same with sanitizers (into build/san-*)
#   make image           default guest image (kernel + initramfs) under build/image
#   make image-dev       the development image `dev` (python3, git, make, gcc, curl)
#   make image-test      the tests' small image (minbase + python3-minimal + git)
#   make check           every test: sanitized unit tests, then all tests with coverage
#   make coverage        line coverage with gcovr, compared to coverage-baseline.txt
#   make bench           benchmarks (ratios against baselines measured in the same run)
#   make fuzz            libFuzzer targets (clang); their corpora replay in `make check`
#   make deps            every Debian and npm dependency, idempotent

CC       ?= cc
SANITIZE ?=
COVERAGE ?=

ifneq ($(SANITIZE),)
  BUILD  ?= build/san-$(subst $(comma),-,$(SANITIZE))
else ifneq ($(COVERAGE),)
  BUILD  ?= build/cov
else
  BUILD  ?= build
endif
comma := ,

WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
            -Wformat=2 -Wvla
CFLAGS   ?= -O2 -g
CFLAGS   += -std=c17 -D_GNU_SOURCE $(WARN) -Isrc -MMD -MP
# Tests only: libyaml reads the OpenAPI documents (test_fc_contract, test_serve).
LDLIBS_TEST := -lyaml
LDLIBS_HOST := -ljansson -lcurl -lmicrohttpd -lseccomp -lnftables -lmnl -luv -larchive -lgit2 -lcrypto -lpthread
ifneq ($(SANITIZE),)
  CFLAGS  += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer
  LDFLAGS += -fsanitize=$(SANITIZE)
endif
ifneq ($(COVERAGE),)
  # Atomic counters: the jail is built on libuv's thread pool, and racing
  # counters produce negative counts that gcovr refuses to read.
  CFLAGS  += --coverage -O0 -fprofile-update=atomic
  LDFLAGS += --coverage
endif

# Code shared by host and guest: no libuv, no libcurl, only libc + jansson.
SHARED_SRC := $(wildcard src/core/*.c src/proto/*.c)
# Everything the host links, except the CLI entry points.
HOST_SRC   := $(SHARED_SRC) $(filter-out src/guest/% src/cli/%,$(wildcard src/*/*.c))
CLI_SRC    := $(wildcard src/cli/*.c)
GUEST_SRC  := $(wildcard src/guest/*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
HOST_LIB   := $(BUILD)/libironclaw.a

UNIT_TESTS  := $(patsubst tests/unit/%.c,$(BUILD)/tests/unit/%,$(wildcard tests/unit/test_*.c))
INTEG_TESTS := $(patsubst tests/integration/%.c,$(BUILD)/tests/integration/%,$(wildcard tests/integration/test_*.c))
TEST_LIB_SRC := $(wildcard tests/lib/*.c)
# Helpers only integration tests link: they drive real VMs through the library,
# so a unit test that stands in for part of vm/ must not pull them in.
INTEG_LIB_SRC := $(wildcard tests/integration/lib/*.c)
FUZZ_SRC    := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_REPLAY := $(patsubst tests/fuzz/%.c,$(BUILD)/tests/fuzz/replay_%,$(FUZZ_SRC))

.PHONY: all clean check unit-tests integration-tests tests image image-dev image-test coverage bench fuzz deps demo

all: $(BUILD)/ironclaw $(BUILD)/ironclaw-guest

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(HOST_LIB): $(call obj,$(HOST_SRC))
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/ironclaw: $(call obj,$(CLI_SRC)) $(HOST_LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS_HOST)

# The guest agent is static: the initramfs holds no libc. It is never sanitized
# (static ASan is unsupported), so it always comes from its own plain build.
GUEST_CFLAGS := -std=c17 -D_GNU_SOURCE $(WARN) -Isrc -O2 -g
build/guest-obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(GUEST_CFLAGS) -MMD -MP -c -o $@ $<
build/ironclaw-guest: $(patsubst %.c,build/guest-obj/%.o,$(GUEST_SRC) $(SHARED_SRC))
	$(CC) -static -o $@ $^ -ljansson
ifneq ($(BUILD),build)
$(BUILD)/ironclaw-guest: build/ironclaw-guest
	@mkdir -p $(dir $@)
	cp $< $@
endif

TEST_LIB_OBJ := $(call obj,$(TEST_LIB_SRC))
INTEG_LIB_OBJ := $(call obj,$(INTEG_LIB_SRC))
# Named explicitly, so make prefers the integration rule below (an object only a
# pattern rule could make would lose to the generic test rule).
$(INTEG_LIB_OBJ): $(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<
$(BUILD)/tests/integration/%: tests/integration/%.c $(TEST_LIB_OBJ) $(INTEG_LIB_OBJ) $(HOST_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests $(LDFLAGS) -o $@ $< $(TEST_LIB_OBJ) $(INTEG_LIB_OBJ) $(HOST_LIB) -lcriterion $(LDLIBS_HOST) $(LDLIBS_TEST)

# Static stand-ins for a VMM that the integration tests run in the real jail
# (tests/integration/peers): static, so they need nothing from the jail's root.
PEER_BINS := $(patsubst tests/integration/peers/%.c,$(BUILD)/tests/integration/peers/%,$(wildcard tests/integration/peers/*.c))
$(PEER_BINS): $(BUILD)/tests/integration/peers/%: tests/integration/peers/%.c
	@mkdir -p $(dir $@)
	$(CC) -std=c17 -D_GNU_SOURCE $(WARN) -O2 -g -static -o $@ $<

$(BUILD)/tests/%: tests/%.c $(TEST_LIB_OBJ) $(HOST_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests $(LDFLAGS) -o $@ $< $(TEST_LIB_OBJ) $(HOST_LIB) -lcriterion $(LDLIBS_TEST) $(LDLIBS_HOST)

$(BUILD)/tests/fuzz/replay_%: tests/fuzz/%.c tests/fuzz/replay_main.c $(HOST_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< tests/fuzz/replay_main.c $(HOST_LIB) $(LDLIBS_HOST)

BENCH_BINS := $(patsubst bench/%.c,$(BUILD)/bench/%,$(wildcard bench/*.c))
# Measurements the benches share (bench/lib): named explicitly, as INTEG_LIB_OBJ.
BENCH_LIB_OBJ := $(call obj,$(wildcard bench/lib/*.c))
$(BENCH_LIB_OBJ): $(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<
# The raw-port baseline's guest side: static, as the guest agent (the
# initramfs holds no libc); the benches copy it into their initramfs.
build/bench/raw-port: bench/guest/raw_port.c
	@mkdir -p $(dir $@)
	$(CC) $(GUEST_CFLAGS) -static -o $@ $<
$(BUILD)/bench/%: bench/%.c $(BENCH_LIB_OBJ) $(HOST_LIB) | build/bench/raw-port
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Ibench $(LDFLAGS) -o $@ $< $(BENCH_LIB_OBJ) $(HOST_LIB) $(LDLIBS_HOST)

unit-tests: $(UNIT_TESTS) $(FUZZ_REPLAY)
integration-tests: $(INTEG_TESTS) $(PEER_BINS) $(BUILD)/ironclaw $(BUILD)/ironclaw-guest
tests: unit-tests integration-tests

image: build/ironclaw-guest
	bash image/build.sh

# Debian images (src/image). Content-addressed: with unchanged inputs these only
# re-resolve the package versions (about 4 s) and reuse the cached file.
# The tests' image lives in build/images, so CI caches it with the build tree.
IMAGES_DIR ?= $(CURDIR)/build/images
image-test: all image
	IRONCLAW_IMAGES=$(IMAGES_DIR) $(BUILD)/ironclaw image build ci-small --packages python3-minimal,git
image-dev: all image
	$(BUILD)/ironclaw image build dev

# The README's test command. Sanitized unit tests first (fast, catch memory bugs),
# then every test against a coverage build, then the coverage gate.
check:
	$(MAKE) all image image-test
	$(MAKE) SANITIZE=address,undefined unit-tests
	$(MAKE) COVERAGE=1 tests
	bash tests/run.sh

coverage:
	bash tests/coverage.sh

bench: all image $(BENCH_BINS)
	bash bench/run.sh

fuzz:
	bash tests/fuzz/run.sh

deps:
	bash scripts/deps.sh

demo: deps all image
	$(BUILD)/ironclaw exec -- uname -a

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
