# Two commands set up and run everything on a fresh machine:
#   make demo   create .venv, install, train + evaluate a Telugu codec on the bundled corpus
#   make test   create .venv, install, run the test suite
PYTHON ?= python3
VENV ?= .venv
# The CPU build of torch; override for CUDA, e.g. make demo TORCH_SPEC='torch==2.13.0'
TORCH_SPEC ?= torch==2.13.0
PIP := $(VENV)/bin/pip
BIN := $(VENV)/bin
SYSTEM_TOOLS := espeak-ng festival ffmpeg c2enc chromium chromedriver
DEMO_ARGS ?=
PYTEST_ARGS ?=

.PHONY: all demo test sysdeps venv lint bench clean

all: test

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "$(TORCH_SPEC)"
	$(PIP) install -q -e '.[dev,data,dnsmos,visqol,onnx]'
	touch $@

venv: $(VENV)/.installed

# espeak-ng and festival with festvox-te-nsk (demo corpora: the espeak-ng voice and a real
# speaker's diphone voice), ffmpeg with libopus and codec2 (baselines), chromium and
# chromium-driver (the browser tests of report.html and the listening test) from Debian/Ubuntu.
sysdeps:
	@missing=""; for t in $(SYSTEM_TOOLS); do command -v $$t >/dev/null 2>&1 || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages for:$$missing"; \
	  SUDO=""; [ "$$(id -u)" -ne 0 ] && SUDO="sudo"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	    espeak-ng festival festvox-te-nsk ffmpeg codec2 chromium chromium-driver >/dev/null || \
	  echo "warning: could not install espeak-ng/festival/ffmpeg/codec2/chromium; some voices, baselines and browser tests are skipped"; \
	fi

test: sysdeps venv
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

demo: sysdeps venv
	$(BIN)/telugu-codec demo $(DEMO_ARGS)

lint: venv
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts

bench: venv
	$(BIN)/python benchmarks/bench_codec_speed.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
