"""Presets for published weights: name -> backbone, constructor arguments and the file its authors publish.

timm's `pretrained_cfg` habit: one small table in code says, for each checkpoint someone has released, which
registered backbone and constructor arguments load it with strict=True, which entry of the file holds the tensors,
the file's name and where its authors publish it, and which published row of `options/published.yml` its numbers are.
The user downloads the file (nothing here ever downloads anything); `find_weights` looks for it where it is usually
put, and `check_preset_keys` tells in one line when a file is not the one the preset expects.

Only files whose names and sources could be read in the authors' own repositories are listed (commits below are those
of the texts read):
- Aitical/TUR README.md at 768b8c1 (2024-12-18; unchanged at 18b495b), sections "7 / 3 / 5 Degradation Tasks" and
  "Deweather Tasks": Uformer_TUR_7task.pth, AirNet_TUR_3task.pth, Transweather_TUR_5task.pth,
  Transweather_TUR_AllWeather.pth, Transweather_TUR_real.pth on Hugging Face GWu/TUR (the README's BaiduPan badge
  points to a folder of the same models, pwd AAAI, whose file names it does not give). TUR publishes no PromptIR or
  SRResNet file, although its tables have those rows.
- XLearning-SCU/2022-CVPR-AirNet README.md "Demo" (bedea82) and demo.py: All.pth, Denoise.pth, Derain.pth,
  Dehaze.pth in one Google Drive / Baidu Netdisk folder, each a plain `net.state_dict()`, built with batch_size 5, 3,
  1, 1 (demo.py), which sets the MoCo queue's shape.
- va1shn9v/PromptIR README.md "Testing" (106159a), test.py/demo.py (`--ckpt_name model.ckpt`, `PromptIRModel`
  in train.py: a Lightning module holding `self.net = PromptIR(decoder=True)`): model.ckpt, the all-in-one model.
- swz30/Restormer README.md (df766d5), demo.py `get_weights_and_parameters` and the Options/*.yml `network_g`: the six
  models its demo runs on one's own images, each `{'params': state_dict}`.
Left out: TransWeather's own weights (its README linked a Google Drive folder `TransWeather_weights/best` only at
487ced6, 2022-02-07, and dropped the link at 4fcd202); Uformer_B SIDD/GoPro (README "Pretrained model" links to
SharePoint without a file name; the test scripts read `model_best.pth` for both, so a preset could not tell them apart).
"""
from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from os import path as osp

import torch
from basicsr.archs import build_network

import basicsr_tur.archs  # noqa: F401  (registers our backbones in basicsr's ARCH_REGISTRY)
from basicsr_tur.utils.checkpoint import HEAD_PREFIX, unwrap_state_dict
from basicsr_tur.utils.errors import CheckpointError
from basicsr_tur.utils.tables import markdown_table

__all__ = ['DEFAULT_SEARCH_DIRS', 'PRESETS', 'Preset', 'check_preset_keys', 'find_weights', 'get_preset',
           'presets_table']

# Where find_weights looks for a preset's file when no path is given, in this order.
DEFAULT_SEARCH_DIRS = ('~/.cache/basicsr_tur', 'weights')


@dataclass(frozen=True)
class Preset:
    """One published checkpoint: what builds the network that loads it strictly, and where the file comes from.

    name: the preset's name (`--preset NAME`).
    arch: registered backbone class name.
    arch_opt: constructor arguments (official names) besides `type`; TUR presets build the uncertainty head, so that
        the σ map of the file's head can be shown.
    param_key: the entry of the file that holds the tensors ('params', 'params_ema', 'state_dict'), None for a file
        that is the state dict itself. A file without that entry still loads from the usual wrappers
        (utils.checkpoint.read_state_dict).
    file_name: the file's name as its authors publish it.
    source: where they publish it (the URL their README gives).
    setting: our setting name (options/published.yml), or the training set of the paper for other models.
    published_row: the row of options/published.yml[setting] that reports this checkpoint's numbers, or None.
    tasks: the tasks it was trained for (our task names where we have them).
    input_range: the range of the images the network's forward takes; every backbone here takes [0, 1] and maps to
        its authors' range itself (Transweather's `input_range` argument), so callers feed [0, 1].
    note: what else a user must know (key layouts mapped on load, unverified assumptions).
    """

    name: str
    arch: str
    arch_opt: dict
    param_key: str | None
    file_name: str
    source: str
    setting: str
    published_row: str | None
    tasks: tuple[str, ...]
    input_range: tuple[float, float] = (0.0, 1.0)
    note: str = ''


_HF = 'https://huggingface.co/GWu/TUR/blob/main/'
_AIRNET_DRIVE = ('https://drive.google.com/drive/folders/1DS_iJsP5Epzz78fZRz8lEINcnhBF6Uws (or Baidu Netdisk '
                 'https://pan.baidu.com/s/1usrpGA8FIyj1ogsZQE_Emg, password cr7d)')
_AIO3_TASKS = ('denoise_15', 'denoise_25', 'denoise_50', 'derain', 'dehaze')
# Official Restormer size (swz30/Restormer Options/*.yml network_g; our constructor's defaults are the same).
_RESTORMER = dict(inp_channels=3, out_channels=3, dim=48, num_blocks=[4, 6, 6, 8], num_refinement_blocks=4,
                  heads=[1, 2, 4, 8], ffn_expansion_factor=2.66, bias=False, LayerNorm_type='WithBias',
                  dual_pixel_task=False)
_TUR_TW_NOTE = ("TUR's Transweather copy (5d026e7) lacks Tenc.mini_patch_embed4 and convtail.conv_output, which the "
                'forward never runs, and names its head var_conv.: both mapped by Transweather.checkpoint_filter_fn')


def _restormer(name: str, file_name: str, source: str, setting: str, tasks: tuple[str, ...], note: str = '',
               **changes) -> Preset:
    """A preset of one of the six models swz30/Restormer's demo.py runs (`{'params': ...}`, no published row here)."""
    return Preset(name=name, arch='Restormer', arch_opt={**_RESTORMER, **changes}, param_key='params',
                  file_name=file_name, source=source, setting=setting, published_row=None, tasks=tasks, note=note)


_PRESET_LIST = [
    # ---- Aitical/TUR, README 768b8c1: the TUR models on Hugging Face GWu/TUR --------------------------------------
    Preset(
        name='uformer_tur_mio7', arch='Uformer',
        # MiOIR's Uformer (options/test/mio7/Uformer.yml): no img_size there, so Uformer's default 256.
        arch_opt=dict(img_size=256, in_chans=3, embed_dim=32, depths=[1, 2, 8, 8, 2, 8, 8, 2, 1], win_size=8,
                      token_projection='linear', token_mlp='leff', modulator=True, uncertainty_head=True),
        param_key='params_ema', file_name='Uformer_TUR_7task.pth', source=_HF + 'Uformer_TUR_7task.pth',
        setting='mio7', published_row='Uformer + TUR', tasks=('sr', 'blur', 'noise', 'jpeg', 'rain', 'haze', 'dark'),
        note="the authors' head var_conv. is mapped by Uformer.checkpoint_filter_fn"),
    Preset(
        name='airnet_tur_aio3', arch='AirNet',
        arch_opt=dict(encoder_dim=256, batch_size=32, n_groups=5, n_blocks=5, uncertainty_head=True),
        param_key='params', file_name='AirNet_TUR_3task.pth', source=_HF + 'AirNet_TUR_3task.pth',
        setting='aio3', published_row='AirNet + TUR', tasks=_AIO3_TASKS,
        note="the authors' head R.var_conv. is mapped by AirNet.checkpoint_filter_fn; batch_size 32 is the default "
             "of TUR's AirNet_uncertainty (18b495b), which TUR published no options to confirm: it only sizes the "
             'MoCo queue E.E.queue (256, 256 x batch_size), unused at inference; another queue shape in the file '
             'needs --arch-opt batch_size=N'),
    Preset(
        name='transweather_tur_aio5', arch='Transweather', arch_opt=dict(uncertainty_head=True),
        # options/transweather_5task.yml (TUR 768b8c1) keeps an EMA copy (ema_decay 0.999).
        param_key='params_ema', file_name='Transweather_TUR_5task.pth', source=_HF + 'Transweather_TUR_5task.pth',
        setting='aio5', published_row='TransWeather + TUR',
        tasks=('denoise_15', 'denoise_25', 'denoise_50', 'derain', 'dehaze', 'deblur', 'lowlight'),
        note=_TUR_TW_NOTE + "; [0, 1] inputs, as TUR's five-task data path feeds them"),
    Preset(
        name='transweather_tur_allweather', arch='Transweather',
        arch_opt=dict(input_range=[-1, 1], uncertainty_head=True),
        param_key='params', file_name='Transweather_TUR_AllWeather.pth',
        source=_HF + 'Transweather_TUR_AllWeather.pth', setting='allweather', published_row='TransWeather + TUR',
        tasks=('rain_haze', 'snow', 'raindrop'),
        note=_TUR_TW_NOTE + "; inputs mapped to [-1, 1] inside the model as TransWeather's AllWeather data path does "
             '(ASSUMED, as options/test/allweather/Transweather.yml: TUR published no code for this model)'),
    Preset(
        name='transweather_tur_realweather', arch='Transweather', arch_opt=dict(uncertainty_head=True),
        param_key='params_ema', file_name='Transweather_TUR_real.pth', source=_HF + 'Transweather_TUR_real.pth',
        setting='realweather', published_row='TransWeather + TUR', tasks=('rain', 'snow', 'haze'),
        note=_TUR_TW_NOTE + "; [0, 1] inputs as TUR's own data path (ASSUMED, as "
             'options/test/realweather/Transweather.yml: TUR published no code for this model)'),
    # ---- XLearning-SCU/2022-CVPR-AirNet, README "Demo" and demo.py (bedea82) ------------------------------------
    Preset(
        name='airnet_aio3', arch='AirNet', arch_opt=dict(encoder_dim=256, batch_size=5, n_groups=5, n_blocks=5),
        param_key=None, file_name='All.pth', source=_AIRNET_DRIVE, setting='aio3', published_row='AirNet',
        tasks=_AIO3_TASKS, note='a plain state dict (torch.save(net.state_dict())); demo.py --mode 3'),
    Preset(
        name='airnet_denoise', arch='AirNet', arch_opt=dict(encoder_dim=256, batch_size=3, n_groups=5, n_blocks=5),
        param_key=None, file_name='Denoise.pth', source=_AIRNET_DRIVE, setting='BSD400+WED (AirNet, one task)',
        published_row=None, tasks=('denoise_15', 'denoise_25', 'denoise_50'),
        note='a plain state dict; demo.py --mode 0'),
    Preset(
        name='airnet_derain', arch='AirNet', arch_opt=dict(encoder_dim=256, batch_size=1, n_groups=5, n_blocks=5),
        param_key=None, file_name='Derain.pth', source=_AIRNET_DRIVE, setting='Rain100L (AirNet, one task)',
        published_row=None, tasks=('derain',), note='a plain state dict; demo.py --mode 1'),
    Preset(
        name='airnet_dehaze', arch='AirNet', arch_opt=dict(encoder_dim=256, batch_size=1, n_groups=5, n_blocks=5),
        param_key=None, file_name='Dehaze.pth', source=_AIRNET_DRIVE, setting='RESIDE OTS (AirNet, one task)',
        published_row=None, tasks=('dehaze',), note='a plain state dict; demo.py --mode 2'),
    # ---- va1shn9v/PromptIR, README "Testing" (106159a) ---------------------------------------------------------
    Preset(
        name='promptir_aio3', arch='PromptIR', arch_opt=dict(decoder=True),
        param_key='state_dict', file_name='model.ckpt',
        source='https://drive.google.com/file/d/1j-b5Od70pGF7oaCqKAfUzmf-N-xEAjYl/view (also the GitHub releases of '
               'va1shn9v/PromptIR)',
        setting='aio3', published_row='PromptIR', tasks=_AIO3_TASKS,
        note="a PyTorch Lightning checkpoint: the tensors are under 'state_dict' with the prefix net., which "
             'utils.checkpoint.unwrap_state_dict strips'),
    # ---- swz30/Restormer, README (df766d5) and demo.py get_weights_and_parameters -------------------------------
    _restormer('restormer_deraining', 'deraining.pth',
               'https://drive.google.com/drive/folders/1ZEDDEVW0UgkpWi-N4Lj_JUoVChGXCu_u', 'Rain13K', ('derain',)),
    _restormer('restormer_motion_deblurring', 'motion_deblurring.pth',
               'https://drive.google.com/drive/folders/1czMyfRTQDX3j3ErByYeZ1PM4GVLbJeGK', 'GoPro', ('deblur',)),
    _restormer('restormer_defocus_deblurring', 'single_image_defocus_deblurring.pth',
               'https://drive.google.com/drive/folders/1bRBG8DG_72AGA6-eRePvChlT5ZO4cwJ4', 'DPDD (single image)',
               ('defocus_deblur',)),
    _restormer('restormer_real_denoising', 'real_denoising.pth',
               'https://drive.google.com/drive/folders/1Qwsjyny54RZWa7zC4Apg7exixLBo4uF0', 'SIDD',
               ('real_denoise',), LayerNorm_type='BiasFree'),
    _restormer('restormer_gaussian_color_denoising_blind', 'gaussian_color_denoising_blind.pth',
               'https://drive.google.com/drive/folders/1Qwsjyny54RZWa7zC4Apg7exixLBo4uF0', 'DFWB (sigma 0-50)',
               ('denoise',), LayerNorm_type='BiasFree'),
    _restormer('restormer_gaussian_gray_denoising_blind', 'gaussian_gray_denoising_blind.pth',
               'https://drive.google.com/drive/folders/1Qwsjyny54RZWa7zC4Apg7exixLBo4uF0', 'DFWB (sigma 0-50)',
               ('denoise',), note='grayscale: one input and output channel', inp_channels=1, out_channels=1,
               LayerNorm_type='BiasFree'),
]

PRESETS: dict[str, Preset] = {preset.name: preset for preset in _PRESET_LIST}


def get_preset(name: str) -> Preset:
    """The preset called `name`; ValueError (one line, with the closest names) for an unknown one."""
    if name in PRESETS:
        return PRESETS[name]
    close = difflib.get_close_matches(name, PRESETS, n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}? " if close else ''
    raise CheckpointError(f"unknown preset '{name}'; {hint}--list-presets lists all {len(PRESETS)}")


def find_weights(preset: Preset, weights: str | None = None, search_dirs: Sequence[str] | None = None) -> str:
    """The path of the preset's file: `weights` when given, else preset.file_name in the first of `search_dirs`
    (default DEFAULT_SEARCH_DIRS: ~/.cache/basicsr_tur/, then ./weights/) that holds it. Nothing is downloaded.

    Raises FileNotFoundError, one line: the given file is missing, or none of the folders holds the file (the
    folders looked in and the address to download it from are named).
    """
    if weights is not None:
        if not osp.isfile(weights):
            raise FileNotFoundError(f'weights file not found: {weights} (preset {preset.name} expects '
                                    f'{preset.file_name}, from {preset.source})')
        return weights
    dirs = [osp.expanduser(d) for d in (DEFAULT_SEARCH_DIRS if search_dirs is None else search_dirs)]
    for folder in dirs:
        candidate = osp.join(folder, preset.file_name)
        if osp.isfile(candidate):
            return candidate
    raise FileNotFoundError(f"preset {preset.name}: {preset.file_name} is in none of {', '.join(dirs)}; download it "
                            f'from {preset.source} into one of them, or give its path (nothing is downloaded here)')


def _expected_shapes(preset: Preset) -> tuple[dict[str, tuple[int, ...]], torch.nn.Module]:
    """Key -> shape of the preset's network, built on the meta device (no memory, no time), and the network."""
    with torch.device('meta'):
        net = build_network({'type': preset.arch, **preset.arch_opt})
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}, net


def _some(keys: Sequence[str], n: int = 3) -> str:
    """The first n keys, comma-separated, with ', ...' when there are more."""
    return ', '.join(list(keys)[:n]) + (', ...' if len(keys) > n else '')


def check_preset_keys(preset: Preset, state_dict: dict, where: str) -> None:
    """Check that a checkpoint's tensors are those the preset's network loads strictly; the head may be absent.

    state_dict: the file's tensor dict (utils.checkpoint.read_state_dict), or the whole checkpoint (unwrapped here
    with preset.param_key). The arch class's `checkpoint_filter_fn` maps the authors' key names first, as
    utils.checkpoint.load_checkpoint does; keys under HEAD_PREFIX may be missing from the file, and a file's head is
    ignored by a preset without one. Raises ValueError, one line naming `where`, the preset and the keys expected.
    """
    expected, net = _expected_shapes(preset)
    if not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        key = preset.param_key if preset.param_key in state_dict else None
        state_dict = unwrap_state_dict(state_dict, key, where)
    filter_fn = getattr(type(net), 'checkpoint_filter_fn', None)
    if filter_fn is not None:
        state_dict = filter_fn(dict(state_dict), net)
    # A preset without the head ignores the file's head keys, as load_checkpoint drops them.
    has_head = any(k.startswith(HEAD_PREFIX) for k in expected)
    found = {k: v for k, v in state_dict.items() if has_head or not k.startswith(HEAD_PREFIX)}
    missing = [k for k in expected if k not in found and not k.startswith(HEAD_PREFIX)]
    unexpected = [k for k in found if k not in expected]
    which = f'preset {preset.name} ({preset.arch})'
    if missing or unexpected:
        shown = unexpected or list(found)
        raise CheckpointError(f'{where}: {which} expects keys like {_some(missing or list(expected))}; the file has '
                         f'{_some(shown)} ({len(found)} keys, {len(missing)} of the {len(expected)} expected missing, '
                         f'{len(unexpected)} unexpected); is it {preset.file_name} from {preset.source}?')
    resized = [k for k in found if tuple(found[k].shape) != expected[k]]
    if resized:
        key = resized[0]
        more = f' (and {len(resized) - 1} more)' if len(resized) > 1 else ''
        raise CheckpointError(f"{where}: {which} expects key '{key}' of shape {expected[key]}, the file has "
                         f'{tuple(found[key].shape)}{more}; is it {preset.file_name} from {preset.source}?')


def presets_table(markdown: bool = False) -> str:
    """The presets as a table (name, arch, setting, published row, file, source): aligned text, or Markdown."""
    header = ('name', 'arch', 'setting', 'published row', 'file', 'source')
    rows = [(p.name, p.arch, p.setting, p.published_row or '-', p.file_name, p.source) for p in PRESETS.values()]
    if markdown:
        return markdown_table(header, rows).rstrip('\n')
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    return '\n'.join('  '.join(cell.ljust(width) for cell, width in zip(row, widths)) + '  ' + row[-1]
                     for row in [header, *rows])
