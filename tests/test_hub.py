"""The Hub path, without a network: a Hub cache laid out as huggingface_hub writes it stands in for a download, and a
fake HfApi stands in for the uploads."""

import json
import shutil
from pathlib import Path

import pytest
import torch

from modeling_jaket import EntityContextMemory, KnowledgeGraph

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def as_hub_cache(folder: Path, repo_id: str, cache: Path) -> Path:
    """Put `folder` in `cache` as the snapshot of model repo `repo_id` at `main`, as hf_hub_download leaves it."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    shutil.copytree(folder, repo / "snapshots" / COMMIT)
    return cache


def test_memory_and_graph_load_from_a_hub_repo_id(tmp_path):
    memory = EntityContextMemory(3, 1, 4)
    memory.update(torch.randn(3, 4), torch.randn(1, 4))
    graph = KnowledgeGraph(
        [0],
        [0],
        [1],
        3,
        1,
        entity_names=["a", "b", "c"],
        relation_names=["r"],
        entity_descriptions=["a: x", "b: y", "c: z"],
        relation_descriptions=["r: w"],
    )
    memory.save_pretrained(tmp_path / "model")
    graph.save_pretrained(tmp_path / "model" / "graph")
    cache = as_hub_cache(tmp_path / "model", "someone/jaket-tiny", tmp_path / "cache")

    loaded = EntityContextMemory.from_pretrained("someone/jaket-tiny", cache_dir=cache)
    torch.testing.assert_close(loaded.entity_embeddings, memory.entity_embeddings)
    loaded_graph = KnowledgeGraph.from_pretrained("someone/jaket-tiny", subfolder="graph", cache_dir=cache)
    assert loaded_graph.entity_names == ["a", "b", "c"] and loaded_graph.num_triples == 1
    with pytest.raises(FileNotFoundError, match=r"no knowledge graph file .* at someone/jaket-tiny/graph.safetensors"):
        KnowledgeGraph.from_pretrained("someone/jaket-tiny", cache_dir=cache)  # not in the subfolder
    with pytest.raises(FileNotFoundError, match="no entity memory .* at someone/elsewhere/entity_memory.safetensors"):
        EntityContextMemory.from_pretrained("someone/elsewhere", cache_dir=cache)


class FakeHfApi:
    """huggingface_hub.HfApi's create_repo and upload_folder, on a local folder of repos."""

    remote: Path = None
    created: list = []

    def __init__(self, token=None):
        self.token = token

    def create_repo(self, repo_id, exist_ok=False):
        from types import SimpleNamespace

        FakeHfApi.created.append(repo_id)
        return SimpleNamespace(repo_id=repo_id)

    def upload_folder(self, repo_id, folder_path, commit_message, ignore_patterns=()):
        import fnmatch

        assert repo_id in FakeHfApi.created, "uploaded to a repo that was never created"
        target = FakeHfApi.remote / repo_id
        for path in Path(folder_path).rglob("*"):
            relative = path.relative_to(folder_path).as_posix()
            if path.is_file() and not any(fnmatch.fnmatch(relative, pattern) for pattern in ignore_patterns):
                (target / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, target / relative)


@pytest.mark.scripts
@pytest.mark.data
def test_pretraining_pushes_a_model_that_loads_from_the_hub_by_its_id(
    tmp_path, monkeypatch, tiny_bert_checkpoint, datasets_cache
):
    from huggingface_hub import ModelCard
    from pretrain import main as pretrain
    from transformers import AutoModel

    from conftest import pretraining_arguments

    FakeHfApi.remote, FakeHfApi.created = tmp_path / "hub", []
    monkeypatch.setattr("jaket_training.push_to_hub.HfApi", FakeHfApi)
    pretrain(
        pretraining_arguments(
            tiny_bert_checkpoint,
            datasets_cache,
            tmp_path / "jaket-base",
            4,
            "--checkpointing_steps",
            "2",
            "--heldout_text_fraction",
            "0.25",
            "--push_to_hub",
            "--hub_model_id",
            "someone/jaket-tiny",
        )
    )
    pushed = FakeHfApi.remote / "someone" / "jaket-tiny"
    names = {p.relative_to(pushed).as_posix() for p in pushed.rglob("*") if p.is_file()}
    assert {
        "config.json",
        "model.safetensors",
        "entity_memory.safetensors",
        "graph/graph.safetensors",
        "README.md",
        "modeling_jaket.py",
        "tokenizer.json",
        "eval_results.json",
    } <= names
    assert not any(name.startswith(("checkpoint-", "latest")) for name in names)

    card = ModelCard.load(pushed / "README.md")
    # the Hub groups a card's results by task type under one task name: their metric names must tell them apart
    measured = {(r.task_type, r.metric_name): r.metric_value for r in card.data.eval_results}
    assert len(measured) == len(card.data.eval_results)
    evaluation = json.loads((pushed / "eval_results.json").read_text())
    linking = lambda metric: measured[("entity-linking", metric)]  # noqa: E731
    assert linking("hits@1 among the training candidates") == pytest.approx(
        evaluation["heldout_masked_entity_hits_at_1"]
    )
    floor = evaluation["heldout_masked_entity_string_match_hits_at_1"]  # each figure beside its floor
    assert linking("hits@1 of string matching among the training candidates") == pytest.approx(floor)
    assert "--hub_model_id someone/jaket-tiny" in card.text and "@inproceedings{yu2022jaket" in card.text
    assert card.data.model_name == "someone/jaket-tiny" and "## Limits" in card.text

    cache = as_hub_cache(pushed, "someone/jaket-tiny", tmp_path / "cache")
    model = AutoModel.from_pretrained("someone/jaket-tiny", trust_remote_code=True, cache_dir=cache)
    assert type(model).__name__ == "JaketModel"
    assert EntityContextMemory.from_pretrained("someone/jaket-tiny", cache_dir=cache).num_entities > 0
    monkeypatch.chdir(tmp_path)  # the main job's folder loads by its name from the repository root, as the card says
    assert type(AutoModel.from_pretrained("jaket-base", trust_remote_code=True)).__name__ == "JaketModel"


@pytest.mark.scripts
@pytest.mark.data
def test_fine_tuning_saves_its_model_and_pushes_it(tmp_path, monkeypatch, pretrained):
    from finetune_metaqa import main as metaqa
    from huggingface_hub import ModelCard
    from test_metaqa import CHAIN, write_metaqa

    from modeling_jaket import JaketModel

    FakeHfApi.remote, FakeHfApi.created = tmp_path / "hub", []
    monkeypatch.setattr("jaket_training.push_to_hub.HfApi", FakeHfApi)
    questions = "who wrote films sharing a director with [M1]\tP2\nwho directed [M2]\tP1\n"
    data = write_metaqa(tmp_path / "metaqa", kb=CHAIN, question=questions, hops_folders=("3-hop",))
    [record] = metaqa(
        [
            "--method",
            "jaket",
            "--model_name_or_path",
            str(pretrained[0]),
            "--data_dir",
            str(data),
            "--dataset_cache_dir",
            str(tmp_path / "cache"),
            "--output_dir",
            str(tmp_path / "out"),
            "--step_budget",
            "2",
            "--learning_rate_grid",
            "1",
            "--hops",
            "3",
            "--push_to_hub",
            "--hub_model_id",
            "someone/jaket-metaqa",
        ]
    )
    pushed = FakeHfApi.remote / "someone" / "jaket-metaqa"
    assert FakeHfApi.created == ["someone/jaket-metaqa"]
    assert {
        "config.json",
        "model.safetensors",
        "question_projection.safetensors",
        "entity_memory.safetensors",
        "README.md",
    } <= {p.name for p in pushed.iterdir()}
    card = ModelCard.load(pushed / "README.md")
    assert {r.metric_value for r in card.data.eval_results} == {record["hits@1"], record["hits@1_reachable"]}
    assert card.data.base_model is None  # a local pre-training folder has no Hub id to cite
    assert type(JaketModel.from_pretrained(tmp_path / "out" / "jaket-3hop-full-seed42")).__name__ == "JaketModel"
