# wsgideploy: `make demo` brings up the local cluster and deploys the app to it; `make test` runs
# every check. Both set up what they need first (scripts/bootstrap.sh).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV ?= $(CURDIR)/.venv
export WSGIDEPLOY_VENV := $(VENV)
export PATH := $(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PY_COLORS ?= 0
# molecule scenarios `make test` runs, in order
SCENARIOS ?= default cluster
DEMO_URL ?= https://127.0.0.1:8443/
DEMO_HTTP_URL ?= http://127.0.0.1:8080/
# make bench: the bench scenario's molecule state (inventory included), where bench.py finds it;
# molecule looks at that scenario only (MOLECULE_GLOB), so no other scenario sees this state.
BENCH_EPHEMERAL ?= $(CURDIR)/.cache/molecule-bench
BENCH_ARGS ?=

.PHONY: help bootstrap demo down status test lint unit molecule bench

help:
	@echo "make demo   bring up the local cluster (1 lb + 3 app hosts) and deploy the app ($(DEMO_URL))"
	@echo "make test   lint + unit tests + every molecule scenario ($(SCENARIOS))"
	@echo "make down   remove the demo hosts"
	@echo "make status release and instance health of every demo app host"
	@echo "make lint | unit | molecule   the parts of make test"
	@echo "make bench  uWSGI vs Gunicorn throughput (same workers), then reload modes and deploys under load, on one"
	@echo "            app host, as ratios (bench-results.json); BENCH_ARGS='--only throughput' or '--skip-throughput'"

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

test: bootstrap lint unit molecule

lint: bootstrap
	yamllint --strict .
	ANSIBLE_VAULT_IDENTITY_LIST=staging@inventories/staging/.vault-pass.example,production@inventories/production/.vault-pass.example \
	  ansible-lint --profile production

unit: bootstrap
	pytest -q -p no:cacheprovider app/tests tests guestbook/tests

molecule: bootstrap
	@for s in $(SCENARIOS); do echo "== molecule test -s $$s"; molecule test -s "$$s" || exit 1; done

# Not part of make test: a benchmark (figures of one run, as ratios). The host is destroyed at the
# end whatever happened.
bench: bootstrap
	@export MOLECULE_EPHEMERAL_DIRECTORY="$(BENCH_EPHEMERAL)" MOLECULE_GLOB=molecule/bench/molecule.yml; \
	  trap 'echo "== molecule destroy -s bench"; molecule destroy -s bench >/dev/null || echo "molecule destroy -s bench failed"' EXIT; \
	  trap 'exit 130' INT TERM; \
	  echo "== molecule converge -s bench"; \
	  molecule converge -s bench; \
	  python molecule/bench/bench.py --output "$(CURDIR)/bench-results.json" $(BENCH_ARGS)
