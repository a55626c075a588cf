"""The folder pre-training writes, used as a Hub user uses it: `AutoProcessor`, `AutoModel` and the two pipelines,
in-process and in a clean process that can import only transformers, torch, safetensors and huggingface-hub."""

import json
import os
import re
import subprocess
import sys

import pytest
import torch
from transformers import AutoModelForPreTraining, pipeline

from conftest import assert_share_of, pretraining_arguments, tiny_config
from modeling_jaket import JaketForPreTraining, JaketForSequenceClassification, JaketModel, KnowledgeGraph

# Imported before anything else in the clean process: every package of this repository, and the ones only it needs,
# fail to import there.
BLOCK_IMPORTS = """
import sys
BLOCKED = {"modeling_jaket", "tokenization", "datasets_scripts", "jaket_training", "datasets", "evaluate",
           "torch_scatter"}
class Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked: a Hub user has only the model folder)")
sys.meta_path.insert(0, Blocked())
"""


def graph_text(folder):
    """A sentence made of two names of the saved graph, and those names."""
    names = json.loads((folder / "graph" / "graph.json").read_text())["entity_names"]
    first, second = list(dict.fromkeys(name for name in names if re.fullmatch(r"[a-z]{4,}", name)))[:2]
    return f"The {first} met the {second}.", (first, second)


def run_clean(tmp_path, code: str, **env) -> str:
    script = tmp_path / "clean.py"
    script.write_text(BLOCK_IMPORTS + code)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules"), **env}
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout


@pytest.mark.scripts
@pytest.mark.data
def test_the_card_s_usage_runs_where_only_transformers_is_installed(pretrained, tmp_path):
    folder, _ = pretrained
    card = (folder / "README.md").read_text()
    usage = re.search(r"```python\n(.*?)```", card, re.S).group(1)
    assert "modeling_jaket" not in usage and "pipeline(" in usage and "AutoProcessor" in usage
    name = re.search(r'model="([^"]+)"', usage).group(1)
    text, _ = graph_text(folder)
    usage = usage.replace(f'"{name}"', repr(str(folder)))  # the card's sentences, with names this small graph has
    usage = usage.replace('"The dog chased a cat up the tree."', repr(text)).replace(
        '"The dog chased a cat."', repr(text)
    )
    out = run_clean(
        tmp_path,
        usage
        + """
assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
assert type(processor).__module__.startswith("transformers_modules"), type(processor).__module__
assert output.entity_embeddings.shape[0] == inputs["subgraph_entity_ids"].numel() > 0
try:
    import modeling_jaket
except ModuleNotFoundError:
    print("blocked ok")
""",
    )
    assert "blocked ok" in out
    assert "'entities': [{'id':" in out and "'label':" in out


@pytest.mark.data
def test_entity_linking_finds_the_graph_s_names_and_ranks_their_entities(pretrained):
    folder, _ = pretrained
    text, names = graph_text(folder)
    linker = pipeline("entity-linking", model=str(folder), trust_remote_code=True)
    mentions = linker(text, top_k=50)
    assert [m["word"] for m in mentions] == list(names)
    graph = KnowledgeGraph.from_pretrained(folder, subfolder="graph")
    for mention in mentions:
        assert mention["entities"], mention
        assert all(graph.entity_names[e["id"]] == e["name"] for e in mention["entities"])
        assert mention["word"] in {e["name"] for e in mention["entities"]} | {
            alias for e in mention["entities"] for alias in graph.entity_aliases[e["id"]]
        }
        scores = [e["score"] for e in mention["entities"]]
        assert scores == sorted(scores, reverse=True) and all(0 <= score <= 1 for score in scores)
        logits = [e["logit"] for e in mention["entities"]]
        assert logits == sorted(logits, reverse=True)
        everyone = linker(mention["word"], top_k=1000)[0]["entities"]  # all of this name's candidates
        assert sum(e["score"] for e in everyone) == pytest.approx(1.0, abs=1e-5)
    assert len(linker(text, top_k=1)[0]["entities"]) == 1
    # a batch, a stream, workers give what one text at a time gives: the same links, scores to float rounding
    texts = [text, "Nothing here at all.", text.upper()]
    one_by_one = [linker(t, top_k=3) for t in texts]

    def assert_same_links(results, expected):
        results = list(results)
        assert [[m["word"] for m in r] for r in results] == [[m["word"] for m in r] for r in expected]
        for got, wanted in zip(results, expected):
            for a, b in zip(got, wanted):
                assert [e["id"] for e in a["entities"]] == [e["id"] for e in b["entities"]]
                for key in ("score", "logit"):
                    assert [e[key] for e in a["entities"]] == pytest.approx([e[key] for e in b["entities"]], abs=1e-4)

    assert_same_links(linker(texts, batch_size=3, top_k=3), one_by_one)
    # a generator and a KeyDataset give the same, lazily, as transformers' pipelines do
    from datasets import Dataset
    from transformers.pipelines.pt_utils import KeyDataset

    streamed = linker((t for t in texts), batch_size=2, top_k=3)
    assert not isinstance(streamed, list)
    assert_same_links(streamed, one_by_one)
    assert_same_links(linker(KeyDataset(Dataset.from_dict({"text": texts}), "text"), top_k=3), one_by_one)
    # preprocessing in DataLoader workers, as transformers' pipelines' num_workers: the same answers, in order
    assert_same_links(linker(texts, batch_size=1, num_workers=2, top_k=3), one_by_one)
    keyed = KeyDataset(Dataset.from_dict({"text": texts * 3}), "text")
    assert_same_links(linker(keyed, batch_size=2, num_workers=2, top_k=3), one_by_one * 3)
    assert_same_links(linker((t for t in texts), num_workers=2, top_k=3), one_by_one)  # one worker reads a generator


@pytest.mark.data
def test_entity_classification_answers_with_the_category_head(pretrained):
    folder, _ = pretrained
    classifier = pipeline("entity-classification", model=str(folder), trust_remote_code=True)
    graph = KnowledgeGraph.from_pretrained(folder, subfolder="graph")
    results = classifier([0, graph.entity_ids[1], 2], top_k=3)
    assert len(results) == 3 and all(len(r) == 3 for r in results)
    for result in results:
        assert {r["label"] for r in result} <= set(graph.category_names)
        assert [r["score"] for r in result] == sorted((r["score"] for r in result), reverse=True)
    for result in results:
        assert [r["logit"] for r in result] == sorted((r["logit"] for r in result), reverse=True)
    assert sum(r["score"] for r in classifier(0, top_k=1000)) == pytest.approx(1.0, abs=1e-5)  # every category
    # an entity's answer does not depend on the batch it is in (one subgraph a batch made it so)
    entities = list(range(6))
    one_by_one = [classifier(entity, top_k=2) for entity in entities]
    for size, workers in ((2, 0), (4, 0), (6, 0), (2, 2)):
        batched = classifier(entities, batch_size=size, num_workers=workers, top_k=2)
        assert [[r["label"] for r in result] for result in batched] == [[r["label"] for r in r1] for r1 in one_by_one]
        for got, want in zip(batched, one_by_one):
            assert [r["score"] for r in got] == pytest.approx([r["score"] for r in want], abs=1e-6)
    # the same answer as the model's own category head on the processor's inputs
    model = AutoModelForPreTraining.from_pretrained(folder, trust_remote_code=True).eval()
    inputs = classifier.processor.graph_inputs(torch.tensor([0]))
    with torch.no_grad():
        best = model(**inputs).entity_category_logits[0].argmax().item()
    assert results[0][0]["label"] == graph.category_names[best]


@pytest.mark.data
def test_bad_pipeline_calls_name_what_is_wrong(pretrained):
    folder, _ = pretrained
    linker = pipeline("entity-linking", model=str(folder), trust_remote_code=True)
    classifier = pipeline("entity-classification", model=str(folder), trust_remote_code=True)
    with pytest.raises(ValueError, match="top_k must be a positive integer, got 0"):
        linker("a sentence", top_k=0)  # it returned every mention with no entity
    with pytest.raises(ValueError, match="top_k must be a positive integer, got -1"):
        classifier(0, top_k=-1)  # it dropped the last label
    with pytest.raises(ValueError, match="example 1: text must be a string, got NoneType"):
        linker(["a sentence", None])
    with pytest.raises(ValueError, match="graph must be a KnowledgeGraph with entity descriptions, got str"):
        classifier(0, graph="graph/")
    nameless = KnowledgeGraph([0], [0], [1], num_entities=2, num_relations=1, entity_descriptions=["a", "b"])
    with pytest.raises(ValueError, match="graph has no entity_names, relation_names, relation_descriptions: its"):
        classifier(0, graph=nameless)  # was a TypeError deep in encoding
    for size in (-1, 0, True, 2.0):  # -1 returned [] and 0 meant 8
        with pytest.raises(ValueError, match=f"batch_size must be a positive integer, got {size!r}"):
            linker(["a sentence"], batch_size=size)
    for workers in (-1, 1.5, True):
        with pytest.raises(ValueError, match=f"num_workers must be a non-negative integer, got {workers!r}"):
            linker(["a sentence"], num_workers=workers)
    with pytest.raises(ValueError, match="EntityLinkingPipeline takes top_k .* not topk"):
        linker("a sentence", topk=2)  # it was swallowed
    with pytest.raises(ValueError, match="EntityClassificationPipeline takes top_k, graph .* not grpah"):
        classifier(0, grpah=None)


@pytest.mark.data
def test_entity_classification_of_a_new_graph_from_its_descriptions(pretrained):
    folder, _ = pretrained
    classifier = pipeline("entity-classification", model=str(folder), trust_remote_code=True)
    new = KnowledgeGraph(
        [0],
        [0],
        [1],
        num_entities=2,
        num_relations=1,
        entity_names=["okapi", "giraffe"],
        entity_descriptions=["okapi: a ruminant mammal of the Congo", "giraffe: a tall African mammal"],
        relation_names=["related to"],
        relation_descriptions=["related to: is related to"],
    )
    result = classifier("okapi", graph=new, top_k=2)
    assert len(result) == 2 and {r["label"] for r in result} <= set(classifier.processor.graph.category_names)
    assert classifier("okapi", graph=new, top_k=2) == result  # the new graph's memory is encoded once, then kept


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_pipelines_run_on_a_gpu(pretrained):
    folder, _ = pretrained
    text, names = graph_text(folder)
    linker = pipeline("entity-linking", model=str(folder), trust_remote_code=True, device=0)
    assert linker.model.device.type == "cuda"
    assert [m["word"] for m in linker(text)] == list(names)
    classifier = pipeline("entity-classification", model=str(folder), trust_remote_code=True, device=0)
    assert len(classifier([0, 1], top_k=2)) == 2


@pytest.mark.scripts
@pytest.mark.data
def test_entity_linking_figures_on_held_out_sentences(pretrained, tmp_path, tiny_bert_checkpoint, datasets_cache):
    from evaluate_entity_linking import main as evaluate_entity_linking

    folder, _ = pretrained
    flags = pretraining_arguments(
        tiny_bert_checkpoint, datasets_cache, tmp_path, 12, "--heldout_text_fraction", "0.25"
    )
    evaluate_entity_linking([str(folder), "--output_file", str(tmp_path / "linking.json"), *flags])
    results = json.loads((tmp_path / "linking.json").read_text())
    assert results["gold_mentions"] >= results["gold_mentions_found"] >= results["gold_among_candidates"] > 0
    assert_share_of(results["detection_recall"], results["gold_mentions"])
    for key in ("linking_hits_at_1", "linking_first_candidate_hits_at_1", "linking_prior_hits_at_1"):
        assert_share_of(results[key], results["gold_among_candidates"])
    # one count of correct links behind both the linking and the end-to-end figures
    correct = results["linking_hits_at_1"] * results["gold_among_candidates"]
    assert results["end_to_end_recall"] * results["gold_mentions"] == pytest.approx(correct)
    assert results["end_to_end_precision"] * results["mentions_found"] == pytest.approx(correct)
    assert 0 < results["linking_chance_hits_at_1"] <= 1


def test_entity_linking_score_counts_each_case():
    from evaluate_entity_linking import score

    graph = KnowledgeGraph(
        [0],
        [0],
        [1],
        num_entities=3,
        num_relations=1,
        entity_names=["bank", "bank", "river"],
        entity_ids=["a", "b", "c"],
    )
    texts = ["bank river", "bank"]
    gold = [
        [{"start": 0, "end": 4, "entity": "b"}, {"start": 5, "end": 10, "entity": "c"}],
        [{"start": 0, "end": 4, "entity": "a"}, {"start": 0, "end": 1, "entity": "zz"}],
    ]
    linked = [
        [{"start": 0, "end": 4, "entities": [{"id": 1}, {"id": 0}]}, {"start": 5, "end": 10, "entities": [{"id": 2}]}],
        [{"start": 0, "end": 4, "entities": [{"id": 1}, {"id": 0}]}],
    ]
    results = score(texts, gold, linked, graph, prior=[5, 1, 0])
    assert results["gold_mentions"] == 3  # "zz" is no entity of the graph
    assert results["gold_mentions_found"] == results["gold_among_candidates"] == 3
    assert results["linking_hits_at_1"] == pytest.approx(2 / 3)  # b and c right, a wrong
    assert results["linking_first_candidate_hits_at_1"] == pytest.approx(2 / 3)  # a (first "bank") and c
    assert results["linking_prior_hits_at_1"] == pytest.approx(2 / 3)  # a (prior 5) and c
    assert results["linking_chance_hits_at_1"] == pytest.approx((0.5 + 1 + 0.5) / 3)
    assert results["end_to_end_precision"] == pytest.approx(2 / 3)


TEXT_TASKS = {
    "feature-extraction": JaketModel,
    "text-classification": JaketForSequenceClassification,
    "fill-mask": JaketForPreTraining,
}


@pytest.mark.parametrize("task", sorted(TEXT_TASKS))
def test_transformers_own_text_pipelines_run_on_jaket_through_remote_code(task, tmp_path, bert_tokenizer):
    """transformers' feature-extraction, text-classification and fill-mask pipelines on a saved JAKET folder (text
    alone: these pipelines pass no graph), each giving what the model gives on the same text."""
    torch.manual_seed(0)
    model = TEXT_TASKS[task](tiny_config(vocab_size=len(bert_tokenizer))).eval()
    model.save_pretrained(tmp_path)
    bert_tokenizer.save_pretrained(tmp_path)
    text = f"a dog barks at the {bert_tokenizer.mask_token} ." if task == "fill-mask" else "a dog barks"
    encoding = bert_tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        output = model(**encoding)
    result = pipeline(task, model=str(tmp_path), trust_remote_code=True)(text)
    if task == "feature-extraction":
        torch.testing.assert_close(torch.tensor(result[0]), output.last_hidden_state[0])
    elif task == "text-classification":
        probabilities = output.logits[0].softmax(-1)
        assert result[0]["label"] == f"LABEL_{int(probabilities.argmax())}"
        assert result[0]["score"] == pytest.approx(float(probabilities.max()), rel=1e-5)
    else:
        masked = int((encoding["input_ids"][0] == bert_tokenizer.mask_token_id).nonzero())
        assert result[0]["token"] == int(output.logits[0, masked].argmax())


SAVE_AGAIN = """
import json, sys
from transformers import AutoModelForPreTraining, AutoProcessor, pipeline
source, target, text, one_call = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "one call"
model = AutoModelForPreTraining.from_pretrained(source, trust_remote_code=True)
processor = AutoProcessor.from_pretrained(source, trust_remote_code=True)
assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
if one_call:
    model.save_pretrained(target, processor=processor)
else:
    model.save_pretrained(target)
    processor.save_pretrained(target)
linker = pipeline("entity-linking", model=target, trust_remote_code=True)
classifier = pipeline("entity-classification", model=target, trust_remote_code=True)
print(json.dumps({"linked": linker(text, top_k=3), "classified": classifier([0, 1], top_k=2)}))
"""


# What pre-training writes beside the model: the run's own records, no part of what a model folder carries.
RUN_RECORDS = {"README.md", "eval_curve.png", "eval_history.json", "eval_results.json", "fingerprints.json", "latest"}


def model_files(folder) -> set[str]:
    """The files of pre-training's output folder that make the model: all but checkpoints and `RUN_RECORDS`."""
    files = {path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file()}
    return {name for name in files - RUN_RECORDS if not name.startswith(("checkpoint-", "train_history"))}


@pytest.mark.scripts
@pytest.mark.data
def test_a_model_loaded_through_remote_code_saves_a_folder_that_works_twice(pretrained, tmp_path):
    """Load model and processor with `trust_remote_code` in a clean process, save both (in one call,
    `save_pretrained(processor=...)`; then in two), run both pipelines from the new folder; then the same from that
    folder: each generation has the same files, byte for byte, and gives the same answers, as does the last folder
    pushed to (a stand-in of) the Hub and run from its repo id."""
    folder, _ = pretrained
    text, _ = graph_text(folder)
    expected = {
        "linked": pipeline("entity-linking", model=str(folder), trust_remote_code=True)(text, top_k=3),
        "classified": pipeline("entity-classification", model=str(folder), trust_remote_code=True)([0, 1], top_k=2),
    }
    source = folder
    for generation, how in (("first", "one call"), ("second", "two calls")):
        target = tmp_path / generation
        arguments = ["", str(source), str(target), text, how]
        answers = json.loads(run_clean(tmp_path, f"sys.argv = {arguments!r}\n" + SAVE_AGAIN).strip().splitlines()[-1])
        assert [m["word"] for m in answers["linked"]] == [m["word"] for m in expected["linked"]]
        for got, want in zip(answers["linked"], expected["linked"]):
            assert [e["id"] for e in got["entities"]] == [e["id"] for e in want["entities"]]
            assert [e["score"] for e in got["entities"]] == pytest.approx([e["score"] for e in want["entities"]])
        assert [[r["label"] for r in result] for result in answers["classified"]] == [
            [r["label"] for r in result] for result in expected["classified"]
        ]
        saved = {path.relative_to(target).as_posix() for path in target.rglob("*") if path.is_file()}
        assert saved == model_files(folder)
        for name in saved:  # weights, code, tokenizer, processor settings, graph and memory, as pre-training wrote
            assert (target / name).read_bytes() == (folder / name).read_bytes(), name
        source = target
    # the saved folder as a Hub repo: both pipelines from its id, where only transformers is installed
    from test_hub import as_hub_cache

    cache = as_hub_cache(source, "someone/jaket-saved-again", tmp_path / "hub-cache")
    hub_run = """
import json
from transformers import pipeline
linker = pipeline("entity-linking", model="someone/jaket-saved-again", trust_remote_code=True)
classifier = pipeline("entity-classification", model="someone/jaket-saved-again", trust_remote_code=True)
print(json.dumps({"linked": linker(TEXT, top_k=3), "classified": classifier([0, 1], top_k=2)}))
""".replace("TEXT", repr(text))
    from_hub = json.loads(run_clean(tmp_path, hub_run, HF_HUB_CACHE=str(cache)).strip().splitlines()[-1])
    assert from_hub == answers


@pytest.mark.data
def test_a_pipeline_refuses_parts_that_do_not_fit_its_model(pretrained, tmp_path):
    """Checked when the pipeline is built: each of these loaded, and answered wrong or failed deep inside."""
    import shutil

    from modeling_jaket import EntityContextMemory

    folder, _ = pretrained
    vocab = json.loads((folder / "graph" / "graph.json").read_text())
    cases = {
        "short category names": ("entity-classification", {"category_names": vocab["category_names"][:-1]}, None),
        "no entity names": ("entity-linking", {"entity_names": None, "entity_aliases": None}, None),
        "narrow memory": ("entity-linking", {}, 8),
    }
    messages = {
        "short category names": rf"the category head has {len(vocab['category_names'])} classes but the graph "
        rf"{len(vocab['category_names']) - 1} category_names",  # it answered "9" for the last category
        "no entity names": "the graph has no entity_names, so no mention can be found",
        "narrow memory": r"the entity memory is 8 wide, the model's hidden_size \d+",
    }
    for case, (task, change, width) in cases.items():
        copy = tmp_path / case.replace(" ", "_")
        shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("checkpoint-*"))
        (copy / "graph" / "graph.json").write_text(json.dumps({**vocab, **change}))
        if width:
            memory = EntityContextMemory.from_pretrained(folder)
            EntityContextMemory(memory.num_entities, memory.num_relations, width).save_pretrained(copy)
        with pytest.raises(ValueError, match=f"{copy}: .*{messages[case]}"):
            pipeline(task, model=str(copy), trust_remote_code=True)


@pytest.mark.data
def test_the_pipelines_run_on_a_model_in_memory(pretrained):
    """Registered with transformers' PIPELINE_REGISTRY when the package is imported: a model and processor built or
    loaded in this process run in `pipeline(task, model=model, processor=processor)`, no folder or remote code, and
    answer as the saved folder's pipelines do."""
    from modeling_jaket import JaketProcessor

    folder, _ = pretrained
    text, _ = graph_text(folder)
    model = JaketForPreTraining.from_pretrained(folder).eval()  # its folder declares the pipelines for remote code
    processor = JaketProcessor.from_pretrained(folder)
    in_memory = pipeline("entity-linking", model=model, processor=processor)(text, top_k=3)
    saved = pipeline("entity-linking", model=str(folder), trust_remote_code=True)(text, top_k=3)
    assert [m["word"] for m in in_memory] == [m["word"] for m in saved]
    assert [[e["id"] for e in m["entities"]] for m in in_memory] == [[e["id"] for e in m["entities"]] for m in saved]
    classified = pipeline("entity-classification", model=model, processor=processor)([0, 1], top_k=2)
    assert classified == pipeline("entity-classification", model=str(folder), trust_remote_code=True)([0, 1], top_k=2)
