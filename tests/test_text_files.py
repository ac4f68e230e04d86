"""Text files written by other tools (meta files, the authors' lists, options files): byte-order marks, UTF-16/32
and Windows/classic-Mac line ends are read as their authors meant; other encodings are refused in one line naming
the file and the line."""
from __future__ import annotations

from os import path as osp

import pytest
import yaml

from basicsr_tur.data.paired_task_dataset import read_meta_file, read_meta_sources
from basicsr_tur.data.synthetic_task_dataset import read_image_list
from basicsr_tur.prepare.plan import PrepareError
from basicsr_tur.utils.option_file import OptionError, load_yaml
from basicsr_tur.utils.text_file import TextFileError, read_text, read_text_lines

META = '# source: re-synthesised\nlq/a.png gt/a.png derain\nlq/é b.png gt/é.png dehaze\n\nlq/c.png gt/c.png derain\n'
ENCODINGS = ['utf-8', 'utf-8-sig', 'utf-16', 'utf-16-be', 'utf-32']  # 'utf-16'/'utf-32' write a byte-order mark
LINE_ENDS = ['\n', '\r\n', '\r']


def write(path, text: str, encoding: str = 'utf-8', newline: str = '\n') -> str:
    """Write text as another tool would: its encoding (a BOM for utf-8-sig, utf-16, utf-32) and its line ends."""
    data = text.replace('\n', newline)
    if encoding == 'utf-16-be':  # a big-endian file with its byte-order mark, as some tools write it
        raw = b'\xfe\xff' + data.encode('utf-16-be')
    else:
        raw = data.encode(encoding)
    path.write_bytes(raw)
    return str(path)


@pytest.mark.parametrize('newline', LINE_ENDS)
@pytest.mark.parametrize('encoding', ENCODINGS)
def test_text_is_read_whatever_the_encoding_mark_and_line_ends(tmp_path, encoding, newline):
    path = write(tmp_path / 'meta.txt', META, encoding, newline)
    assert read_text(path) == META
    assert read_text_lines(path) == META.split('\n')[:-1]


@pytest.mark.parametrize('newline', LINE_ENDS)
@pytest.mark.parametrize('encoding', ENCODINGS)
def test_meta_file_pairs_and_sources_survive_other_tools(tmp_path, encoding, newline):
    quoted = META.replace('lq/é b.png', '"lq/é b.png"')
    path = write(tmp_path / 'meta.txt', quoted, encoding, newline)
    assert read_meta_file(path, None) == [('lq/a.png', 'gt/a.png', 'derain'), ('lq/é b.png', 'gt/é.png', 'dehaze'),
                                          ('lq/c.png', 'gt/c.png', 'derain')]
    assert read_meta_sources(path) == ['re-synthesised']


def test_clean_list_with_byte_order_mark_names_the_first_image_right(tmp_path):
    path = write(tmp_path / 'clean.txt', '0001.png\n0002.png\n', 'utf-8-sig', '\r\n')
    assert read_image_list(path) == ['0001.png', '0002.png']


def test_options_file_saved_by_notepad_loads(tmp_path):
    text = 'name: run\ntasks: [derain, dehaze]\nval:\n  suffix: é\n'
    for encoding in ENCODINGS:
        path = write(tmp_path / f'{encoding}.yml', text, encoding, '\r\n')
        assert load_yaml(path) == yaml.safe_load(text)


@pytest.mark.parametrize('data, line', [(b'a.png b.png x\nd\xe9j\xe0.png b.png x\n', 2),  # Latin-1
                                        ('a.png\nb.png\n'.encode('utf-16-le'), 1),  # UTF-16 without a mark
                                        (b'\xef\xbb\xbfa.png b.png x\nc.png\x00 d.png x\n', 2)])  # NUL after a BOM
def test_other_encodings_are_refused_naming_file_and_line(tmp_path, data, line):
    path = tmp_path / 'meta.txt'
    path.write_bytes(data)
    with pytest.raises(TextFileError) as err:
        read_meta_file(str(path), None)
    assert str(path) in str(err.value) and f'line {line}' in str(err.value) and '\n' not in str(err.value)


def test_refused_options_file_is_an_option_error_naming_it(tmp_path):
    path = tmp_path / 'opt.yml'
    path.write_bytes(b'name: caf\xe9\n')
    with pytest.raises(OptionError) as err:
        load_yaml(str(path))
    assert str(path) in str(err.value) and 'line 1' in str(err.value) and '\n' not in str(err.value)


def prepare_with_list(tmp_path, encode) -> str:
    """Prepare aio3 from the test replica with its OTS list (OTS/hazy_outside.txt) rewritten by encode(names);
    returns the setting folder."""
    from test_prepare_data import make_raw

    from basicsr_tur.prepare.build import prepare
    raw = str(tmp_path / 'raw')
    make_raw(raw, 'aio3')
    list_file = osp.join(raw, 'OTS', 'hazy_outside.txt')
    with open(list_file, encoding='utf-8') as f:
        names = f.read().split()
    with open(list_file, 'wb') as f:
        f.write(encode(names))
    prepare('aio3', str(tmp_path), workers=1)
    return osp.join(str(tmp_path), 'aio3')


def test_authors_list_written_on_windows_prepares_as_the_plain_one(tmp_path):
    plain = prepare_with_list(tmp_path / 'plain', lambda names: ''.join(f'{n}\n' for n in names).encode())
    windows = prepare_with_list(tmp_path / 'windows',
                                lambda names: ''.join(f'{n}\r\n' for n in names).encode('utf-8-sig'))
    with open(osp.join(plain, 'meta_train.txt'), encoding='utf-8') as a, \
            open(osp.join(windows, 'meta_train.txt'), encoding='utf-8') as b:
        assert a.read() == b.read()


def test_authors_list_in_another_encoding_is_refused_naming_it(tmp_path):
    with pytest.raises(PrepareError) as err:
        prepare_with_list(tmp_path, lambda names: ('\n'.join(names) + '\ncaf\xe9.png\n').encode('latin-1'))
    # the replica's list names two images: the third line holds the Latin-1 byte
    assert 'hazy_outside.txt' in str(err.value) and 'line 3' in str(err.value)
