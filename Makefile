# s2m — two commands do everything: `make demo` and `make test`.
# Both create .venv if missing, install the pinned requirements (torch==2.13.0 first so that
# nothing pulls a CUDA build), build the ROS 2 messages into the venv, then run.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.s2m-installed
MSGS_BUILT := $(VENV)/.s2m-msgs-built
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST

.PHONY: demo test setup msgs lint bench open-benchmark clean help

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(PY):
	$(PYTHON) -m venv $(VENV)

REQUIREMENTS := requirements.txt requirements-core.txt requirements-ros-pypi.txt requirements-dev.txt requirements-nodeps.txt

$(INSTALLED): $(REQUIREMENTS) setup.py | $(PY)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -r requirements-nodeps.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

$(MSGS_BUILT): $(INSTALLED) CMakeLists.txt package.xml $(wildcard msg/*.msg) $(wildcard cmake/*.cmake) \
		$(wildcard cmake/tf2_msgs/* cmake/tf2_msgs/msg/* cmake/hri_msgs/* cmake/hri_msgs/msg/*) tools/build_msgs.sh
	bash tools/build_msgs.sh $(VENV)
	touch $@

# The demo clip (BSD-3, inside the sports2d wheel) comes from PyPI during set-up, never at run time.
DEMO_VIDEO := $(VENV)/share/s2m/demo/demo.mp4
$(DEMO_VIDEO): tools/fetch_demo_video.sh | $(INSTALLED)
	PYTHON=$(PY) bash tools/fetch_demo_video.sh $(VENV)/share/s2m/demo

setup: $(INSTALLED) $(MSGS_BUILT) $(DEMO_VIDEO)  ## create .venv and install everything (idempotent)

msgs: $(MSGS_BUILT)  ## build the ROS 2 messages into the venv

demo: setup  ## run the main job on the embedded default, outputs in out/demo/
	$(VENV)/bin/s2m demo --out out/demo

test: setup  ## run ruff and the whole test suite
	$(VENV)/bin/ruff check s2m_model s2m_ros test bench launch
	$(PY) -m pytest -q

lint: setup  ## ruff only
	$(VENV)/bin/ruff check s2m_model s2m_ros test bench launch

bench: setup  ## run every benchmark (JSON on stdout)
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

OPEN_BENCH ?= data/s2m-open
open-benchmark: setup  ## rebuild the open benchmark from ../shared/data and score every method
	@set -e; for s in "train 20000 0" "val 2000 1" "test 2000 2" "test-cmu 1000 3"; do set -- $$s; \
	  $(VENV)/bin/s2m data build --out $(OPEN_BENCH)/$$1 --split $$1 --n $$2 --seed $$3 --workers 2; done
	$(VENV)/bin/s2m eval --method all --data $(OPEN_BENCH)/test --out out/eval-test
	$(VENV)/bin/s2m eval --method all --data $(OPEN_BENCH)/test-cmu --out out/eval-test-cmu

clean:  ## remove the venv and outputs (the body-model cache in ~/.cache/s2m stays)
	rm -rf $(VENV) out build
