# depthnas: `make search` runs a real quick search; `make test` runs the test suite.
# Both create .venv and install the package the first time.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SEARCH_OUT ?= runs/quick-$(shell date +%Y%m%d-%H%M%S)
PYTEST_ARGS ?=

export HF_HUB_OFFLINE := 1
export NO_ALBUMENTATIONS_UPDATE := 1
export GRADIO_ANALYTICS_ENABLED := False
export MPLBACKEND := Agg

.PHONY: install search test bench clean

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $@

# The stamp alone would miss an editable install removed since (pip uninstall, a
# moved checkout): then `depthnas.spaces` is not found and the install runs again.
install: $(VENV)/.installed
	@$(PY) -c "import importlib.util as u; assert u.find_spec('depthnas.spaces')" 2>/dev/null \
		|| $(PY) -m pip install --quiet -e ".[dev]"

search: install
	$(VENV)/bin/depthnas search --preset quick --data synthetic --out $(SEARCH_OUT)

test: install
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: install
	$(PY) benchmarks/step_time.py --preset cpu

clean:  # build products only: runs/ holds searches, hours of work each
	rm -rf build *.egg-info .pytest_cache
