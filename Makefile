# Quick start:  make demo  (install + train and evaluate the embedded demo)   |   make test  (install + lint + tests)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo demo-l1 test lint bench clean

$(STAMP): setup.py requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	# PyTorch first, pinned: the CUDA build that also runs on the CPU (see README, "Installation").
	$(PY) -m pip install torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -r requirements.txt -r requirements-dev.txt
	$(PY) -m pip install --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(PY) train.py -opt options/train/demo/SRResNet_TUR.yml
	$(PY) test.py -opt options/test/demo/SRResNet.yml

demo-l1: install
	$(PY) train.py -opt options/train/demo/SRResNet_L1.yml
	$(PY) test.py -opt options/test/demo/SRResNet.yml --force_yml name=demo_SRResNet_L1 \
		path:pretrain_network_g=experiments/demo_SRResNet_L1/models/net_g_latest.pth

lint: install
	$(PY) -m ruff check .

test: lint
	$(PY) -m pytest -q tests

bench: install
	$(PY) bench/bench_loss.py
	$(PY) bench/bench_data.py
	$(PY) bench/bench_train.py --archs SRResNet Transweather --repeat 1  # all backbones: add --device cuda

clean:
	rm -rf experiments results tb_logger .pytest_cache .ruff_cache
