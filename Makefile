# Quick start:  make demo  (install + train and evaluate the embedded demo)   |   make test  (install + lint + tests)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo demo-compare restore-demo test lint bench gpu-wheels clean

$(STAMP): setup.py requirements.txt requirements-dev.txt requirements-app.txt requirements-export.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	# PyTorch first, pinned: the CUDA build that also runs on the CPU (docs/install.md).
	$(PY) -m pip install torch==2.14.1 torchvision==0.29.1
	# The optional extras are installed too, so that their tests run (app: gradio, ~200 MB; export: onnx,
	# onnxruntime, onnxscript, ~120 MB).
	$(PY) -m pip install -r requirements.txt -r requirements-dev.txt -r requirements-app.txt -r requirements-export.txt
	$(PY) -m pip install --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

# The embedded demo: a reduced Restormer trained with TUR on four MiO tasks from scikit-image's photographs, then its
# per-task table against the degraded input (~5.5 min on 2 cores, 7.5 with a first install; docs/demo.md).
DEMO_TUR := experiments/demo_Restormer_TUR/models/net_g_latest.pth
DEMO_L1 := experiments/demo_Restormer_L1/models/net_g_latest.pth

demo: install
	$(PY) train.py -opt options/train/demo/Restormer_TUR.yml
	$(PY) test.py -opt options/test/demo/Restormer.yml

# The plain-L1 baseline on the same budget (~5 min), then L1 and TUR side by side (table and picture) in results/.
demo-compare: install
	test -f $(DEMO_TUR) || $(PY) train.py -opt options/train/demo/Restormer_TUR.yml
	test -f results/demo_Restormer_TUR/metrics.json || $(PY) test.py -opt options/test/demo/Restormer.yml
	$(PY) train.py -opt options/train/demo/Restormer_L1.yml
	$(PY) test.py -opt options/test/demo/Restormer.yml --force_yml name=demo_Restormer_L1 \
		path:pretrain_network_g=$(DEMO_L1)
	$(PY) scripts/compare.py results/demo_Restormer_L1/metrics.json results/demo_Restormer_TUR/metrics.json \
		--out results/demo_compare
	$(PY) scripts/compare_images.py -opt options/test/demo/Restormer.yml --run L1=$(DEMO_L1) --run TUR=$(DEMO_TUR) \
		--out results/demo_compare.png

# restore.py on images of every kind (8/16-bit PNG and TIFF, gray, RGBA, an EXIF-rotated JPEG) made from the demo's test
# set, with the demo's TUR checkpoint (trained first if missing): restored images, σ maps and grids in
# results/restore_demo (docs/restore.md).
restore-demo: install
	test -f $(DEMO_TUR) || $(PY) train.py -opt options/train/demo/Restormer_TUR.yml
	$(PY) scripts/make_demo_data.py --photos datasets/demo/photos
	$(PY) restore.py -opt options/test/demo/Restormer.yml -i datasets/demo/photos --recursive -o results/restore_demo \
		--tile 128 --tile-overlap 32 --uncertainty --grid

lint: install
	$(PY) -m ruff check .

# pip check: every installed distribution's requirements met (tests/test_dependencies.py also checks there is one
# distribution of cv2 and of tensorboard).
test: lint
	$(PY) -m pip check
	$(PY) -m pytest -q tests

bench: install
	$(PY) bench/count_syncs.py
	$(PY) bench/bench_host_step.py
	$(PY) bench/bench_loss.py
	$(PY) bench/bench_data.py
	$(PY) bench/bench_data.py --lmdb-write
	# every backbone, fp32/bf16/bf16+compile: about 75 minutes on 2 CPU cores (batch 8 of Restormer/PromptIR does
	# not fit in 24 GiB; AirNet's deformable convolutions take ~50 s per image); on a GPU: bench/gpu_session.sh
	$(PY) bench/bench_train.py --modes fp32 bf16 bf16+compile --repeat 1 \
		--arch-batch Restormer=2 PromptIR=2 Uformer-B=2 AirNet=1

# Wheels of what the lent GPU machine lacks (Python 3.12 there), for bench/gpu_session.sh: carry .whl to the device.
gpu-wheels: install
	grep -qx '/.whl/' .git/info/exclude || echo /.whl/ >> .git/info/exclude
	$(PY) -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
		-d .whl lmdb==$$($(PY) -c 'import lmdb; print(lmdb.__version__)') addict
	$(PY) -m pip wheel --no-deps -w .whl basicsr==1.4.2

clean:
	rm -rf experiments results tb_logger .pytest_cache .ruff_cache
