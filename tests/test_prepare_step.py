"""`prepare:` names a preparation step the package ships; options never name a script, so they never run code."""
import os
import subprocess
import sys
import timeit
from os import path as osp

import pytest
import yaml
from conftest import assert_error_line, assert_names, make_options, make_test_options

from basicsr_tur.prepare import demo_data
from basicsr_tur.test import run_test
from basicsr_tur.train import train_pipeline
from basicsr_tur.utils.cli import run_cli
from basicsr_tur.utils.option_file import OptionError
from basicsr_tur.utils.registry import PREPARE_REGISTRY, run_prepare_step

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def with_prepare(path: str, prepare) -> str:
    """Set `prepare:` of an options file; return its path."""
    with open(path) as f:
        opt = yaml.safe_load(f)
    opt['prepare'] = prepare
    with open(path, 'w') as f:
        yaml.safe_dump(opt, f, sort_keys=False)
    return path


@pytest.fixture
def evil_script(tmp_path):
    """A script that would create `marker` if anything ran it: (script path, marker path)."""
    marker = tmp_path / 'marker'
    script = tmp_path / 'evil.py'
    script.write_text(f'open({str(marker)!r}, "w").close()\n')
    return str(script), str(marker)


def run_entry(pipeline, root: str, opt_path: str, capsys) -> tuple[int, list[str]]:
    """Run a pipeline through the command-line entry (as train.py/test.py do): exit status, stderr lines."""
    rc = run_cli(lambda r: pipeline(r, ['-opt', opt_path]), root)
    return rc, capsys.readouterr().err.strip().splitlines()


def script_forms(tmp_path, script: str) -> dict[str, str]:
    """The ways an options file could point at a script: relative to the root, absolute, and through `..`."""
    root = tmp_path / 'run'
    root.mkdir(exist_ok=True)
    return {'relative': osp.relpath(script, tmp_path), 'absolute': script,
            'dotdot': osp.join('..', osp.relpath(script, tmp_path))}


@pytest.mark.parametrize('form', ['relative', 'absolute', 'dotdot', 'shipped_script'])
def test_script_path_in_prepare_is_refused_in_one_line_and_never_runs(form, tmp_path, clean_root, paired_root,
                                                                     evil_script, capsys):
    script, marker = evil_script
    value = 'scripts/make_demo_data.py' if form == 'shipped_script' else script_forms(tmp_path, script)[form]
    root = str(tmp_path / 'run') if form == 'dotdot' else str(tmp_path)
    os.makedirs(root, exist_ok=True)
    opt_path = with_prepare(make_options(tmp_path, clean_root, paired_root), value)
    rc, err = run_entry(train_pipeline, root, opt_path, capsys)
    assert rc == 1
    assert_error_line('\n'.join(err), opt_path, "'prepare'", repr(value), 'demo')
    assert not osp.exists(marker)
    assert not osp.exists(osp.join(root, 'experiments'))


def test_old_script_mapping_is_refused_and_its_command_never_runs(tmp_path, clean_root, paired_root, capsys):
    # The report's recipe: stdlib timeit.py evaluating an argument that runs a shell command.
    marker = tmp_path / 'marker'
    prepare = {'script': osp.abspath(timeit.__file__),
               'args': ['-n', '1', f"__import__('os').system('touch {marker}')"], 'creates': 'datasets/never'}
    opt_path = with_prepare(make_options(tmp_path, clean_root, paired_root), prepare)
    rc, err = run_entry(train_pipeline, str(tmp_path), opt_path, capsys)
    assert rc == 1
    assert_error_line('\n'.join(err), opt_path, "'prepare'", 'demo')
    assert not marker.exists()
    assert not (tmp_path / 'experiments').exists()


def test_test_pipeline_refuses_a_script_in_prepare_too(tmp_path, paired_root, evil_script, capsys):
    script, marker = evil_script
    opt_path = with_prepare(make_test_options(tmp_path, paired_root, 'none.pth'),
                            {'script': script, 'creates': 'datasets/never'})
    rc, err = run_entry(run_test, str(tmp_path), opt_path, capsys)
    assert rc == 1
    assert_error_line('\n'.join(err), opt_path, "'prepare'", 'demo')
    assert not osp.exists(marker)
    assert not (tmp_path / 'results').exists()


def test_run_prepare_step_refuses_an_unchecked_name_too(tmp_path, evil_script):
    # The pipelines check options at parse time; run_prepare_step checks again rather than trust its caller.
    script, marker = evil_script
    with pytest.raises(OptionError) as err:
        run_prepare_step({'prepare': script, 'opt_path': 'o.yml'}, str(tmp_path))
    assert_names(err, 'o.yml', "'prepare'", script, 'demo')
    assert not osp.exists(marker)


def test_every_shipped_prepare_names_a_registered_step():
    names = set()
    for folder, _, files in os.walk(osp.join(REPO, 'options')):
        for name in files:
            if name.endswith('.yml'):
                with open(osp.join(folder, name)) as f:
                    prepare = yaml.safe_load(f).get('prepare')
                if prepare is not None:
                    names.add(prepare)
    assert names == {'demo'} and 'demo' in PREPARE_REGISTRY


def test_importing_the_package_registers_the_demo_step_but_loads_no_preparation_code():
    # The file-suffix scan (archs/data/losses/models __init__) and the lazy step: the name is known to the options
    # check, while the settings, the demo builder and scikit-image load only when data is prepared.
    code = ('import sys, basicsr_tur\n'
            'from basicsr_tur.utils.registry import PREPARE_REGISTRY\n'
            'print(sorted(PREPARE_REGISTRY.keys()))\n'
            'print(sorted(m for m in sys.modules if m.startswith(("basicsr_tur.prepare.", "basicsr_tur.data.")) '
            'or m == "skimage"))\n')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["['demo']", str(sorted([
        'basicsr_tur.data.data_util', 'basicsr_tur.data.degradations', 'basicsr_tur.data.device_degradations',
        'basicsr_tur.data.mixed_task_dataset',
        'basicsr_tur.data.paired_task_dataset', 'basicsr_tur.data.samplers',  # samplers: TURModel's ShardSampler
        'basicsr_tur.data.synthetic_task_dataset']))]


def test_demo_step_builds_the_demo_data_in_process(tmp_path):
    run_prepare_step({'prepare': 'demo', 'opt_path': 'o.yml'}, str(tmp_path))
    out = tmp_path / 'datasets' / 'demo'
    assert sorted(os.listdir(out / 'train' / 'gt')) == ['astronaut.png', 'coffee.png', 'motorcycle_a.png', 'rocket.png']
    lines = (out / 'meta_test.txt').read_text().splitlines()
    assert len(lines) == 14 and 'noise/chelsea.png chelsea.png noise' in lines
    assert all((out / 'test' / 'lq' / line.split()[0]).is_file() for line in lines)
    assert not (tmp_path / 'datasets' / 'demo.partial').exists()


def test_demo_step_is_skipped_when_its_output_exists(tmp_path, monkeypatch):
    out = tmp_path / 'datasets' / 'demo'
    out.mkdir(parents=True)
    monkeypatch.setattr(demo_data, 'write_demo_data', lambda *a: pytest.fail('the demo data was rebuilt'))
    run_prepare_step({'prepare': 'demo', 'opt_path': 'o.yml'}, str(tmp_path))
    assert os.listdir(out) == []


def test_failed_demo_step_leaves_no_partial_folder(tmp_path, monkeypatch):
    def half_write(out, seed):
        os.makedirs(osp.join(out, 'train'))
        raise OSError('disk full')

    monkeypatch.setattr(demo_data, 'write_demo_data', half_write)
    with pytest.raises(OSError, match='disk full'):
        run_prepare_step({'prepare': 'demo', 'opt_path': 'o.yml'}, str(tmp_path))
    assert os.listdir(tmp_path / 'datasets') == []


def test_make_demo_data_script_reports_an_existing_folder(tmp_path, capsys):
    sys.path.insert(0, osp.join(REPO, 'scripts'))
    try:
        import make_demo_data
    finally:
        sys.path.pop(0)
    (tmp_path / 'demo').mkdir()
    make_demo_data.main(['--out', str(tmp_path / 'demo')])
    assert 'exists; delete it to rebuild' in capsys.readouterr().out
