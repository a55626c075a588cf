"""examples/finetune_text_classification.py on the example that ships with it (examples/example_text over
examples/example_kg): one command fine-tunes, tests and saves a model that AutoProcessor + AutoModel load."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoProcessor

import datasets_scripts
from conftest import assert_share_of
from datasets_scripts import DataFormatError
from modeling_jaket import KnowledgeGraph

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
FILES = {name: EXAMPLES / "example_text" / f"{name}.jsonl" for name in ("train", "validation", "test")}


def arguments(tmp_path, *extra, files=FILES):
    return [
        "--kg_dir",
        str(EXAMPLES / "example_kg"),
        *(f"--{name}_file={path}" for name, path in files.items()),
        "--output_dir",
        str(tmp_path / "out"),
        "--dataset_cache_dir",
        str(tmp_path / "cache"),
        "--step_budget",
        "3",
        "--learning_rate_grid",
        "1",
        "--num_evaluations",
        "1",
        *extra,
    ]


@pytest.mark.scripts
@pytest.mark.data
def test_one_command_links_fine_tunes_and_tests_on_the_shipped_example(tmp_path, pretrained, tiny_bert_checkpoint):
    from finetune_text_classification import main as text_classification

    records = text_classification(
        arguments(
            tmp_path,
            "--method",
            "jaket",
            "lm_gnn_m",
            "--model_name_or_path",
            str(pretrained[0]),
            "--backbone",
            tiny_bert_checkpoint,
        )
    )
    tests = len(FILES["test"].read_text().splitlines())
    assert [r["method"] for r in records] == ["jaket", "lm_gnn_m"]
    for record in records:
        assert record["labels"] == ["botany", "geography", "wildlife"] and record["test_examples"] == tests
        assert_share_of(record["accuracy"], tests)
        assert record["chosen"]["steps"] == 3
    folder = tmp_path / "out" / "jaket-seed42"
    model = AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
    assert model.config.id2label == {0: "botany", 1: "geography", 2: "wildlife"}
    inputs = processor("The wolf crossed the river.", entity_spans=[(4, 8), (21, 26)], entities=["wolf", "river"])
    with torch.no_grad():
        assert model(**inputs).logits.shape == (1, 3)


@pytest.mark.data
def test_examples_without_mentions_are_linked_by_the_pre_trained_head(tmp_path, pretrained):
    from finetune_text_classification import link_missing, parse_args, read_examples

    args = parse_args(arguments(tmp_path, "--model_name_or_path", str(pretrained[0])))
    kg = datasets_scripts.load("user_kg", EXAMPLES / "example_kg", cache_dir=str(tmp_path / "cache"))
    graph = KnowledgeGraph.from_records(kg["entities"], kg["relations"], kg["triples"], add_reverse=True)
    examples = read_examples(FILES["train"], graph)
    missing = sum(e["mentions"] is None for e in examples)
    assert link_missing(examples, args, graph) == missing > 0
    assert all(e["mentions"] for e in examples)  # every example of the file names an entity of the example KG
    for example in examples:
        for start, end, entity in example["mentions"]:
            text = example["text"][start:end].lower()
            assert text == graph.entity_names[entity] or text in graph.entity_aliases[entity]
    lion = next(e for e in examples if e["text"].startswith("A lion rested"))
    assert [(example_text(lion, m), graph.entity_names[m[2]]) for m in lion["mentions"]] == [
        ("lion", "lion"),
        ("savanna", "savanna"),
    ]


def example_text(example, mention):
    return example["text"][mention[0] : mention[1]]


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"text": "A dog.", "label": "x", "mentions": [{"start": 2, "end": 5, "entity": "unicorn"}]}', "unicorn"),
        ('{"text": "A dog.", "label": "x", "mentions": [{"start": 2, "end": 50, "entity": "dog"}]}', "outside"),
        ('{"text": "", "label": "x"}', "non-empty string 'text'"),
        ('{"text": "A dog.", "label": [1]}', "'label' must be a non-empty string or an integer"),
        ('{"text": "A dog.", "label": " "}', "'label' must be a non-empty string or an integer, got ' '"),
        ("not json", "not valid JSON"),
        ('{"text": "A dog.", "label": "x", "label": "y"}', "key 'label' appears twice in one object"),
        ('{"text": "A dog.", "label": "x", "deep": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
        ('{"text": "A d\udcffog.", "label": "x"}', r"not UTF-8 \(byte 0xff at column 14\)"),
        ('{"text": "A dog.", "label": "x", "mentions": {"start": 2}}', "'mentions' must be a list, got dict"),
        ('{"text": "A dog.", "label": "x", "mentions": [{"start": true, "end": 5, "entity": "dog"}]}', "integer"),
        (
            '{"text": "A dog.", "label": "x", "mentions": [{"start": 2, "end": 5, "entity": "dog"}, '
            '{"start": 3, "end": 5, "entity": "dog"}]}',
            r"mentions 0 \[2, 5\) and 1 \[3, 5\) overlap",
        ),
    ],
)
def test_a_bad_line_is_named_by_file_and_line(tmp_path, line, message):
    from finetune_text_classification import main as text_classification

    files = {name: tmp_path / f"{name}.jsonl" for name in FILES}
    for name, path in files.items():
        shutil.copy(FILES[name], path)
    with files["validation"].open("ab") as f:  # surrogateescape writes the one undecodable byte as it is
        f.write(line.encode("utf-8", "surrogateescape") + b"\n")
    with pytest.raises(DataFormatError, match=rf"validation.jsonl, line 7: .*{message}"):
        text_classification(arguments(tmp_path, "--method", "lm", files=files))


def test_mentions_missing_without_a_model_to_link_them_and_unknown_labels_are_refused(tmp_path, tiny_bert_checkpoint):
    from finetune_text_classification import main as text_classification

    with pytest.raises(ValueError, match="have no mentions: pass --model_name_or_path"):
        text_classification(arguments(tmp_path, "--method", "lm", "--backbone", tiny_bert_checkpoint))
    files = {name: tmp_path / f"{name}.jsonl" for name in FILES}
    for name, path in files.items():
        rows = [json.loads(line) for line in FILES[name].read_text().splitlines()]
        rows = [r for r in rows if "mentions" in r]
        if name == "test":
            rows[0]["label"] = "astronomy"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ValueError, match=r"--test_file has labels \['astronomy'\] that no training example has"):
        text_classification(arguments(tmp_path, "--method", "lm", "--backbone", tiny_bert_checkpoint, files=files))


def test_labels_are_stripped_a_bom_is_read_and_ignored_keys_are_said(tmp_path, caplog):
    from finetune_text_classification import read_examples

    path = tmp_path / "rows.jsonl"
    rows = [{"text": "A wolf.", "label": "wildlife"}, {"text": "A fern.", "label": "botany ", "mentoins": []}]
    path.write_text("\ufeff" + "".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    examples = read_examples(path, KnowledgeGraph([], [], [], num_entities=1, num_relations=1))
    assert [e["label"] for e in examples] == ["wildlife", "botany"] and examples[1]["mentions"] is None
    assert "ignored keys {'mentoins': 1}" in caplog.text


def test_a_training_file_of_one_label_is_refused(tmp_path):
    from finetune_text_classification import main as text_classification

    files = {name: tmp_path / f"{name}.jsonl" for name in FILES}
    for path in files.values():
        path.write_text('{"text": "A wolf ran.", "label": "wildlife", "mentions": []}\n')
    with pytest.raises(ValueError, match=r"--train_file has one label \('wildlife'\): classification needs at least"):
        text_classification(arguments(tmp_path, "--method", "lm", files=files))
