# sesscache — see README.md.
#   make          build the library (target/release/libsesscache.{so,a}) and
#                 regenerate include/sesscache.h
#   make demo     install what building needs (c-tests/setup.sh), build, then
#                 run a TLS server and client with and without the library,
#                 and a pre-fork server plain vs SESSCACHE_STORE=shm
#   make test     install what the tests need, then every test: lint, Rust
#                 tests, C differential tests (plain libssl vs preloaded vs
#                 linked; the preloaded runs under valgrind), header
#                 freshness, files, stats, nginx, HAProxy, Apache,
#                 install, .deb, the Redis and shared-memory stores, every
#                 release line and link style of c-tests/releases.txt,
#                 nginx on the release lines
#   make check    the quick loop, no service started: lint, Rust tests, the
#                 C differential tests without valgrind, header freshness
#   make deps     only install what the tests need (make deps-build: what
#                 building needs); installs nothing that is there
#   make test-c   the C differential tests without valgrind (quick)
#   make test-loom  the cache's locks under loom's model checker
#   make test-releases  the C differential tests against every release
#                 line and link style of c-tests/releases.txt (the machine's
#                 libssl 3.0, and 3.0, 3.5, 3.6, 4.0 each built once from
#                 Debian's source, 4.0.3 from the openssl-src crate, into
#                 /var/cache/sesscache-openssl, ~5 minutes each on two idle
#                 cores): exact where the file
#                 says so (under valgrind), passed through elsewhere
#                 (RELEASES=3.5 or RELEASES=4.0/-Bsymbolic for some)
#   make test-bsymbolic  the same for the entries linked -Bsymbolic
#   make test-nginx  Debian's nginx under the library (c-tests/nginx/)
#   make test-nginx-releases  the same checks with nginx on OpenSSL 3.0
#                 -Bsymbolic and 3.5 (Debian's nginx) and 4.0 (nginx built
#                 once from Debian's source against it), fewer connections
#                 (NGINX_RELEASE_LINES=4.0 for one)
#   make test-haproxy  Debian's HAProxy under the library (c-tests/haproxy/)
#   make test-apache  Debian's Apache httpd under the library (c-tests/apache/)
#   make test-files  the stats and log files are never written through a
#                 planted symlink (c-tests/files/)
#   make install  library, header, sesscache.pc, with-sesscache,
#                 sesscache-stats, man page (PREFIX=/usr/local, DESTDIR
#                 honoured); make uninstall
#   make deb      target/deb/sesscache_<version>_<arch>.deb (PREFIX=/usr);
#                 make test-deb installs it with dpkg, runs the demo, removes it
#   make test-stats  the .stats and .prom files and sesscache-stats

# `make` alone builds, whatever target is written first.
.DEFAULT_GOAL := all

CARGO   ?= cargo
CC      ?= cc
CFLAGS  ?= -O1 -g -Wall -Wextra -Werror
RELEASE := target/release
LIB_SO  := $(RELEASE)/libsesscache.so
DEMO    := target/demo/demo
DEMO_PREFORK := target/demo/demo_prefork

PREFIX     ?= /usr/local
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
BINDIR     ?= $(PREFIX)/bin
MANDIR     ?= $(PREFIX)/share/man
PCDIR      ?= $(LIBDIR)/pkgconfig
VERSION    := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)

.PHONY: test-nginx test-nginx-releases test-haproxy test-apache test-install install uninstall
.PHONY: all build demo test lint test-rust test-loom test-c test-valgrind test-bsymbolic check-header clean bench
.PHONY: test-store test-files deps deps-build check test-stats deb test-deb test-shm test-releases

all: build

build:
	$(CARGO) build --release

$(DEMO): c-tests/demo.c c-tests/demo_common.h c-tests/selfsigned.h include/sesscache.h | build
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Iinclude $< -o $@ -lssl -lcrypto -lpthread

$(DEMO_PREFORK): c-tests/demo_prefork.c c-tests/demo_common.h c-tests/selfsigned.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $< -o $@ -lssl -lcrypto

# Prerequisites run left to right: the set-up comes first.
deps-build:
	c-tests/setup.sh build

deps:
	c-tests/setup.sh test

demo: deps-build build $(DEMO) $(DEMO_PREFORK)
	@echo "################ plain libssl ################"
	@$(DEMO)
	@echo
	@echo "################ with sesscache (LD_PRELOAD, SESSCACHE_LOG=1) ################"
	@LD_PRELOAD=$(CURDIR)/$(LIB_SO) SESSCACHE_LOG=1 $(DEMO)
	@echo
	@echo "################ a pre-fork server: plain libssl, then sesscache with SESSCACHE_STORE=shm ################"
	@$(DEMO_PREFORK)
	@LD_PRELOAD=$(CURDIR)/$(LIB_SO) SESSCACHE_STORE=shm $(DEMO_PREFORK)

test: deps build lint test-rust test-loom test-files check-header test-stats test-nginx test-haproxy test-apache test-install test-deb test-store test-shm test-releases test-nginx-releases

check: deps-build build lint test-rust test-c check-header test-stats

# Cargo.toml lists integration tests by hand (autotests = false): a file in
# tests/ without its entry would never run. README's compatibility table
# is the one c-tests/releases.txt gives.
lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --release --all-targets --all-features -- -D warnings
	@for f in tests/*.rs; do grep -q "^path = \"$$f\"" Cargo.toml \
	  || { echo "$$f has no [[test]] or [[bench]] entry in Cargo.toml: cargo never runs it"; exit 1; }; done
	c-tests/releases.sh --check-readme
	@for f in c-tests/t_*.c; do p="$$(basename $$f .c)"; grep -q "^| \`$$p\` |" README.md \
	  || { echo "$$f has no row in README's table of programs"; exit 1; }; done

test-rust: build
	$(CARGO) test --release

# The cache's locks under loom's model checker (src/cache/shard_lock.rs), in
# its own target directory: --cfg loom rebuilds every dependency.
test-loom:
	RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom $(CARGO) test --release --lib loom_tests

# Shared session store (Redis): two preloaded servers, a Redis started and
# stopped by the script on 127.0.0.1 (needs redis-server); nginx started as
# root with nobody's workers and the key file root's 0600 (NGINX_STORE=redis);
# then the peer pool's soak (1M announced sessions, resident memory
# bounded), run alone.
test-store: build
	SESSCACHE_LIB=$(CURDIR)/$(LIB_SO) c-tests/store/run-store-tests.sh
	NGINX_STORE=redis SESSCACHE_LIB=$(CURDIR)/$(LIB_SO) c-tests/nginx/run-nginx-tests.sh
	$(CARGO) test --release --lib -- --ignored --nocapture pool_soak_resident_memory

# Shared-memory session store: pre-fork, fork-per-connection and joined
# servers, removal, early data, faults, oversized sessions, hostile files,
# a soak of processes and threads (c-tests/shm/);
# nginx with SESSCACHE_STORE=shm.
test-shm: build
	SESSCACHE_LIB=$(CURDIR)/$(LIB_SO) c-tests/shm/run-shm-tests.sh
	NGINX_STORE=shm SESSCACHE_LIB=$(CURDIR)/$(LIB_SO) c-tests/nginx/run-nginx-tests.sh

# The SESSCACHE_STATS and SESSCACHE_LOG files against planted symlinks,
# directories others can write to and files of other users.
test-files: build
	SESSCACHE_LIB=$(CURDIR)/$(LIB_SO) c-tests/files/run-file-tests.sh

test-c: build
	SESSCACHE_LIB=$(CURDIR)/$(LIB_SO) c-tests/run.sh

# The machine's libssl under valgrind: make test runs it as test-releases'
# 3.0 interposable entry.
test-valgrind: build
	SESSCACHE_LIB=$(CURDIR)/$(LIB_SO) c-tests/run.sh --valgrind

# Every release line and link style of c-tests/releases.txt
# (c-tests/releases.sh; each libssl but the machine's built once by
# c-tests/release-openssl.sh, outside the clone): the libssl's line and
# link style and the library's own decision checked against the entry,
# then the differential programs under valgrind with the entry's skips
# where the library is exact, passed through elsewhere (preloaded and
# linked they print what they print with that libssl alone, the
# pass-through line said once, one libssl mapped). RELEASES selects
# entries: a line, a link style or LINE/LINK.
RELEASES ?=
test-releases: build
	SESSCACHE_LIB=$(CURDIR)/$(LIB_SO) c-tests/releases.sh $(RELEASES)

# The entries whose libssl is linked -Bsymbolic: its internal calls never
# reach our exports, so where the library is exact the hooks alone carry
# the semantics.
test-bsymbolic: build
	SESSCACHE_LIB=$(CURDIR)/$(LIB_SO) c-tests/releases.sh -Bsymbolic

# The header is generated by the build and committed; a difference here
# means the committed copy is stale.
check-header: build
	@if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
	  git diff --exit-code -- include/sesscache.h \
	    || { echo "include/sesscache.h is stale: commit the regenerated header"; exit 1; }; \
	fi

# A/B benchmarks against the machine's libssl (BENCHMARKS.md): the C
# workloads alternate plain/preloaded runs (BENCH_QUICK=1 for a short run),
# the end-to-end workloads again in instructions per handshake (callgrind),
# the Redis and shm stores (cross-process against local resumption, the
# stores' lookup, publish and lock hold latency), then criterion on the
# cache core alone, nginx's resumption rates, and the
# figures (target/bench/*.png from summary.tsv and nginx-resumption.tsv; the
# published run's are in c-tests/bench/results/).
bench: deps build
	SESSCACHE_LIB=$(CURDIR)/$(LIB_SO) c-tests/bench/run-bench.sh
	@echo "== end to end in instructions per handshake (callgrind; A = libssl, B = sesscache)"
	SESSCACHE_LIB=$(CURDIR)/$(LIB_SO) c-tests/bench/run-instr.sh
	@echo "== shared store: cross-process against local resumption (same run)"
	STORE_TEST_CASES=6 c-tests/store/run-store-tests.sh | grep -E '^INFO 6-bench'
	SESSCACHE_LIB=$(CURDIR)/$(LIB_SO) c-tests/bench/run-shm-bench.sh
	$(CARGO) bench --bench bench_core
	@echo "== nginx: returning clients resumed by workers (plain, sesscache, with a store)"
	SESSCACHE_LIB=$(CURDIR)/$(LIB_SO) c-tests/bench/nginx-resumption.sh
	c-tests/bench/plot.sh target/bench

# nginx (Debian's package) with the library preloaded vs plain: builtin,
# shared, both and no session cache, TLS 1.2 and 1.3, reload.
test-nginx: build
	SESSCACHE_LIB=$(CURDIR)/$(LIB_SO) c-tests/nginx/run-nginx-tests.sh

# nginx on each release line built by c-tests/release-openssl.sh: Debian's
# where its ABI allows, else built from Debian's source against the line
# (c-tests/nginx/release-nginx.sh, once, outside the clone); the checks of
# test-nginx, or, where the library passes through, that it leaves no trace.
# 3.0 is test-bsymbolic's build, a line the library serves. Every line runs,
# the target fails if one did.
NGINX_RELEASE_LINES ?= 3.0 3.5 4.0
NGINX_RELEASE_CONNECTIONS ?= 300
test-nginx-releases: build
	@failed=""; for line in $(NGINX_RELEASE_LINES); do \
	  dir="$$(c-tests/release-openssl.sh $$line)" \
	    && nginx="$$(c-tests/nginx/release-nginx.sh $$line)" \
	    && echo "== nginx on OpenSSL $$line ($$nginx, $$dir)" \
	    && NGINX="$$nginx" NGINX_LIBSSL_DIR="$$dir" SESSCACHE_LIB=$(CURDIR)/$(LIB_SO) \
	      c-tests/nginx/run-nginx-tests.sh -n $(NGINX_RELEASE_CONNECTIONS) \
	    || failed="$$failed $$line"; \
	done; \
	[ -z "$$failed" ] || { echo "test-nginx-releases: failed on OpenSSL$$failed"; exit 1; }

# HAProxy (Debian's package) with the library preloaded vs plain: its shared
# cache (tune.ssl.cachesize) and no cache, 2 threads, TLS 1.2 and 1.3, reload.
test-haproxy: build
	SESSCACHE_LIB=$(CURDIR)/$(LIB_SO) c-tests/haproxy/run-haproxy-tests.sh

# Apache httpd (Debian's package) with the library preloaded vs plain:
# SSLSessionCache shmcb and none, mpm event and prefork, TLS 1.2 and 1.3,
# graceful reload.
test-apache: build
	SESSCACHE_LIB=$(CURDIR)/$(LIB_SO) c-tests/apache/run-apache-tests.sh

# The stats directory: .stats and .prom files written by the demo, read by
# sesscache-stats, also among garbage files.
test-stats: build $(DEMO)
	SESSCACHE_LIB=$(CURDIR)/$(LIB_SO) DEMO=$(CURDIR)/$(DEMO) c-tests/stats/test-stats.sh

# make install into a temporary DESTDIR, build a server with pkg-config,
# run it, make uninstall.
test-install: build
	c-tests/install/test-install.sh

# Installs what `make` built (run `make` first; install builds nothing).
install:
	@test -f $(LIB_SO) -a -f $(RELEASE)/libsesscache.a -a -f $(RELEASE)/sesscache-stats \
	  || { echo "run make first"; exit 1; }
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(PCDIR) $(DESTDIR)$(INCLUDEDIR) \
	  $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man7
	install -m 755 $(LIB_SO) $(DESTDIR)$(LIBDIR)/libsesscache.so
	install -m 644 $(RELEASE)/libsesscache.a $(DESTDIR)$(LIBDIR)/libsesscache.a
	install -m 644 include/sesscache.h $(DESTDIR)$(INCLUDEDIR)/sesscache.h
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' \
	  -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' -e 's|@VERSION@|$(VERSION)|g' \
	  c-tests/install/sesscache.pc.in >$(DESTDIR)$(PCDIR)/sesscache.pc
	chmod 644 $(DESTDIR)$(PCDIR)/sesscache.pc
	sed -e 's|@LIBDIR@|$(LIBDIR)|g' c-tests/install/with-sesscache.in \
	  >$(DESTDIR)$(BINDIR)/with-sesscache
	chmod 755 $(DESTDIR)$(BINDIR)/with-sesscache
	install -m 755 $(RELEASE)/sesscache-stats $(DESTDIR)$(BINDIR)/sesscache-stats
	install -m 644 c-tests/install/sesscache.7 $(DESTDIR)$(MANDIR)/man7/sesscache.7

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/libsesscache.so $(DESTDIR)$(LIBDIR)/libsesscache.a \
	  $(DESTDIR)$(INCLUDEDIR)/sesscache.h $(DESTDIR)$(PCDIR)/sesscache.pc \
	  $(DESTDIR)$(BINDIR)/with-sesscache $(DESTDIR)$(BINDIR)/sesscache-stats \
	  $(DESTDIR)$(MANDIR)/man7/sesscache.7

# A Debian package of what make install installs (PREFIX=/usr), with example
# systemd drop-ins for nginx, HAProxy and Apache in its doc directory.
deb: build
	c-tests/deb/build-deb.sh

# Installs that package with dpkg on this machine, runs the demo under
# with-sesscache, removes it and checks nothing is left (needs root).
test-deb: deb $(DEMO)
	DEMO=$(CURDIR)/$(DEMO) c-tests/deb/test-deb.sh

clean:
	$(CARGO) clean
