import pytest
import torch

from bench.common import run_isolated
from conftest import tiny_config
from modeling_jaket import EntityContextMemory, JaketForPreTraining, JaketModel, RefreshSchedule
from modeling_jaket.memory import pad_batch


def test_intervals_follow_the_paper():
    schedule = RefreshSchedule()
    assert [schedule.interval(i) for i in range(12)] == [10, 10, 10, 20, 20, 20, 40, 40, 40, 80, 80, 80]
    assert schedule.interval(18) == 500 and schedule.interval(10**6) == 500
    assert schedule.interval(15) == 320


def test_refresh_steps_in_a_training_loop():
    schedule = RefreshSchedule()
    refreshed_at = []
    for step in range(1, 400):
        if schedule.should_refresh(step):
            refreshed_at.append(step)
            schedule.mark_refreshed(step)
    assert refreshed_at == [10, 20, 30, 50, 70, 90, 130, 170, 210, 290, 370]


def test_schedule_from_config_and_checkpoint():
    schedule = RefreshSchedule.from_config(tiny_config(memory_refresh_init_interval=2, memory_refresh_max_interval=8))
    for step in (2, 4, 6):
        assert schedule.should_refresh(step)
        schedule.mark_refreshed(step)
    restored = RefreshSchedule(2, 2, 3, 8)
    restored.load_state_dict(schedule.state_dict())
    assert restored.num_refreshes == 3 and not restored.should_refresh(9) and restored.should_refresh(10)


def test_schedule_rejects_nonsense():
    with pytest.raises(ValueError, match="init_interval"):
        RefreshSchedule(init_interval=0)
    with pytest.raises(ValueError, match="max_interval"):
        RefreshSchedule(init_interval=10, max_interval=5)


def descriptions(count=7, seed=0):
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(3, 12, (count,), generator=generator).tolist()
    input_ids = [[0] + torch.randint(5, 300, (n - 2,), generator=generator).tolist() + [2] for n in lengths]
    starts = [1 if n > 4 else -1 for n in lengths]
    ends = [min(3, n - 2) if n > 4 else -1 for n in lengths]
    return {"input_ids": input_ids, "mention_starts": starts, "mention_ends": ends}


def test_compute_is_batch_invariant_and_matches_encode_descriptions():
    torch.manual_seed(0)
    model = JaketForPreTraining(tiny_config()).train()
    texts = descriptions()
    batched = EntityContextMemory.compute(model, texts, batch_size=3)
    assert model.training  # mode restored
    model.eval()
    with torch.no_grad():
        for i, ids in enumerate(texts["input_ids"]):
            single = model.jaket.encode_descriptions(
                torch.tensor([ids]),
                None,
                torch.tensor([texts["mention_starts"][i]]),
                torch.tensor([texts["mention_ends"][i]]),
            )
            torch.testing.assert_close(batched[i], single[0], atol=1e-5, rtol=1e-5)
    shard = EntityContextMemory.compute(model, texts, batch_size=2, indices=[5, 1])
    torch.testing.assert_close(shard, batched[[5, 1]], atol=1e-5, rtol=1e-5)


def test_compute_shows_progress_when_asked_and_transformers_can_hide_it(capsys):
    from transformers.utils import logging

    model = JaketModel(tiny_config())
    EntityContextMemory.compute(model, descriptions(), batch_size=3)
    assert "LM1 over descriptions" not in capsys.readouterr().err
    EntityContextMemory.compute(model, descriptions(), batch_size=3, progress_bar=True)
    assert "LM1 over descriptions" in capsys.readouterr().err
    logging.disable_progress_bar()
    try:
        EntityContextMemory.compute(model, descriptions(), batch_size=3, progress_bar=True)
        assert "LM1 over descriptions" not in capsys.readouterr().err
    finally:
        logging.enable_progress_bar()


def test_momentum_rule():
    memory = EntityContextMemory(4, 2, 8, momentum=0.8)
    first, second = torch.randn(4, 8), torch.randn(4, 8)
    relations = torch.randn(2, 8)
    memory.update(first, relations)
    torch.testing.assert_close(memory.entity_embeddings, first)  # the first computation is taken as is
    memory.update(second)
    torch.testing.assert_close(memory.entity_embeddings, 0.8 * first + 0.2 * second)
    torch.testing.assert_close(memory.relation_embeddings, relations)  # not refreshed this time


def test_refresh_with_a_model_applies_momentum_to_both_tables():
    torch.manual_seed(0)
    model = JaketModel(tiny_config())
    entities, relations = descriptions(7), descriptions(3, seed=1)
    memory = EntityContextMemory(7, 3, 32)
    memory.refresh(model, entities, relations)
    before = memory.entity_embeddings.clone()
    torch.nn.init.normal_(model.lm1[0].output.dense.weight)  # LM1 changed, as by training
    new = EntityContextMemory.compute(model, entities)
    memory.refresh(model, entities, relations)
    torch.testing.assert_close(memory.entity_embeddings, 0.8 * before + 0.2 * new)


def test_a_refresh_shared_across_processes_equals_one_process_s():
    """Three processes' shares of each chunk of 7 descriptions (every third of the length-sorted chunk, a short share
    padded by repeating a row), joined by the all-gather, give the memory that one process computes."""
    torch.manual_seed(0)
    model = JaketModel(tiny_config()).eval()
    entities = descriptions(7)
    alone = EntityContextMemory(7, 3, 32)
    alone.refresh(model, entities)
    shares = [[], [], []]  # each process's own rows at each all-gather, as it computes them
    for rank in range(3):
        EntityContextMemory(7, 3, 32).refresh(
            model,
            entities,
            batch_size=1,
            shard=(rank, 3),
            all_gather=lambda local, rank=rank: shares[rank].append(local) or local.repeat(3, 1),
            chunk_size=3,
        )
    assert [[len(local) for local in share] for share in shares] == [[1, 1, 1]] * 3  # chunks of 3, 3 and 1
    calls = iter(range(3))

    def all_gather(local):  # the k-th all-gather joins every process's k-th share
        k = next(calls)
        torch.testing.assert_close(local, shares[0][k])
        return torch.cat([share[k] for share in shares])

    memory = EntityContextMemory(7, 3, 32)
    memory.refresh(model, entities, batch_size=1, shard=(0, 3), all_gather=all_gather, chunk_size=3)
    torch.testing.assert_close(memory.entity_embeddings, alone.entity_embeddings)


def test_half_precision_storage_and_save_load(tmp_path):
    memory = EntityContextMemory(5, 2, 8, dtype=torch.bfloat16)
    memory.update(torch.randn(5, 8), torch.randn(2, 8))
    assert memory.entity_embeddings.dtype == torch.bfloat16
    assert memory.lookup(torch.tensor([4, 0])).dtype == torch.float32
    memory.save_pretrained(tmp_path)
    loaded = EntityContextMemory.from_pretrained(tmp_path)
    assert loaded.entity_embeddings.dtype == torch.bfloat16 and bool(loaded.initialized)
    torch.testing.assert_close(loaded.entity_embeddings, memory.entity_embeddings, rtol=0, atol=0)
    state = memory.state_dict()
    other = EntityContextMemory(5, 2, 8, dtype=torch.bfloat16)
    other.load_state_dict(state)
    torch.testing.assert_close(other.relation_embeddings, memory.relation_embeddings, rtol=0, atol=0)


def test_memory_errors_name_the_problem(tmp_path):
    memory = EntityContextMemory(5, 2, 8)
    with pytest.raises(ValueError, match=r"new entity embeddings \(4, 8\)"):
        memory.update(torch.randn(4, 8))
    with pytest.raises(ValueError, match="holds 5 entities"):
        memory.lookup(torch.tensor([5]))
    with pytest.raises(ValueError, match="entity ids must be integer ids, got a torch.bool"):
        memory.lookup(torch.tensor([True]))
    with pytest.raises(ValueError, match="entity ids must be integer ids, got a torch.float32"):
        memory.lookup(torch.tensor([1.9]))
    with pytest.raises(FileNotFoundError, match="no entity memory"):
        EntityContextMemory.from_pretrained(tmp_path)
    model = JaketModel(tiny_config())
    with pytest.raises(ValueError, match="description 1 is empty"):
        EntityContextMemory.compute(
            model, {"input_ids": [[0, 5, 2], []], "mention_starts": [-1, -1], "mention_ends": [-1, -1]}
        )
    with pytest.raises(ValueError, match="2 input_ids but 1 mention_starts"):
        EntityContextMemory.compute(
            model, {"input_ids": [[0, 5, 2], [0, 2]], "mention_starts": [-1], "mention_ends": [-1]}
        )
    with pytest.raises(ValueError, match="momentum"):
        EntityContextMemory(5, 2, 8, momentum=1.0)
    memory = EntityContextMemory(5, 2, 8)
    new = torch.zeros(5, 8)
    new[3, 1] = float("nan")
    with pytest.raises(ValueError, match="the new embedding of memory row 3 holds NaN or infinity"):
        memory.update(new)  # accepted: a NaN row was then ranked first by the linker


def test_pad_batch():
    input_ids, mask = pad_batch([[5, 6, 7], [8]], pad_token_id=1)
    assert input_ids.tolist() == [[5, 6, 7], [8, 1, 1]] and mask.tolist() == [[1, 1, 1], [1, 0, 0]]


@pytest.mark.parametrize(
    "damage, message",
    [
        ("truncate", "not a readable safetensors file"),
        ("nan", r"entity_memory.safetensors: entity_embeddings row 2 holds NaN or infinity \(1 such values in all\)"),
        ("keys", r"holds \['entity_embeddings'\], a memory holds \['entity_embeddings', 'initialized'"),
        ("dtype", r"entity_memory.json: not a memory's settings .* KeyError"),
        ("momentum", r"entity_memory.json: not a memory's settings .* momentum must be a number in \[0, 1\), got 'x'"),
        ("repeated key", r"entity_memory.json: key 'momentum' appears more than once"),
    ],
)
def test_a_damaged_saved_memory_names_the_file(tmp_path, damage, message):
    from safetensors.torch import load_file, save_file

    from modeling_jaket.memory import MEMORY_CONFIG_NAME, MEMORY_WEIGHTS_NAME

    EntityContextMemory(5, 2, 4).save_pretrained(tmp_path)
    weights, settings = tmp_path / MEMORY_WEIGHTS_NAME, tmp_path / MEMORY_CONFIG_NAME
    if damage == "truncate":
        weights.write_bytes(weights.read_bytes()[:-9])
    elif damage == "nan":
        tables = load_file(weights)
        tables["entity_embeddings"][2, 1] = float("nan")
        save_file(tables, weights)
    elif damage == "keys":
        save_file({"entity_embeddings": load_file(weights)["entity_embeddings"]}, weights)
    elif damage == "momentum":
        settings.write_text('{"momentum": "x", "dtype": "float32"}')
    elif damage == "repeated key":
        settings.write_text('{"momentum": 0.8, "dtype": "float32", "momentum": 0.1}')  # kept the last
    else:
        settings.write_text('{"momentum": 0.8, "dtype": "__class__"}')  # never looked up on torch
    with pytest.raises(ValueError, match=message):
        EntityContextMemory.from_pretrained(tmp_path)


@pytest.mark.scripts
@pytest.mark.parametrize("world", [1, 2])
def test_a_refresh_adds_at_most_a_tenth_of_the_table_to_the_peak(world):
    """The table is folded in place a chunk at a time: the refresh's extra peak resident memory, in a process of its
    own (benchmark 12), stays under 10% of a 400 MB table (folding in a whole new table took 4 times the table)."""
    record = run_isolated("bench_refresh_peak", "--measure", "100000", "1024", "float32", str(world))
    assert record["extra_share"] <= 0.10


def test_descriptions_as_padded_arrays_give_the_memory_of_lists(tmp_path):
    """A prepared folder holds descriptions as a padded int32 array beside their lengths, memory-mapped: the
    refresh reads them to the very memory that the lists give."""
    import numpy as np

    from jaket_training.prepared import descriptions_as_arrays

    torch.manual_seed(0)
    model = JaketModel(tiny_config()).eval()
    lists = descriptions(9)
    arrays = descriptions_as_arrays(lists)
    for key, array in arrays.items():
        np.save(tmp_path / f"{key}.npy", array)
    mapped = {key: np.load(tmp_path / f"{key}.npy", mmap_mode="r") for key in arrays}
    assert mapped["input_ids"].dtype == np.int32 and mapped["input_ids"].shape == (
        9,
        max(map(len, lists["input_ids"])),
    )
    from_lists, from_arrays = EntityContextMemory(9, 1, 32), EntityContextMemory(9, 1, 32)
    from_lists.refresh(model, lists, batch_size=4)
    from_arrays.refresh(model, mapped, batch_size=4)
    assert torch.equal(from_lists.entity_embeddings, from_arrays.entity_embeddings)
