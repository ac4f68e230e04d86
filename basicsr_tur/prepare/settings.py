"""The paper's five all-in-one settings: their source datasets, tasks, test sets, and each dataset's pairing rule.

A *source* is one split of a dataset laid out as its authors distribute it, under the raw folder
(`datasets/raw/` by default; `datasets/README.md` gives each layout and download). A *pairing rule* maps the path of
an LQ file, relative to the source's LQ folder and '/'-separated, to the GT path(s) it may pair with, relative to the
source's GT folder, most likely first: `ots_gt('part1/0025_0.8_0.04.jpg') == ('0025.jpg', '0025.png')`. Rules are
pure (no file access) and raise NamingError for a name their dataset never uses.

A *setting* lists its tasks (the `tasks` of its options files), its training parts and its test sets. A *part* takes
one source (or several clean-image sources), labels it with a task and says how it becomes LQ/GT files under
`datasets/<setting>/<split>/` (prepare/plan.py checks the downloads; prepare/writers.py, prepare/images.py and
prepare/mioir.py write them):

    link      the pairs as they are (per-file symlinks, or copies)
    clean     clean images (linked) that the options degrade on the fly (a SyntheticTaskDataset part drawing the
              part's tasks, e.g. AirNet/PromptIR/TUR's denoising noise, a new draw at every read); listed in
              `meta_<split>_clean.txt`, not in the pair meta file
    crop16    both images centre-cropped to multiples of 16, as AirNet/PromptIR's crop_img(base=16) before scoring
    noisy16   clean images centre-cropped to multiples of 16, then noised once as AirNet/PromptIR's
              test.py noises them (BSD68): one numpy RandomState(0) stream (their
              np.random.seed(0)) shared by the split's noisy16 parts in their order here (sigma 15,
              25, 50: their test order), images in sorted file order within each (theirs:
              os.listdir order, the file system's), a float64 randn(H, W, 3) per image,
              np.clip(clean + noise * sigma, 0, 255).astype(np.uint8). An image's noise depends on
              every image and sigma before it, so these parts are written in one process, in that
              order; --seed does not apply to them
    resize16  both images resized as TransWeather's ValData does before scoring
    resize32  both images resized as WGWS-Net's my_dataset_eval (testing_model_Seting3.py: SPA+,
              RealSnow) before scoring: float32, bilinear (align_corners=False, no antialiasing),
              each side rounded down to a multiple of 32; stored rounded to 8 bits (WGWS-Net
              scores the float tensor)
    half_resize32  as resize32 after my_dataset_eval_realH's halving (REVIDE): PIL bilinear to
              (int(W * 0.5), int(H * 0.5)) on the 8-bit image
    mio       MiOIR's training set: every DF2K image degraded once per task, then cut into 300x300 sub-images
    mio_test  MiOIR's in-distribution test set: every held-out GT degraded once per task

A part may name a `released` alternative: the authors' own copy of the same set (MiOIR's MiO_test/single_indis),
linked instead of re-synthesised when its folder exists under the raw folder.

Meta files are `<setting>/meta_train.txt` and `<setting>/meta_test_<name>.txt`, with lines `lq_path gt_path task`
relative to the split's roots (`Setting.roots`), which are the `dataroot_lq` / `dataroot_gt` of the options, and
`# source: ...` lines saying where each part's images come from. `meta_<split>_clean.txt` lists the clean images of
`clean` parts, relative to the split's GT root.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from basicsr_tur.utils.errors import UserError

__all__ = [
    'MIO_TASKS', 'SETTINGS', 'SOURCES', 'NamingError', 'Part', 'Setting', 'Source', 'airnet_ots_entry',
    'all_parts', 'allweather_entry', 'allweather_task', 'clean_meta_name', 'gopro_gt', 'gopro_out', 'meta_name',
    'mio_released_gt', 'mio_released_task', 'ots_gt', 'outdoor_rain_gt', 'rain100l_gt', 'raindrop_gt', 'roots_of',
    'same_name', 'sots_gt', 'spa_plus_gt', 'splits_of'
]

MIO_TASKS = ('sr', 'blur', 'noise', 'jpeg', 'rain', 'haze', 'dark')


class NamingError(UserError):
    """A file name that does not follow its dataset's naming rule."""


def _match(pattern: str, rel: str, dataset: str, expected: str) -> re.Match:
    """re.fullmatch of a naming rule, or a NamingError saying what the dataset's names look like."""
    m = re.fullmatch(pattern, rel, flags=re.IGNORECASE)
    if m is None:
        raise NamingError(f"'{rel}' does not follow the {dataset} naming rule: expected {expected}")
    return m


# --- Pairing rules: LQ path -> candidate GT paths (first existing wins) -----------------------------------------

def same_name(lq: str) -> tuple[str, ...]:
    """GT has the LQ's own relative path (Snow100K, LOL, AllWeather, Rain100L test, real-weather sets)."""
    return (lq,)


def rain100l_gt(lq: str) -> tuple[str, ...]:
    """Rain100L training pairs (AirNet/PromptIR `rainy/` and `gt/`): rain-12.png -> norain-12.png."""
    m = _match(r'rain-([^/]+)', lq, 'Rain100L', 'rain-N.png (GT norain-N.png)')
    return (f'norain-{m.group(1)}',)


def ots_gt(lq: str) -> tuple[str, ...]:
    """RESIDE OTS: part1/0025_0.8_0.04.jpg -> 0025.jpg (the hazy file's suffix, as AirNet's rule) or 0025.png."""
    m = _match(r'(?:[^/]+/)*(\d+)_[\d.]+_[\d.]+\.(jpg|jpeg|png)', lq, 'RESIDE OTS',
               'partK/NNNN_A_BETA.jpg (GT NNNN.jpg)')
    ext = m.group(2)
    other = 'png' if ext.lower() != 'png' else 'jpg'
    return (f'{m.group(1)}.{ext}', f'{m.group(1)}.{other}')


def sots_gt(lq: str) -> tuple[str, ...]:
    """RESIDE SOTS outdoor (`hazy/`, `gt/`): 0001_0.8_0.2.jpg -> 0001.png, as AirNet's test rule."""
    m = _match(r'(\d+)_[\d.]+_[\d.]+\.(jpg|jpeg|png)', lq, 'SOTS outdoor', 'NNNN_A_BETA.jpg (GT NNNN.png)')
    return (f'{m.group(1)}.png',)


def gopro_gt(lq: str) -> tuple[str, ...]:
    """GoPro (GOPRO_Large/<split>/<scene>/blur, sharp): GOPR0372_07_00/blur/000047.png -> .../sharp/000047.png."""
    m = _match(r'([^/]+)/blur/([^/]+)', lq, 'GoPro', '<scene>/blur/NNNNNN.png (GT <scene>/sharp/NNNNNN.png)')
    return (f'{m.group(1)}/sharp/{m.group(2)}',)


def gopro_out(rel: str) -> str:
    """Output path of a GoPro file: <scene>/blur/NAME (or sharp) -> <scene>/NAME."""
    scene, _, name = rel.split('/')
    return f'{scene}/{name}'


def outdoor_rain_gt(lq: str) -> tuple[str, ...]:
    """Outdoor-Rain (HeavyRainRemoval) Test1: im_0001_s80_a04.png -> im_0001.png (the dataset's own naming), or the
    input's own name (Test1 as TransWeather distributes it: its ValData reads gt/ under the input's name)."""
    m = _match(r'(im_\d+)_s\d+_a\d+\.png', lq, 'Outdoor-Rain', 'im_NNNN_sSS_aAA.png (GT im_NNNN.png)')
    return (f'{m.group(1)}.png', lq)


def raindrop_gt(lq: str) -> tuple[str, ...]:
    """RainDrop (DeRaindrop `data/`, `gt/`): 3_rain.png -> 3_clean.png."""
    m = _match(r'(\d+)_rain\.(png|jpg)', lq, 'RainDrop', 'N_rain.png (GT N_clean.png)')
    return (f'{m.group(1)}_clean.{m.group(2)}',)


def spa_plus_gt(lq: str) -> tuple[str, ...]:
    """SPA+ training pairs, TUR's rule (real_rain): 003/003_12-5.png -> 003/003_12.png (the GT of a sequence frame)."""
    m = _match(r'([^/_]+)/(\1_[^/-]+)-[^/]+\.\w+', lq, 'SPA+', '<SEQ>/<SEQ>_<X>-<Y>.png (GT <SEQ>/<SEQ>_<X>.png)')
    return (f'{m.group(1)}/{m.group(2)}.png',)


def mio_released_gt(lq: str) -> tuple[str, ...]:
    """MiOIR's released test set (MiO_test.zip): single_indis/<task>/NAME pairs with original/GT/NAME."""
    m = _match(r'([^/]+)/([^/]+)', lq, 'MiO_test single_indis', '<task>/NAME.png (GT original/GT/NAME.png)')
    mio_released_task(lq)
    return (m.group(2),)


def mio_released_task(lq: str) -> str:
    """Task of a file of MiOIR's single_indis: its folder, one of MIO_TASKS: 'haze/0801.png' -> 'haze'."""
    task = lq.split('/', 1)[0]
    if task not in MIO_TASKS:
        raise NamingError(f"'{lq}' is not in a MiOIR task folder: expected <task>/NAME.png with <task> one of "
                          f"{', '.join(MIO_TASKS)}")
    return task


_ALLWEATHER_TASKS = (
    # TransWeather's AllWeather keeps each source set's file names (GT under the same name in gt/).
    ('rain_haze', r'im_\d+_s\d+_a\d+\.png', 'Outdoor-Rain im_NNNN_sSS_aAA.png'),
    ('raindrop', r'\d+_rain\.(png|jpg)', 'RainDrop N_rain.png'),
    ('snow', r'[a-z]+(_[a-z]+)*_\d+\.(jpg|png)', 'Snow100K words_NNNNN.jpg'),
)


def allweather_task(name: str) -> str:
    """Task of an AllWeather file, told by its source set's naming: im_0001_s80_a04.png -> 'rain_haze'."""
    base = name.rsplit('/', 1)[-1]
    for task, pattern, _ in _ALLWEATHER_TASKS:
        if re.fullmatch(pattern, base, flags=re.IGNORECASE):
            return task
    expected = ', '.join(f'{desc} ({task})' for task, _, desc in _ALLWEATHER_TASKS)
    raise NamingError(f"'{name}' does not follow the naming of any AllWeather source set: expected {expected}")


# --- Official list files: one line -> LQ path relative to the source's LQ folder --------------------------------

def airnet_ots_entry(line: str) -> str:
    """A line of AirNet/PromptIR's data_dir/hazy/hazy_outside.txt: synthetic/part1/X.jpg -> part1/X.jpg."""
    m = re.fullmatch(r'(?:\./)?(?:synthetic|hazy)/(.+)', line.strip())
    if m is None:
        raise NamingError(f"list line '{line.strip()}' is not 'synthetic/partK/NAME' as in AirNet's hazy_outside.txt")
    return m.group(1)


def allweather_entry(line: str) -> str:
    """A line of TransWeather's allweather.txt: ./allweather/input/NAME -> NAME."""
    m = re.fullmatch(r'(?:\./)?(?:allweather/)?input/(.+)', line.strip())
    if m is None:
        raise NamingError(f"list line '{line.strip()}' is not './allweather/input/NAME' as in allweather.txt")
    return m.group(1)


# --- Sources and settings ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Source:
    """One split of a dataset as distributed, under the raw folder.

    lq_dir, gt_dir: folders relative to the raw folder (gt_dir empty for clean-image sources).
    rule: LQ path -> candidate GT paths; None for clean-image sources.
    glob: which files of lq_dir are LQ images ('*' the folder itself, '*/blur/*', '**/*' every subfolder).
    layout: the expected layout in words, for error messages.
    list_file, list_entry, list_required: the authors' list of LQ files (relative to the raw folder) when it, not
        the folder, defines the set; list_entry turns a line into an LQ path.
    out_name: output path of a source path (the same for LQ and GT).
    """

    lq_dir: str
    gt_dir: str = ''
    rule: Callable[[str], tuple[str, ...]] | None = None
    glob: str = '*'
    layout: str = ''
    list_file: str = ''
    list_entry: Callable[[str], str] | None = None
    list_required: bool = False
    out_name: Callable[[str], str] | None = None


SOURCES: dict[str, Source] = {
    # MiOIR: DF2K HR images (GT.zip) with optional depth (depth.zip: <stem>.mat), and MiO_test.zip's GT.
    'df2k': Source('DF2K/GT', layout='DF2K/GT/NAME.png (DIV2K 0001-0800 + Flickr2K 000001-002650), '
                                     'optional DF2K/depth/<stem>.mat or .npy'),
    'mio_test': Source('MiO_test/original/GT', layout='MiO_test/original/GT/NAME.png (MiOIR MiO_test.zip), optional '
                                                      'MiO_test/original/depth/LR_tensor/<stem>/predict_depth.mat'),
    'mio_test_released': Source('MiO_test/single_indis', 'MiO_test/original/GT', mio_released_gt, glob='*/*',
                                layout='MiO_test/single_indis/<task>/NAME.png with MiO_test/original/GT/NAME.png '
                                       '(MiOIR MiO_test.zip)'),
    # AirNet / PromptIR three-task data.
    'bsd400': Source('BSD400', layout='BSD400/NAME (400 clean images, flat)'),
    'wed': Source('WED', layout='WED/NAME.bmp (4,744 clean images, flat: WED pristine_images)'),
    'bsd68': Source('BSD68', layout='BSD68/NAME.png (68 clean colour images, flat: CBSD68)'),
    'rain100l_train': Source('Rain100L/train/rainy', 'Rain100L/train/gt', rain100l_gt,
                             layout='Rain100L/train/rainy/rain-N.png with Rain100L/train/gt/norain-N.png'),
    'rain100l_test': Source('Rain100L/test/input', 'Rain100L/test/target', same_name,
                            layout='Rain100L/test/input/NAME with Rain100L/test/target/NAME'),
    'ots': Source('OTS/hazy', 'OTS/clear', ots_gt, glob='**/*', list_file='OTS/hazy_outside.txt',
                  list_entry=airnet_ots_entry, list_required=True,
                  layout='OTS/hazy/partK/NNNN_A_BETA.jpg with OTS/clear/NNNN.jpg, and AirNet\'s list '
                         'data_dir/hazy/hazy_outside.txt copied to OTS/hazy_outside.txt'),
    'sots': Source('SOTS/outdoor/hazy', 'SOTS/outdoor/gt', sots_gt,
                   layout='SOTS/outdoor/hazy/NNNN_A_BETA.jpg with SOTS/outdoor/gt/NNNN.png'),
    # IDR five-task additions.
    'gopro_train': Source('GOPRO_Large/train', 'GOPRO_Large/train', gopro_gt, glob='*/blur/*', out_name=gopro_out,
                          layout='GOPRO_Large/train/<scene>/blur/NAME.png with <scene>/sharp/NAME.png'),
    'gopro_test': Source('GOPRO_Large/test', 'GOPRO_Large/test', gopro_gt, glob='*/blur/*', out_name=gopro_out,
                         layout='GOPRO_Large/test/<scene>/blur/NAME.png with <scene>/sharp/NAME.png'),
    'lol_train': Source('LOL/our485/low', 'LOL/our485/high', same_name,
                        layout='LOL/our485/low/NAME.png with LOL/our485/high/NAME.png'),
    'lol_test': Source('LOL/eval15/low', 'LOL/eval15/high', same_name,
                       layout='LOL/eval15/low/NAME.png with LOL/eval15/high/NAME.png'),
    # TransWeather's AllWeather and its three test sets.
    'allweather': Source('allweather/input', 'allweather/gt', same_name, list_file='allweather.txt',
                         list_entry=allweather_entry,
                         layout='allweather/input/NAME with allweather/gt/NAME, list allweather.txt '
                                '(./allweather/input/NAME lines)'),
    'test1': Source('Outdoor-Rain/test1/input', 'Outdoor-Rain/test1/gt', outdoor_rain_gt,
                    layout='Outdoor-Rain/test1/input/im_NNNN_sSS_aAA.png with Outdoor-Rain/test1/gt/im_NNNN.png '
                           '(or gt/im_NNNN_sSS_aAA.png, TransWeather\'s copy)'),
    'snow100k_l': Source('Snow100K/Snow100K-L/synthetic', 'Snow100K/Snow100K-L/gt', same_name,
                         layout='Snow100K/Snow100K-L/synthetic/NAME.jpg with Snow100K/Snow100K-L/gt/NAME.jpg'),
    'raindrop_a': Source('RainDrop/test_a/data', 'RainDrop/test_a/gt', raindrop_gt,
                         layout='RainDrop/test_a/data/N_rain.png with RainDrop/test_a/gt/N_clean.png'),
    # WGWS-Net's real-world sets: layouts not published, a per-task convention (datasets/README.md).
    'spa_plus_train': Source('SPA+/train/input', 'SPA+/train/gt', spa_plus_gt, glob='*/*',
                             layout='SPA+/train/input/<SEQ>/<SEQ>_<X>-<Y>.png with SPA+/train/gt/<SEQ>/<SEQ>_<X>.png'),
    'spa_plus_test': Source('SPA+/test/input', 'SPA+/test/gt', same_name,
                            layout='SPA+/test/input/NAME with SPA+/test/gt/NAME'),
    'realsnow_train': Source('RealSnow/train/input', 'RealSnow/train/gt', same_name,
                             layout='RealSnow/train/input/NAME with RealSnow/train/gt/NAME'),
    'realsnow_test': Source('RealSnow/test/input', 'RealSnow/test/gt', same_name,
                            layout='RealSnow/test/input/NAME with RealSnow/test/gt/NAME'),
    'revide_train': Source('REVIDE/train/input', 'REVIDE/train/gt', same_name, glob='**/*',
                           layout='REVIDE/train/input/<scene>/NAME with REVIDE/train/gt/<scene>/NAME'),
    'revide_test': Source('REVIDE/test/input', 'REVIDE/test/gt', same_name, glob='**/*',
                          layout='REVIDE/test/input/<scene>/NAME with REVIDE/test/gt/<scene>/NAME'),
}


@dataclass(frozen=True)
class Part:
    """One source turned into task-labelled pairs of a split.

    sources: keys of SOURCES (several only for clean images, e.g. BSD400 + WED).
    task: the task name, or a function of the LQ path (AllWeather); for 'clean', 'mio' and 'mio_test' the tuple of
        tasks.
    kind: link, clean, crop16, noisy16, resize16, resize32, half_resize32, mio or mio_test (see the
        module docstring).
    lq_out, gt_out: output folders relative to the split's LQ and GT roots.
    repeat: how many times each pair is listed in the meta file (the authors' mixing ratio); for 'clean', how many
        times the authors list each clean image per task (the options' dataset_enlarge_ratio of that part).
    sigma: noise level of 'noisy16', on the 0-255 scale.
    crop: MiOIR's sub-image size, step and leftover threshold for 'mio'.
    released: the part that replaces this one when its sources' folders exist (the authors' released copy).
    note: appended to the part's `# source:` line (an assumption the part rests on).
    """

    sources: tuple[str, ...]
    task: str | tuple[str, ...] | Callable[[str], str]
    kind: str
    lq_out: str = ''
    gt_out: str = ''
    repeat: int = 1
    sigma: float = 0.0
    crop: tuple[int, int, int] = (300, 150, 48)
    released: Part | None = None
    note: str = ''

    def task_of(self, lq: str) -> str:
        """Task of the pair whose LQ source path is lq."""
        return self.task(lq) if callable(self.task) else self.task


@dataclass(frozen=True)
class Setting:
    """Tasks (the options' `tasks`), training parts, test sets {name: parts} and split roots {split: (lq, gt)}."""

    tasks: tuple[str, ...]
    train: tuple[Part, ...]
    tests: dict[str, tuple[Part, ...]]
    roots: dict[str, tuple[str, str]] = field(default_factory=lambda: {'train': ('train', 'train'),
                                                                       'test': ('test', 'test')})


def meta_name(split: str) -> str:
    """Meta file of a split: 'train' -> meta_train.txt, 'test_sots' -> meta_test_sots.txt."""
    return f'meta_{split}.txt'


def clean_meta_name(split: str) -> str:
    """List of a split's clean images (degraded on the fly): 'train' -> meta_train_clean.txt."""
    return f'meta_{split}_clean.txt'


def all_parts(setting: Setting) -> list[Part]:
    """Training and test parts of a setting."""
    return [*setting.train, *(p for parts in setting.tests.values() for p in parts)]


def splits_of(setting: Setting) -> dict[str, tuple[Part, ...]]:
    """The setting's splits in writing order: 'train', then 'test_<name>' per test set."""
    return {'train': setting.train, **{f'test_{name}': parts for name, parts in setting.tests.items()}}


def roots_of(setting: Setting, split: str) -> tuple[str, str]:
    """LQ and GT roots of a split, relative to the setting folder."""
    return setting.roots['train' if split == 'train' else 'test']


# BSD400 + WED, noised on the fly at each sigma; AirNet/PromptIR/TUR list each clean image 3 times per sigma.
_DENOISE = Part(('bsd400', 'wed'), ('denoise_15', 'denoise_25', 'denoise_50'), 'clean', gt_out='denoise/clean',
                repeat=3)


def _bsd68(sigma: int, note: str = '') -> Part:
    """BSD68 noised at sigma; a split's noisy16 parts share one stream, in their order."""
    return Part(('bsd68',), f'denoise_{sigma}', 'noisy16', f'bsd68/noisy{sigma}', 'bsd68/clean',
                sigma=sigma, note=note)


# Where aio5's BSD68 stream starts. TUR's five-task options (transweather_5task.yml at 5d026e7)
# read a pre-noised folder test/denoise/noisy25 whose making is not published; IDR's
# inference.py (mode 0) seeds numpy with 0, scores derain and dehaze (no draw), then noises CBSD68
# at sigma 25 first.
_AIO5_BSD68 = ("assumed: the stream starts at sigma 25, as IDR's five-task inference.py (mode 0; "
               "IDR crops to multiples of 32, here 16); TUR's five-task noisy25 is not published")


_RAIN100L_TRAIN = Part(('rain100l_train',), 'derain', 'link', 'derain/rainy', 'derain/gt', 120)
_OTS = Part(('ots',), 'dehaze', 'link', 'dehaze/hazy', 'dehaze/clear', 1)
_RAIN100L_TEST = Part(('rain100l_test',), 'derain', 'crop16', 'rain100l/rainy', 'rain100l/gt')
_SOTS = Part(('sots',), 'dehaze', 'crop16', 'sots/hazy', 'sots/clear')

SETTINGS: dict[str, Setting] = {
    # MiOIR's seven tasks, mixed learning; roots are the per-task LQ folders and the shared GT folder.
    'mio7': Setting(
        MIO_TASKS,
        (Part(('df2k',), MIO_TASKS, 'mio'),),
        {'indis': (Part(('mio_test',), MIO_TASKS, 'mio_test',
                        released=Part(('mio_test_released',), mio_released_task, 'link')),)},
        {'train': ('train/lq', 'train/gt'), 'test': ('test/lq', 'test/gt')}),
    # AirNet / PromptIR: the lists of PromptIR's PromptTrainDataset and TUR's Airnet_PromptTrainDataset (denoise
    # on the fly x3 per sigma, Rain100L x120, OTS x1); tasks in the authors' id order (de_dict).
    'aio3': Setting(
        ('denoise_15', 'denoise_25', 'denoise_50', 'derain', 'dehaze'),
        (_DENOISE, _RAIN100L_TRAIN, _OTS),
        {'bsd68': (_bsd68(15), _bsd68(25), _bsd68(50)), 'rain100l': (_RAIN100L_TEST,), 'sots': (_SOTS,)}),
    # IDR's five tasks as TUR trained them (options/transweather_5task.yml, airnet_five_type_dataset.py at 5d026e7):
    # denoise sigma 15/25/50 on the fly x3, Rain100L x120, OTS x1, GoPro x10, LOL x50, in the authors' id order
    # (de_dict: denoise 0-2, derain 3, dehaze 4, gopro 6, lol 7). Tests: BSD68 at sigma 25 only, as published.
    'aio5': Setting(
        ('denoise_15', 'denoise_25', 'denoise_50', 'derain', 'dehaze', 'deblur', 'lowlight'),
        (_DENOISE, _RAIN100L_TRAIN, _OTS,
         Part(('gopro_train',), 'deblur', 'link', 'deblur/input', 'deblur/target', 10),
         Part(('lol_train',), 'lowlight', 'link', 'lowlight/low', 'lowlight/high', 50)),
        {'sots': (_SOTS,), 'rain100l': (_RAIN100L_TEST,), 'bsd68': (_bsd68(25, _AIO5_BSD68),),
         'gopro': (Part(('gopro_test',), 'deblur', 'crop16', 'gopro/input', 'gopro/target'),),
         'lol': (Part(('lol_test',), 'lowlight', 'crop16', 'lol/low', 'lol/high'),)}),
    # TransWeather: one line per allweather.txt entry, the task told by the file name.
    'allweather': Setting(
        ('rain_haze', 'snow', 'raindrop'),
        (Part(('allweather',), allweather_task, 'link', 'input', 'gt'),),
        {'test1': (Part(('test1',), 'rain_haze', 'resize16', 'test1/input', 'test1/gt'),),
         'snow100k_l': (Part(('snow100k_l',), 'snow', 'resize16', 'snow100k_l/input', 'snow100k_l/gt'),),
         'raindrop_a': (Part(('raindrop_a',), 'raindrop', 'resize16', 'raindrop_a/input', 'raindrop_a/gt'),)}),
    # WGWS-Net setting 3 as TUR reads it (real_rain / real_snow / real_fog): every pair once.
    # Tests as WGWS-Net's testing_model_Seting3.py scores them: SPA+ and RealSnow through
    # my_dataset_eval, REVIDE through my_dataset_eval_realH (halved first).
    'realweather': Setting(
        ('rain', 'snow', 'haze'),
        (Part(('spa_plus_train',), 'rain', 'link', 'spa_plus/input', 'spa_plus/gt'),
         Part(('realsnow_train',), 'snow', 'link', 'realsnow/input', 'realsnow/gt'),
         Part(('revide_train',), 'haze', 'link', 'revide/input', 'revide/gt')),
        {'spa': (Part(('spa_plus_test',), 'rain', 'resize32', 'spa_plus/input', 'spa_plus/gt'),),
         'realsnow': (Part(('realsnow_test',), 'snow', 'resize32', 'realsnow/input',
                           'realsnow/gt'),),
         'revide': (Part(('revide_test',), 'haze', 'half_resize32', 'revide/input',
                         'revide/gt'),)}),
}
