# wsgideploy: `make demo` brings up the local cluster and deploys the app to it; `make test` runs
# every check. Both set up what they need first (scripts/bootstrap.sh).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV ?= $(CURDIR)/.venv
export WSGIDEPLOY_VENV := $(VENV)
export PATH := $(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PY_COLORS ?= 0
# molecule scenarios `make test` runs, side by side (each on its own hosts); MOLECULE_SERIAL=1 runs
# them one after the other
SCENARIOS ?= default cluster
MOLECULE_SERIAL ?=
DEMO_URL ?= https://127.0.0.1:8443/
DEMO_HTTP_URL ?= http://127.0.0.1:8080/
# make bench: the bench scenario's molecule state (inventory included), where bench.py finds it;
# molecule looks at that scenario only (MOLECULE_GLOB), so no other scenario sees this state.
BENCH_EPHEMERAL ?= $(CURDIR)/.cache/molecule-bench
BENCH_ARGS ?=

.PHONY: help bootstrap demo down status logs test lint unit molecule bench

help:
	@echo "make demo   bring up the local cluster (1 lb + 3 app hosts) and deploy the app ($(DEMO_URL))"
	@echo "make test   lint + unit tests + every molecule scenario ($(SCENARIOS))"
	@echo "make down   remove the demo hosts"
	@echo "make status release and instance health of every demo app host"
	@echo "make logs   the latest log lines of every demo host (app servers, nginx)"
	@echo "make lint | unit | molecule   the parts of make test"
	@echo "make bench  on a bench fleet (lb + 3 app hosts, fresh): cold converge time, no-op and deploy run times over"
	@echo "            1 host vs all, uWSGI vs Gunicorn throughput, app server direct vs through the stack, transports,"
	@echo "            latency (p50/p99/max, half load and saturation, 3 paths), reload modes under load; as ratios"
	@echo "            (bench-results.json). BENCH_ARGS='--only fleet,stack' or '--skip reload'"
	@echo "            (phases: fleet, throughput, stack, latency, reload)"

bootstrap:
	@scripts/bootstrap.sh

demo: bootstrap
	ansible-playbook -i inventories/local playbooks/local-cluster.yml
	ansible-playbook -i inventories/local site.yml
	@scripts/demo-check.sh "$(DEMO_URL)" "$(DEMO_HTTP_URL)"

down: bootstrap
	ansible-playbook -i inventories/local playbooks/local-cluster.yml -e local_cluster_state=absent

status: bootstrap
	ansible-playbook -i inventories/local playbooks/status.yml

logs: bootstrap
	ansible-playbook -i inventories/local playbooks/logs.yml

test: bootstrap lint unit molecule

lint: bootstrap
	yamllint --strict .
	ANSIBLE_VAULT_IDENTITY_LIST=staging@inventories/staging/.vault-pass.example,production@inventories/production/.vault-pass.example \
	  ansible-lint --profile production

unit: bootstrap
	pytest -q -p no:cacheprovider app/tests tests guestbook/tests djangosite/tests

molecule: bootstrap
	@scripts/run-scenarios.sh $(if $(MOLECULE_SERIAL),--serial) $(SCENARIOS)

# Not part of make test: a benchmark (figures of one run, as ratios). Fresh hosts every time (any
# earlier bench fleet is destroyed first): `molecule converge` on them is timed as the cold
# converge and handed to bench.py. The hosts are destroyed at the end whatever happened.
bench: bootstrap
	@export MOLECULE_EPHEMERAL_DIRECTORY="$(BENCH_EPHEMERAL)" MOLECULE_GLOB=molecule/bench/molecule.yml; \
	  bench_t0=$$(date +%s); \
	  trap 'echo "== molecule destroy -s bench"; molecule destroy -s bench >/dev/null || echo "molecule destroy -s bench failed"; echo "== make bench: $$(( $$(date +%s) - bench_t0 )) s in all"' EXIT; \
	  trap 'exit 130' INT TERM; \
	  echo "== molecule destroy, create -s bench (fresh hosts; prepare installs wrk)"; \
	  molecule destroy -s bench >/dev/null; \
	  molecule create -s bench; \
	  echo "== molecule converge -s bench (timed: the cold converge)"; \
	  cold_t0=$$(date +%s%N); \
	  molecule converge -s bench; \
	  cold_s=$$(awk -v a="$$cold_t0" -v b="$$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }'); \
	  echo "== cold converge: $$cold_s s"; \
	  python molecule/bench/bench.py --output "$(CURDIR)/bench-results.json" --cold-converge-s "$$cold_s" $(BENCH_ARGS)
