# Two commands do all set-up: `make demo` (the main job) and `make test`.
# Everything is installed project-locally: .venv (Python) and node_modules (MicroPython/WASM).
PY ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
# MicroPython rp2 stubs for type-checking firmware + rp2 HAL (tests/test_typecheck.py);
# kept apart from the venv's site-packages, where they would shadow CPython's typeshed
TYPINGS_STAMP := typings/.installed
RP2_STUBS := micropython-rp2-rpi-pico-stubs==1.29.0.post1 micropython-stdlib-stubs==1.29.0.post2

.PHONY: all demo test venv node typings prereq sweep clean

all: test

prereq:
	@command -v $(PY) >/dev/null 2>&1 || { echo "error: $(PY) not found: install Python >= 3.10" >&2; exit 1; }
	@$(PY) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' || { echo "error: Python >= 3.10 required" >&2; exit 1; }
	@command -v node >/dev/null 2>&1 || { echo "error: node not found: install Node.js >= 18 (runs real MicroPython for the firmware tests)" >&2; exit 1; }
	@command -v npm >/dev/null 2>&1 || { echo "error: npm not found: install npm (fetches the MicroPython WebAssembly port)" >&2; exit 1; }

$(STAMP): requirements.txt pyproject.toml
	@$(MAKE) --no-print-directory prereq
	$(PY) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade pip
	$(VPY) -m pip install --quiet -r requirements.txt
	$(VPY) -m pip install --quiet --no-deps -e .
	touch $@

$(NODE_STAMP): package.json
	@$(MAKE) --no-print-directory prereq
	npm install --no-audit --no-fund --loglevel=error
	touch $@

$(TYPINGS_STAMP): $(STAMP) Makefile
	rm -rf typings
	$(VPY) -m pip install --quiet --no-deps --target typings $(RP2_STUBS)
	touch $@

venv: $(STAMP)
node: $(NODE_STAMP)
typings: $(TYPINGS_STAMP)

test: $(STAMP) $(NODE_STAMP) $(TYPINGS_STAMP)
	$(VPY) -m pytest -q

demo: $(STAMP) $(NODE_STAMP)
	$(VENV)/bin/arcopy demo

sweep: $(STAMP)
	$(VENV)/bin/arcopy sim sweep --seeds 10000

clean:
	rm -rf $(VENV) node_modules build .pytest_cache .hypothesis typings .mypy_cache
