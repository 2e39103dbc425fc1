"""GLUE-style single-sentence classification data: SST-2 and CoLA TSV loaders.

SST-2 (``train.tsv``/``dev.tsv``): a header ``sentence<TAB>label`` then one row per example.
CoLA (``in_domain_train.tsv``, ``in_domain_dev.tsv``, ``out_of_domain_dev.tsv``, or GLUE's
``train.tsv``/``dev.tsv``): no header, four columns ``source<TAB>label<TAB>original_label<TAB>sentence``.
A test file without labels (GLUE ``test.tsv``: ``index<TAB>sentence``) loads with label -1.
Malformed rows are skipped with a counted warning naming the file and line; a file with no valid
row is an error.
"""
import csv
import logging
import os

log = logging.getLogger(__name__)

TASKS = ("sst2", "cola")
NUM_LABELS = {"sst2": 2, "cola": 2}
METRICS = {"sst2": "accuracy", "cola": "matthews_corrcoef"}
SPLIT_FILES = {
    "sst2": {"train": ("train.tsv",), "dev": ("dev.tsv",), "test": ("test.tsv",)},
    "cola": {"train": ("in_domain_train.tsv", "train.tsv"), "dev": ("in_domain_dev.tsv", "dev.tsv"),
             "test": ("test.tsv",)},
}


def _rows(path):
    with open(path, encoding="utf-8", newline="") as f:
        yield from enumerate(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE), start=1)


def _label(value, path, line):
    try:
        label = int(value)
    except ValueError:
        raise ValueError(f"{path}:{line}: label {value!r} is not an integer") from None
    if label not in (0, 1):
        raise ValueError(f"{path}:{line}: label {label} is not 0 or 1")
    return label


def read_glue_tsv(path, task):
    """``(sentences list[str], labels list[int])`` of one GLUE-style TSV file of ``task``."""
    if task not in TASKS:
        raise ValueError(f"unknown GLUE task {task!r}; expected one of {TASKS}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"GLUE {task} file '{path}' does not exist")
    sentences, labels, skipped, header = [], [], 0, None
    for line, row in _rows(path):
        if not row or all(not c.strip() for c in row):
            continue
        try:
            if line == 1 and row[0] in ("sentence", "index"):
                header = row
                continue
            if task == "cola" and len(row) == 4:
                sentence, label = row[3], _label(row[1], path, line)
            elif task == "sst2" and len(row) == 2 and row[1].strip().lstrip("-").isdigit():
                sentence, label = row[0], _label(row[1], path, line)
            elif len(row) == 2 and header is not None and header[0] == "index":
                sentence, label = row[1], -1
            else:
                raise ValueError(f"{path}:{line}: expected "
                                 f"{'4 columns (source, label, original_label, sentence)' if task == 'cola' else '2 columns (sentence, label)'}"
                                 f", got {len(row)}")
            if not sentence.strip():
                raise ValueError(f"{path}:{line}: empty sentence")
        except ValueError as err:
            skipped += 1
            log.warning("skipping malformed row: %s", err)
            continue
        sentences.append(sentence)
        labels.append(label)
    if skipped:
        log.warning("%s: skipped %d malformed row(s)", path, skipped)
    if not sentences:
        raise ValueError(f"{path}: no valid {task} rows ({skipped} malformed)")
    return sentences, labels


def glue_split_path(root, task, split):
    """The first existing file of ``split`` ('train' | 'dev' | 'test') under ``root``."""
    if task not in TASKS:
        raise ValueError(f"unknown GLUE task {task!r}; expected one of {TASKS}")
    names = SPLIT_FILES[task].get(split)
    if names is None:
        raise ValueError(f"unknown split {split!r}; expected one of {tuple(SPLIT_FILES[task])}")
    for name in names:
        path = os.path.join(root, name)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(f"GLUE {task} {split} split: none of {names} exists in '{root}'")


def load_glue(root, task, split):
    """``(sentences, labels)`` of ``split`` of the GLUE ``task`` folder ``root``."""
    return read_glue_tsv(glue_split_path(root, task, split), task)


def write_sst2_tsv(path, sentences, labels):
    """Write an SST-2-style TSV (header ``sentence<TAB>label``) atomically."""
    from common.atomic import atomic_path
    for i, s in enumerate(sentences):
        if "\t" in s or "\n" in s:
            raise ValueError(f"write_sst2_tsv: sentence {i} contains a tab or newline")
    body = "sentence\tlabel\n" + "".join(f"{s}\t{int(y)}\n" for s, y in zip(sentences, labels))
    with atomic_path(path) as tmp:
        tmp.write_text(body, encoding="utf-8")
