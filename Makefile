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

.PHONY: all demo test venv node typings prereq sweep campaign drills clean constraints soak

all: test

prereq:
	@command -v $(PY) >/dev/null 2>&1 || { echo "error: $(PY) not found: install Python >= 3.11" >&2; exit 1; }
	@$(PY) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || { echo "error: Python >= 3.11 required ($(PY) is $$($(PY) -V 2>&1)); set PY=python3.11 or newer" >&2; exit 1; }
	@$(PY) -c 'import venv, ensurepip' 2>/dev/null || { echo "error: $(PY) lacks the venv/ensurepip modules (Debian/Ubuntu: apt install python3-venv)" >&2; exit 1; }
	@command -v node >/dev/null 2>&1 || { echo "error: node not found: install Node.js >= 18 (runs real MicroPython for the firmware tests)" >&2; exit 1; }
	@command -v npm >/dev/null 2>&1 || { echo "error: npm not found: install npm (fetches the MicroPython WebAssembly port)" >&2; exit 1; }

# dependencies are declared in pyproject.toml (runtime, and the `dev` extra for tests);
# constraints.txt pins every version, transitive ones included
$(STAMP): constraints.txt pyproject.toml
	@$(MAKE) --no-print-directory prereq
	$(PY) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade pip
	$(VPY) -m pip install --quiet -c constraints.txt -e '.[dev]'
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

# every board of the demo is the real MicroPython unix port with a Pico's heap (as reliable and as
# fast for the drill as CPython boards, measured); DEMO_RUNTIME=cpython runs them under CPython
DEMO_RUNTIME ?= micropython
demo: $(STAMP) $(NODE_STAMP)
	$(VENV)/bin/arcopy demo --runtime $(DEMO_RUNTIME)

sweep: $(STAMP)
	$(VENV)/bin/arcopy sim sweep --seeds 10000

# every mode x operation x fault class, SEEDS seeds per cell (not part of `make test`);
# ENGINE=ray runs the seeds as tasks on a local Ray cluster (the ray extra, in .[dev])
SEEDS ?= 20
ENGINE ?= local
campaign: $(STAMP)
	mkdir -p build
	$(VENV)/bin/arcopy sim campaign --seeds $(SEEDS) --engine $(ENGINE) --json build/campaign.json

# the soak (not part of `make test`): the demo on MicroPython boards (the unix port, a Pico's
# heap) with SOAK_MIN minutes of workload, i.e. of board uptime, then the disaster, failover and
# verify; board clocks start SOAK_OFFSET_US below 2**30 us so they pass that point early. It
# fails unless the recovered image is consistent and no board went above its heap.
SOAK_MIN ?= 30
SOAK_RATE ?= 20
SOAK_OFFSET_US ?= 120000000
soak: $(STAMP)
	mkdir -p build
	$(VENV)/bin/arcopy demo --runtime micropython --pairs 2 --rate $(SOAK_RATE) \
		--duration $$(( $(SOAK_MIN) * 60 )) --disaster-at $$(( $(SOAK_MIN) * 60 )) \
		--clock-offset-us $$(( (1 << 30) - $(SOAK_OFFSET_US) )) --no-progress --json > build/soak.json
	@cat build/soak.json

# the operation drills with every fault class (issue #13): DRILL_SEEDS seeds per operation with the
# disaster at a drawn instant and as many in the middle of the resync, DUPLEX_SEEDS with it at the
# instant every pair first shows DUPLEX after the resync; exits 1 if any seed fails
DRILL_SEEDS ?= 1000
DUPLEX_SEEDS ?= 100
DRILL_OPS ?= initial-copy suspend autosuspend failback
drills: $(STAMP)
	mkdir -p build
	@st=0; for op in $(DRILL_OPS) pacing master-restart; do \
	  $(VENV)/bin/arcopy sim sweep --ops $$op --faults all --seeds $(DRILL_SEEDS) --json-out build/drills-$$op.json || st=1; \
	done; for op in $(DRILL_OPS); do \
	  $(VENV)/bin/arcopy sim sweep --ops $$op --faults all --seeds $(DRILL_SEEDS) --disaster-at resync --json-out build/drills-$$op-resync.json || st=1; \
	  $(VENV)/bin/arcopy sim sweep --ops $$op --faults all --seeds $(DUPLEX_SEEDS) --disaster-at duplex --json-out build/drills-$$op-duplex.json || st=1; \
	done; exit $$st

# rewrite constraints.txt from the working venv (after changing pyproject.toml's dependencies)
constraints: $(STAMP)
	{ sed -n '1,/^# Regenerate/p' constraints.txt; $(VPY) -m pip freeze --exclude-editable | grep -v '^#' | grep -iv '^arcopy[= ]'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

clean:
	rm -rf $(VENV) node_modules build .pytest_cache .hypothesis typings .mypy_cache
