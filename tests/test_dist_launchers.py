"""init_dist under Slurm's environment (srun sets SLURM_*; no scheduler is needed to test it) and its errors."""
import os
import subprocess
import sys

import pytest
from conftest import assert_names
from test_distributed import free_port

from basicsr_tur.utils.dist import init_dist
from basicsr_tur.utils.errors import RunError, UserError

JOIN = """
import os, sys
from basicsr_tur.utils.dist import all_reduce_sum, close_dist, init_dist
rank, world = init_dist('slurm', 0, {'port': int(sys.argv[1])})
total = all_reduce_sum([float(rank)])[0]
print(rank, world, os.environ['LOCAL_RANK'], os.environ['MASTER_PORT'], total)
close_dist()
"""


def test_slurm_tasks_join_one_gloo_group_with_the_port_from_dist_params():
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(('MASTER_', 'RANK', 'WORLD_', 'LOCAL_RANK'))}
    procs = [subprocess.Popen([sys.executable, '-c', JOIN, str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=dict(env, SLURM_PROCID=str(i), SLURM_NTASKS='2', SLURM_LOCALID=str(i),
                                                  SLURM_NODELIST='node[01]', MASTER_ADDR='127.0.0.1',
                                                  OMP_NUM_THREADS='1'))
             for i in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outs]
    assert sorted(out.split() for out, _ in outs) == [['0', '2', '0', str(port), '1.0'],
                                                       ['1', '2', '1', str(port), '1.0']]


def test_slurm_without_master_addr_or_scontrol_is_named(monkeypatch):
    monkeypatch.delenv('MASTER_ADDR', raising=False)
    monkeypatch.setenv('PATH', '/nonexistent')  # no scontrol
    for key, value in {'SLURM_PROCID': '0', 'SLURM_NTASKS': '1', 'SLURM_NODELIST': 'node[01-02]'}.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(RunError) as err:
        init_dist('slurm', 0)
    assert_names(err, '--launcher slurm', 'scontrol show hostnames node[01-02]', 'MASTER_ADDR')


def test_unknown_launcher_and_missing_torchrun_variables_are_named(monkeypatch):
    with pytest.raises(UserError) as err:
        init_dist('mpi', 0)
    assert_names(err, '--launcher mpi', "'none'", "'pytorch'", "'slurm'")
    for var in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK'):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(RunError) as err:
        init_dist('pytorch', 0)
    assert_names(err, '--launcher pytorch', 'RANK', 'torchrun')
