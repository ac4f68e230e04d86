"""Process-group setup for torchrun (`--launcher pytorch`) and Slurm (`--launcher slurm`), on GPUs or CPUs.

basicsr's `init_dist` assumes CUDA; here the backend follows the hardware (NCCL when the run uses GPUs, gloo
otherwise) and `dist_params: {backend: ..., port: ...}` overrides it. Multi-node with torchrun:
    torchrun --nnodes=2 --node_rank=<0|1> --nproc_per_node=8 --master_addr=<node 0 address> --master_port=29500 \
        train.py -opt <options.yml> --launcher pytorch
"""
from __future__ import annotations

import os
import subprocess

import torch
import torch.distributed as dist

from basicsr_tur.utils.errors import RunError


def init_dist(launcher: str, num_gpu: int, dist_params: dict | None = None) -> tuple[int, int]:
    """Join the process group of `launcher`; returns (rank, world size) and selects this process's GPU."""
    params = dict(dist_params or {})
    use_cuda = num_gpu != 0 and torch.cuda.is_available()
    backend = params.pop('backend', 'nccl' if use_cuda else 'gloo')
    port = params.pop('port', None)
    if launcher == 'slurm':
        proc_id, ntasks = int(os.environ['SLURM_PROCID']), int(os.environ['SLURM_NTASKS'])
        if 'MASTER_ADDR' not in os.environ:  # the first node of the allocation
            node_list = os.environ['SLURM_NODELIST']
            try:
                hosts = subprocess.run(['scontrol', 'show', 'hostnames', node_list], capture_output=True, text=True)
            except FileNotFoundError:
                hosts = None
            if hosts is None or hosts.returncode or not hosts.stdout.strip():
                raise RunError(f'--launcher slurm: `scontrol show hostnames {node_list}` failed; set MASTER_ADDR')
            os.environ['MASTER_ADDR'] = hosts.stdout.split()[0]
        os.environ.setdefault('MASTER_PORT', str(port or 29500))
        os.environ['WORLD_SIZE'] = str(ntasks)
        os.environ['RANK'] = str(proc_id)
        os.environ['LOCAL_RANK'] = os.environ.get('SLURM_LOCALID', str(proc_id % max(torch.cuda.device_count(), 1)))
    elif launcher == 'pytorch':
        if port is not None:
            os.environ.setdefault('MASTER_PORT', str(port))  # torchrun sets it: --master_port wins
    else:
        raise RunError(f"--launcher {launcher}: expected 'none', 'pytorch' or 'slurm'")
    for var in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK'):
        if var not in os.environ:
            raise RunError(f'--launcher {launcher}: environment variable {var} is not set; start the run with '
                               'torchrun (or srun for slurm)')
    if use_cuda:
        torch.cuda.set_device(int(os.environ['LOCAL_RANK']) % torch.cuda.device_count())
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, **params)
    return dist.get_rank(), dist.get_world_size()


def barrier() -> None:
    """Wait for every process (no-op outside distributed runs)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def all_reduce_sum(values: list[float]) -> list[float]:
    """Sum a list of numbers over all processes (identity outside distributed runs)."""
    if not (dist.is_available() and dist.is_initialized()):
        return values
    tensor = torch.tensor(values, dtype=torch.float64)
    if dist.get_backend() == 'nccl':
        tensor = tensor.cuda()
    dist.all_reduce(tensor)
    return tensor.cpu().tolist()


def close_dist() -> None:
    """Leave the process group, if any, before the process exits: a gloo group left open can abort the interpreter
    at exit ('terminate called without an active exception') after the run has finished."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def sum_over_ranks(tensor: torch.Tensor) -> torch.Tensor:
    """tensor summed over the processes of a distributed run (in place), unchanged in a single process (e.g. to
    keep the state of DWALoss and FAMOLoss identical on every rank, or to average a loss's own gradients)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(tensor)
    return tensor
