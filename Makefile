# ferry — every entry point a user or CI needs. `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=
FORMATTED := ferry ferry_cli ferry_dev glue_jobs chalice_app/app.py chalice_app/chalicelib tests bench

CHAOS_ARGS ?=
BENCH_ARGS ?=
# Deployment: `make deploy STAGE=prod SPEC=ferry.yaml`
STAGE ?= dev
SPEC  ?= ferry.yaml
TF    ?= terraform
# One root (terraform/) for every stage; a stage is terraform/stages/<stage>.tfvars (committed
# sizing) + <stage>.tfbackend (where its state lives). TF_STAGE is relative to the root (-chdir).
TF_ROOT  := terraform
TF_STAGE := stages/$(STAGE)
FERRY := $(VENV)/bin/ferry

.PHONY: help install demo chaos test test-unit test-functional test-spark lint fmt typecheck vendor glue-zip clean \
	package credentials plan deploy deploy-local security tf-fmt bench browser

help:
	@echo "make demo   - set up, start the embedded emulator and migrate a live table end to end"
	@echo "make test   - set up, lint (ruff, mypy) and run the whole suite (unit, functional, spark, e2e)"
	@echo "make chaos  - seeded campaign of live traffic, injected faults and crashes (under 10 min)"
	@echo "make lint   - ruff + mypy"
	@echo "make vendor - copy the ferry core into chalice_app/vendor for packaging"
	@echo "make glue-zip - build/ferry.zip for Glue's --extra-py-files"
	@echo "make package  - vendor + Chalice package (build/chalice/deployment.zip) + Glue zip"
	@echo "make plan STAGE=x SPEC=f   - artifacts, Terraform variables from the spec, terraform plan"
	@echo "make deploy STAGE=x SPEC=f - prepare the sources (streams, EventBridge), then plan and apply"
	@echo "make deploy-local          - rehearse the deployment against the embedded emulator"
	@echo "make security              - checkov on terraform/ (own venv), zero failed checks"
	@echo "make bench [BENCH_ARGS=--quick] - ferry side by side with the naive way and the usual tools"

MINISTACK_VENV ?= .venv-ministack

$(STAMP): pyproject.toml requirements-dev.txt requirements-ministack.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	$(PYTHON) -m venv $(MINISTACK_VENV)
	$(MINISTACK_VENV)/bin/python -m pip install --quiet -r requirements-ministack.txt
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/ferry demo

chaos: $(STAMP)
	$(VENV)/bin/ferry chaos $(CHAOS_ARGS)

# One table, every line measured in this run; writes build/bench/results.json (BENCHMARKS.md
# holds the latest). BENCH_ARGS=--quick for the under-3-minute version.
bench: $(STAMP)
	$(PY) -m bench $(BENCH_ARGS)

# The report test renders `ferry report` in headless Chromium: Debian's package, installed when missing
# (CI runs as root on a fresh machine).
CHROMIUM ?= /usr/bin/chromium
browser:
	@test -x $(CHROMIUM) || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	@test -x $(CHROMIUM) || { echo "make browser: $(CHROMIUM) missing; install Debian's chromium package" >&2; exit 1; }

test: lint browser
	$(PY) -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

test-unit: $(STAMP)
	$(PY) -m pytest -m unit $(PYTEST_ARGS)

test-functional: $(STAMP)
	$(PY) -m pytest -m functional $(PYTEST_ARGS)

test-spark: $(STAMP)
	$(PY) -m pytest -m spark $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check $(FORMATTED)
	$(PY) -m mypy
	$(TF) fmt -check -recursive terraform

tf-fmt:
	$(TF) fmt -recursive $(TF_ROOT)

security:
	bash scripts/checkov.sh

fmt: $(STAMP)
	$(PY) -m ruff format $(FORMATTED)
	$(PY) -m ruff check --fix .

# What ships is defined once, in ferry_cli/artifacts.py: the core package, nothing else.
vendor: $(STAMP)
	$(PY) -m ferry_cli.artifacts vendor --app-dir chalice_app

glue-zip: $(STAMP)
	mkdir -p build && rm -f build/ferry.zip
	$(PY) -m ferry_cli.artifacts glue-zip --out build/ferry.zip

# Chalice's own package: deployment.zip has app.py, chalicelib/, vendor/ferry and Powertools. The
# "package" stage only builds the zip (Terraform creates the roles and reads only deployment.zip).
package: $(STAMP) vendor glue-zip
	rm -rf build/chalice
	cd chalice_app && ../$(VENV)/bin/chalice package --stage package ../build/chalice

# Every AWS step needs credentials; `ferry whoami` exits 2 with a clear message without them.
credentials: $(STAMP)
	@test -f "$(SPEC)" || { echo "error: SPEC=$(SPEC) does not exist (make deploy STAGE=x SPEC=path/to/ferry.yaml)"; exit 2; }
	@for f in $(TF_ROOT)/$(TF_STAGE).tfvars $(TF_ROOT)/$(TF_STAGE).tfbackend; do \
	  test -f "$$f" || { echo "error: no Terraform stage STAGE=$(STAGE) ($$f is missing; a stage is $(TF_ROOT)/stages/<stage>.tfvars + <stage>.tfbackend)"; exit 2; }; \
	done
	$(FERRY) whoami --spec $(SPEC)

# Nothing is auto-loaded: the generated variables first, the committed sizing last (it wins).
plan: credentials package
	$(FERRY) tfvars --spec $(SPEC) --stage $(STAGE) --out $(TF_ROOT)/$(TF_STAGE).ferry.tfvars.json
	$(TF) -chdir=$(TF_ROOT) init -input=false -reconfigure -backend-config=$(TF_STAGE).tfbackend
	$(TF) -chdir=$(TF_ROOT) plan -input=false -var-file=$(TF_STAGE).ferry.tfvars.json -var-file=$(TF_STAGE).tfvars -out=$(TF_STAGE).tfplan

deploy: credentials
	$(FERRY) init --spec $(SPEC) --sources-only
	$(MAKE) plan STAGE=$(STAGE) SPEC=$(SPEC)
	$(TF) -chdir=$(TF_ROOT) apply -input=false $(TF_STAGE).tfplan

deploy-local: $(STAMP)
	$(FERRY) deploy-local

clean:
	rm -rf build chalice_app/vendor .pytest_cache .ruff_cache .mypy_cache $(MINISTACK_VENV)
