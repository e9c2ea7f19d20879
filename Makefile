# privgate: `make demo` runs the pipeline on synthetic data, `make test` runs the suite.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

# The demo keyring passphrase is for the synthetic demo only; real runs set their own.
DEMO_PASSPHRASE ?= privgate-demo-only-passphrase

.PHONY: install demo test test-peers lint bench bench-memory lock clean

install: $(STAMP)

$(STAMP): requirements.lock setup.py privgate/_hmac.c
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes --no-deps -r requirements.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: install
	PRIVGATE_KEYRING_PASSPHRASE="$${PRIVGATE_KEYRING_PASSPHRASE:-$(DEMO_PASSPHRASE)}" \
	  $(PY) -m pipelines.demo --rows 2000

# What the tests need beyond the lock file: SoftHSM2 (a PKCS#11 token the KMS tests set up
# themselves) and OpenSSL headers (the optional C HMAC extension, privgate/_hmac.c), both
# Debian packages. moto_server, gcp-storage-emulator and the Cloud KMS gRPC fake come from
# the lock file.
SOFTHSM_LIB ?= /usr/lib/softhsm/libsofthsm2.so
APT_PKGS := $(if $(wildcard $(SOFTHSM_LIB)),,softhsm2) \
            $(if $(wildcard /usr/include/openssl/sha.h),,libssl-dev)
test-peers:
	@pkgs="$(strip $(APT_PKGS))"; [ -z "$$pkgs" ] || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get install -y -q $$pkgs >/dev/null || \
	  { $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q $$pkgs >/dev/null; }; }
	@test -e $(SOFTHSM_LIB) || { echo "SoftHSM2 missing: apt-get install softhsm2" >&2; exit 1; }

test: test-peers install
	@$(PY) -c "import privgate._hmac" 2>/dev/null || \
	  $(PY) -m pip install --quiet --no-deps --no-build-isolation -e .  # built before libssl-dev
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports --no-cache
	$(PY) -m pytest -q

lint: install
	$(PY) -m ruff check . && $(PY) -m ruff format --check . && $(VENV)/bin/lint-imports --no-cache

bench: install
	$(PY) benchmarks/bench_spine.py --rows 1000000 --gates --user-suite --repeat 5
	$(PY) benchmarks/bench_gates.py --repeat 3
	$(PY) benchmarks/bench_ldp.py
	$(PY) benchmarks/detect_eval.py
	$(PY) benchmarks/bench_mondrian.py --rows 1000000 4000000
	$(PY) benchmarks/bench_mondrian.py --local-only 200000
	$(PY) benchmarks/train_and_audit.py --canaries 1000 --null-seeds 20
	$(PY) benchmarks/bench_objstore.py --rows 1000000 --repeat 3

# ~25 min and ~11 GB of temp disk: 10 GB of generated CSV, peak RSS with 1 and 2 workers.
bench-memory: install
	$(PY) benchmarks/bench_memory.py --gb 10 --workers 1 2

# Re-pin dependencies (needs pip-tools; not part of install).
lock:
	pip-compile --generate-hashes --allow-unsafe --no-emit-find-links --no-emit-index-url \
	  --strip-extras -o requirements.lock requirements.in

clean:
	rm -rf $(VENV) out .privgate data/demo build *.egg-info
