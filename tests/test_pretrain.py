"""examples/pretrain.py end to end on the real WordNet + SemCor data, with a tiny backbone: the refresh hook in a
real loop, two processes under Accelerate, and a killed run resumed from its last checkpoint."""

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import (
    COUNTED_OVER,
    EXAMPLES,
    PRETRAINED_FLAGS,
    assert_share_of,
    pretraining_arguments,
    run_script,
    script_environment,
)
from jaket_training.curve import TRAIN_HISTORY_NAME
from modeling_jaket import EntityContextMemory, JaketForPreTraining, KnowledgeGraph, RefreshSchedule

SCRIPT = EXAMPLES / "pretrain.py"


def train_history(output) -> dict[int, dict]:
    """The logged training figures of a run, by step (train_history.json beside the model)."""
    return {entry["step"]: entry for entry in json.loads((Path(output) / "train_history.json").read_text())}


def fingerprints(output) -> dict[int, dict]:
    """Each process's final memory and weights fingerprints (fingerprints.json beside the model), by rank."""
    return {entry["rank"]: entry for entry in json.loads((Path(output) / "fingerprints.json").read_text())}


@pytest.mark.scripts
@pytest.mark.data
def test_pretraining_refreshes_on_schedule_and_saves_a_loadable_model(tmp_path, pretrained):
    out, log = pretrained
    assert "holds no processor" not in log  # the model is saved with its processor, not warned about and then given it
    logged = train_history(out)
    assert sorted(logged) == [2, 4, 6, 8, 10, 12]  # --logging_steps 2
    for name in ("masked_lm_loss", "masked_entity_loss", "entity_category_loss", "relation_type_loss"):
        assert all(math.isfinite(entry[name]) and entry[name] > 0 for entry in logged.values()), name
    assert [logged[step]["memory_refreshes"] for step in (2, 4, 6, 12)] == [1, 2, 3, 4]

    # the held-out evaluation ran after step 6 and at the end, each kept in the history beside the model
    history = json.loads((out / "eval_history.json").read_text())
    # refreshed at steps 2, 4, 6 and 10: T(i) = 2, 2, 2, 4, ... with init_interval 2
    assert [(entry["step"], entry["memory_refreshes"]) for entry in history] == [(6, 3), (12, 4)]
    results = json.loads((out / "eval_results.json").read_text())
    assert results["step"] == 12 and results["heldout_masked_entities"] > 0 and results["wsd_mentions"] > 0
    assert results["outside_entities"] == results["outside_held_edges"] == 1000
    for key, count in COUNTED_OVER.items():
        if key in results:
            assert_share_of(results[key], results[count])

    memory = EntityContextMemory.from_pretrained(out)
    graph = KnowledgeGraph.from_pretrained(out / "graph")
    assert memory.num_entities == graph.num_entities == 300 and bool(memory.initialized)
    # the memory's settings have one source, the config: --memory_refresh_init_interval 2 went into it
    config = JaketForPreTraining.config_class.from_pretrained(out)
    assert config.memory_refresh_init_interval == 2 and memory.momentum == config.memory_momentum
    assert [RefreshSchedule.from_config(config).interval(i) for i in range(4)] == [2, 2, 2, 4]
    assert torch.isfinite(memory.entity_embeddings).all()
    loader = (
        "import sys, torch; from transformers import AutoModelForPreTraining; "
        "m = AutoModelForPreTraining.from_pretrained(sys.argv[1], trust_remote_code=True); "
        "print(type(m).__name__, type(m).__module__.split('.')[0])"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", loader, str(out)],
        env=script_environment(),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert loaded.stdout.split() == ["JaketForPreTraining", "transformers_modules"], loaded.stderr[-2000:]


@pytest.mark.scripts
@pytest.mark.data
def test_held_out_figures_are_kept_at_every_evaluation_with_a_curve(pretrained):
    out, _ = pretrained
    history = json.loads((out / "eval_history.json").read_text())
    # refreshed at steps 2, 4, 6 and 10: T(i) = 2, 2, 2, 4, ... with init_interval 2
    assert [(entry["step"], entry["memory_refreshes"]) for entry in history] == [(6, 3), (12, 4)]
    assert history[-1] == json.loads((out / "eval_results.json").read_text())
    assert (out / "eval_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.scripts
@pytest.mark.data
def test_a_saved_model_evaluates_to_the_figures_of_its_run(tmp_path, pretrained, tiny_bert_checkpoint, datasets_cache):
    from evaluate_pretraining import main as evaluate_pretraining

    out, _ = pretrained
    at_the_end = json.loads((out / "eval_results.json").read_text())
    flags = pretraining_arguments(
        tiny_bert_checkpoint, datasets_cache, tmp_path, 12, "--heldout_text_fraction", "0.25"
    )
    again = evaluate_pretraining([str(out), "--output_file", str(tmp_path / "again.json"), *flags])
    assert again == {k: v for k, v in at_the_end.items() if k not in ("step", "memory_refreshes")}
    with pytest.raises(ValueError, match="differs from the 300 saved"):
        evaluate_pretraining([str(out), *flags, "--max_entities", "200"])


@pytest.mark.scripts
@pytest.mark.data
def test_loss_subsets_are_the_controls_of_the_joint_objective(tmp_path, tiny_bert_checkpoint, datasets_cache):
    """--losses entity_category trains the knowledge module and its head over the memory of the unchanged language
    model (the control for JAKET's category head); --losses masked_lm continues the language model on the same text
    with no knowledge module (the control for what pre-training's text alone gives)."""
    from pretrain import main as pretrain
    from transformers import BertForMaskedLM

    def run(name, *losses):
        pretrain(
            pretraining_arguments(
                tiny_bert_checkpoint,
                datasets_cache,
                tmp_path / name,
                4,
                "--losses",
                *losses,
                "--heldout_text_fraction",
                "0",
            )
        )
        return load_file(tmp_path / name / "model.safetensors")

    backbone = BertForMaskedLM.from_pretrained(tiny_bert_checkpoint).state_dict()
    category = run("category", "entity_category")
    lm1_query = "bert.encoder.layer.0.attention.self.query.weight"
    torch.testing.assert_close(
        category["jaket.lm1.0.attention.self.query.weight"], backbone[lm1_query], rtol=0, atol=0
    )
    masked_lm = run("masked_lm", "masked_lm")
    assert not torch.equal(masked_lm["jaket.lm1.0.attention.self.query.weight"], backbone[lm1_query])
    # the category run's knowledge module and head moved from where the text-only run left them (at initialisation)
    for key in ("jaket.knowledge_module.layers.0.projection.weight", "entity_category_head.weight"):
        assert not torch.equal(category[key], masked_lm[key]), key
    torch.testing.assert_close(
        masked_lm["relation_type_head.decoder.weight"], category["relation_type_head.decoder.weight"]
    )


# two CPU processes under Accelerate, as docs/training.md launches them
LAUNCH_TWO = (
    sys.executable,
    "-m",
    "accelerate.commands.launch",
    "--num_processes",
    "2",
    "--num_machines",
    "1",
    "--mixed_precision",
    "no",
    "--dynamo_backend",
    "no",
)
# 299 entities: the second rank's shard of every refresh is one description short, and padded
TWO_PROCESS_ARGUMENTS = ("--heldout_text_fraction", "0.25", "--max_entities", "299", "--checkpointing_steps", "2")
# docs/training.md's FSDP2 command: the units are the model's `_no_split_modules`; tests/fsdp_on_cpu.py lets FSDP
# run on CPUs
FSDP2 = (
    "--use_fsdp",
    "--fsdp_version",
    "2",
    "--fsdp_auto_wrap_policy",
    "TRANSFORMER_BASED_WRAP",
    "--fsdp_state_dict_type",
    "FULL_STATE_DICT",
    str(Path(__file__).parent / "fsdp_on_cpu.py"),
)


def run_two_processes(output, launcher, tiny_bert_checkpoint, datasets_cache, *more):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ACCELERATE_USE_CPU", "true")
        return run_script(
            "pretrain.py",
            pretraining_arguments(tiny_bert_checkpoint, datasets_cache, output, 4, *TWO_PROCESS_ARGUMENTS, *more),
            launcher=launcher,
        )


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory, tiny_bert_checkpoint, datasets_cache):
    """4 steps over two processes under DDP: (output folder, log)."""
    output = tmp_path_factory.mktemp("ddp")
    return output, run_two_processes(output, (*LAUNCH_TWO, "--multi_gpu"), tiny_bert_checkpoint, datasets_cache)


@pytest.mark.scripts
@pytest.mark.data
def test_two_processes_hold_identical_memory_and_weights(ddp_run):
    output, _ = ddp_run
    prints = fingerprints(output)
    assert sorted(prints) == [0, 1]
    assert prints[0]["memory"] == prints[1]["memory"] and prints[0]["weights"] == prints[1]["weights"] is not None
    assert EntityContextMemory.from_pretrained(output).num_entities == 299
    # the learning rates after each logged step are those of one process: warm-up over 2 steps, decay to step 4
    rates = train_history(output)
    assert sorted(rates) == [2, 4] and rates[4]["memory_refreshes"] == 2
    import pretrain

    defaults = pretrain.parse_args([])
    for step, values in rates.items():
        assert values["lm_lr"] == pytest.approx(defaults.lm_learning_rate * (4 - step) / 2, abs=1e-9)
        assert values["km_lr"] == pytest.approx(defaults.km_learning_rate * (4 - step) / 4, abs=1e-9)
        assert values["head_lr"] == pytest.approx(defaults.head_learning_rate * (4 - step) / 4, abs=1e-9)


@pytest.mark.scripts
@pytest.mark.data
def test_fsdp2_sharded_pretraining_refreshes_evaluates_and_saves_what_ddp_does(
    tmp_path, ddp_run, tiny_bert_checkpoint, datasets_cache
):
    """The same run under Accelerate's FSDP2 (each rank holds half of every weight) and under DDP: the memory
    refreshed through the sharded model, the held-out evaluation and the saved model agree; and the sharded run,
    resumed from its step-2 checkpoint, ends with the very weights it ended with uninterrupted."""
    ddp_output, _ = ddp_run
    run = lambda name, *more: run_two_processes(  # noqa: E731
        tmp_path / name, (*LAUNCH_TWO, *FSDP2), tiny_bert_checkpoint, datasets_cache, *more
    )
    fsdp_log = run("fsdp")
    (tmp_path / "resumed").mkdir()
    shutil.copytree(tmp_path / "fsdp" / "checkpoint-2", tmp_path / "resumed" / "checkpoint-2")
    (tmp_path / "resumed" / "latest").write_text("checkpoint-2")
    resumed_log = run("resumed", "--resume_from_checkpoint", "latest")
    outputs = {"ddp": ddp_output, "fsdp": tmp_path / "fsdp"}
    # Accelerate's FSDP2 state dict holds the full weights on the main process only: the run was sharded
    prints = {name: fingerprints(folder) for name, folder in outputs.items()}
    assert sorted(prints["fsdp"]) == sorted(prints["ddp"]) == [0, 1], fsdp_log[-3000:]
    assert prints["fsdp"][1]["weights"] is None and prints["ddp"][1]["weights"] is not None
    assert prints["fsdp"][0]["memory"] == prints["fsdp"][1]["memory"]  # both ranks took part in every refresh
    for folder in outputs.values():
        assert train_history(folder)[4]["memory_refreshes"] == 2
    # the same files, the same code beside the weights (not torch's FSDP modules) and the same Auto classes
    assert sorted(os.listdir(outputs["fsdp"])) == sorted(os.listdir(outputs["ddp"]))
    configs = [json.loads((folder / "config.json").read_text()) for folder in outputs.values()]
    assert (
        configs[1]["auto_map"]
        == configs[0]["auto_map"]
        == {**configs[0]["auto_map"], "AutoModelForPreTraining": "modeling_jaket.JaketForPreTraining"}
    )
    ddp, fsdp = (load_file(folder / "model.safetensors") for folder in outputs.values())
    assert sorted(ddp) == sorted(fsdp)
    for key in ddp:
        torch.testing.assert_close(fsdp[key], ddp[key], atol=1e-5, rtol=1e-4, msg=key)
    memories = [EntityContextMemory.from_pretrained(folder) for folder in outputs.values()]
    torch.testing.assert_close(memories[1].entity_embeddings, memories[0].entity_embeddings, atol=1e-5, rtol=1e-4)
    results = [json.loads((folder / "eval_results.json").read_text()) for folder in outputs.values()]
    assert results[1].keys() == results[0].keys() and results[0]["heldout_masked_tokens"] > 0
    for key, value in results[0].items():
        assert results[1][key] == pytest.approx(value, abs=0.02), key
    assert "resumed from" in resumed_log and "checkpoint-2 at step 2" in resumed_log
    resumed = load_file(tmp_path / "resumed" / "model.safetensors")
    for key in fsdp:
        torch.testing.assert_close(resumed[key], fsdp[key], rtol=0, atol=0, msg=key)


def test_only_fsdp2_counts_as_sharded_and_fsdp1_and_deepspeed_are_refused():
    """FSDP1 and DeepSpeed cannot start on CPUs at all (Accelerate's plugins want a GPU), so their refusal is
    checked here."""
    from types import SimpleNamespace

    from accelerate.utils import DistributedType

    from jaket_training import sharded_refresh

    assert not sharded_refresh.is_sharded(SimpleNamespace(distributed_type=DistributedType.MULTI_CPU, is_fsdp2=False))
    assert sharded_refresh.is_sharded(SimpleNamespace(distributed_type=DistributedType.FSDP, is_fsdp2=True))
    with pytest.raises(ValueError, match=r"FSDP2 only \(accelerate launch --use_fsdp --fsdp_version 2"):
        sharded_refresh.is_sharded(SimpleNamespace(distributed_type=DistributedType.FSDP, is_fsdp2=False))
    with pytest.raises(ValueError, match=r"does not run under DeepSpeed .* use DDP \(accelerate launch --multi_gpu\)"):
        sharded_refresh.is_sharded(SimpleNamespace(distributed_type=DistributedType.DEEPSPEED, is_fsdp2=False))


@pytest.fixture
def busy_cpu():
    """A process that keeps one core busy for the test's length: what a claim of determinism must survive."""
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    yield
    burner.kill()
    burner.wait()


@pytest.mark.scripts
@pytest.mark.data
def test_a_killed_run_resumes_as_if_never_stopped(tmp_path, tiny_bert_checkpoint, datasets_cache, busy_cpu):
    steps = 24  # past the end of the first epoch (16 batches at most)
    uninterrupted = pretraining_arguments(tiny_bert_checkpoint, datasets_cache, tmp_path / "a", steps)
    run_script("pretrain.py", uninterrupted + ["--dataloader_num_workers", "0"])  # inputs built in the main process

    # --deterministic (torch.use_deterministic_algorithms) changes nothing on a CPU: the killed and resumed runs use
    # it; their inputs are built by two loader workers
    output = tmp_path / "b"
    args = pretraining_arguments(
        tiny_bert_checkpoint,
        datasets_cache,
        output,
        steps,
        "--checkpointing_steps",
        "4",
        "--deterministic",
        "--dataloader_num_workers",
        "2",
    )
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), *args],
        env=script_environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    while not (output / "latest").exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.02)
    assert process.poll() is None, "the run finished before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = (output / "latest").read_text()
    assert killed_at.startswith("checkpoint-") and int(killed_at.split("-")[1]) < steps

    # a checkpoint half written when the kill came must not be taken for the latest one
    (output / f"checkpoint-{steps - 1}.tmp").mkdir(exist_ok=True)
    resumed = run_script("pretrain.py", args + ["--resume_from_checkpoint", "latest"])
    assert f"resumed from {output / killed_at} at step {killed_at.split('-')[1]}" in resumed
    assert fingerprints(output) == fingerprints(tmp_path / "a")
    final_a, final_b = load_file(tmp_path / "a" / "model.safetensors"), load_file(output / "model.safetensors")
    for key in final_a:
        torch.testing.assert_close(final_a[key], final_b[key], rtol=0, atol=0)


def test_parameters_the_backbone_lacks_learn_at_a_rate_of_their_own(minilm_path):
    import pretrain

    from jaket_training.optimization import build_optimizer

    # all-MiniLM-L6-v2 has no MLM head: its transform starts from random, like the other pre-training heads
    model, info = JaketForPreTraining.from_backbone(
        minilm_path, output_loading_info=True, num_entity_categories=4, num_relation_types=3
    )
    args = pretrain.parse_args(
        ["--lm_learning_rate", "1e-5", "--km_learning_rate", "1e-4", "--head_learning_rate", "1e-3"]
    )
    optimizer, _ = build_optimizer(model, args, set(info["missing_keys"]))
    rate = {id(p): group["initial_lr"] for group in optimizer.param_groups for p in group["params"]}  # peak rates
    parameters = dict(model.named_parameters())
    assert len(rate) == len(parameters)
    for name in (
        "masked_entity_head.w1.weight",
        "entity_category_head.weight",
        "relation_type_head.dense.weight",
        "lm_head.dense.weight",
        "lm_head.bias",
        "jaket.merge.layer_norm.weight",
    ):
        assert rate[id(parameters[name])] == 1e-3, name
    assert rate[id(parameters["jaket.knowledge_module.layers.0.projection.weight"])] == 1e-4
    for name in (
        "jaket.lm1.0.attention.self.query.weight",
        "jaket.lm2.0.output.dense.weight",
        "jaket.embeddings.word_embeddings.weight",
    ):
        assert rate[id(parameters[name])] == 1e-5, name


class _RunsCode:
    """A pickle whose loading runs a command: what a crafted checkpoint file would hold."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.scripts
@pytest.mark.data
def test_resuming_unpickles_no_code_from_the_checkpoint(tmp_path, tiny_bert_checkpoint, datasets_cache, pretrained):
    output = tmp_path / "out"
    checkpoint = output / "checkpoint-6"
    shutil.copytree(pretrained[0] / "checkpoint-6", checkpoint)  # the shared run's, resumed with its own flags
    assert sorted(p.name for p in checkpoint.glob("*.pkl")) == ["random_states_0.pkl"]  # weights_only-loadable
    assert (checkpoint / "training_state.json").is_file() and (checkpoint / "entity_memory.safetensors").is_file()

    marker = tmp_path / "code-ran"
    torch.save(_RunsCode(marker), checkpoint / "custom_checkpoint_0.pkl")
    resume = pretraining_arguments(tiny_bert_checkpoint, datasets_cache, output, 12, *PRETRAINED_FLAGS)
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *resume, "--resume_from_checkpoint", str(checkpoint)],
        env=script_environment(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode != 0
    assert f"{checkpoint}: cannot resume from custom_checkpoint_0.pkl (UnpicklingError" in result.stderr
    assert not marker.exists()


@pytest.mark.scripts
def test_a_missing_checkpoint_is_named_before_anything_loads(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--output_dir",
            str(tmp_path),
            "--resume_from_checkpoint",
            str(tmp_path / "nowhere"),
        ],
        env=script_environment(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0 and f"{tmp_path / 'nowhere'}: no training_state.json there" in result.stderr
    assert "entity context memory" not in result.stderr and "wordnet_semcor:" not in result.stderr


def test_resuming_with_other_numerics_is_said(tmp_path, caplog):
    from accelerate import PartialState

    from jaket_training.checkpoints import load_training_state, save_training_state

    PartialState(cpu=True)  # Accelerate's logger needs a state
    memory = EntityContextMemory(5, 2, 4)
    settings = {"num_entities": 5, "hidden_size": 4, "backbone": "b"}
    save_training_state(tmp_path, memory, RefreshSchedule(), 17, num_processes=1, settings=settings)
    assert load_training_state(tmp_path, memory, RefreshSchedule(), 1, settings) == 17
    assert "other numerics" not in caplog.text
    load_training_state(tmp_path, memory, RefreshSchedule(), 2, settings)
    assert "other numerics (num_processes 1 -> 2)" in caplog.text


def test_resuming_under_other_settings_names_each_difference(tmp_path):
    from jaket_training.checkpoints import load_training_state, save_training_state

    settings = {"num_entities": 5, "hidden_size": 4, "backbone": "b", "losses": ["masked_lm"]}
    save_training_state(tmp_path, EntityContextMemory(5, 2, 4), RefreshSchedule(), 3, 1, settings)
    other = {**settings, "num_entities": 6, "backbone": "c"}
    with pytest.raises(ValueError, match=r"num_entities: 5 there, 6 now; backbone: 'b' there, 'c' now"):
        load_training_state(tmp_path, EntityContextMemory(6, 2, 4), RefreshSchedule(), 1, other)


@pytest.mark.scripts
@pytest.mark.data
@pytest.mark.parametrize("processes", ["one", "fsdp2"])
def test_bf16_mixed_precision_pretrains_and_its_card_says_so(
    tmp_path, tiny_bert_checkpoint, datasets_cache, processes, monkeypatch
):
    """accelerate launch --mixed_precision bf16 (what the main job uses on CPUs with native bfloat16), in one process
    (autocast) and sharded over two (FSDP2's bf16 parameters): the knowledge module's sparse sums crashed under
    autocast before; the steps, the refreshes and the evaluation run, the weights are saved in float32, and the
    card's command carries the launch setting."""
    output = tmp_path / "out"
    launcher = (
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--mixed_precision",
        "bf16",
        "--dynamo_backend",
        "no",
    )
    launcher += (
        ("--num_processes", "1") if processes == "one" else ("--num_processes", "2", "--num_machines", "1", *FSDP2)
    )
    monkeypatch.setenv("ACCELERATE_USE_CPU", "true")
    run_script(
        "pretrain.py",
        pretraining_arguments(tiny_bert_checkpoint, datasets_cache, output, 4, "--heldout_text_fraction", "0.25"),
        launcher,
    )
    weights = load_file(output / "model.safetensors")
    assert {tensor.dtype for tensor in weights.values()} == {torch.float32}
    assert all(torch.isfinite(tensor).all() for tensor in weights.values())
    assert math.isfinite(train_history(output)[4]["loss"])
    assert json.loads((output / "eval_results.json").read_text())["step"] == 4
    assert "accelerate launch --mixed_precision bf16 examples/pretrain.py" in (output / "README.md").read_text()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--max_train_steps", "0"], "--max_train_steps must be >= 1, got 0"),
        (["--lm_learning_rate=-1e-4"], r"--lm_learning_rate must be > 0, got -0.0001"),
        (["--mlm_probability", "1.5"], r"--mlm_probability must be in \[0, 1\), got 1.5"),
        (["--num_hard_negatives", "-1"], "--num_hard_negatives must be >= 0, got -1"),
        (["--max_grad_norm", "0"], "--max_grad_norm must be > 0, got 0.0"),
        (["--dataloader_num_workers=-1"], "--dataloader_num_workers must be >= 0, got -1"),
        (["--checkpoints_total_limit", "0"], "--checkpoints_total_limit must be >= 1, got 0"),
        (["--fanouts", "10", "0"], r"--fanouts must all be >= 1, got \[10, 0\]"),
        (
            ["--refresh_max_interval", "5"],  # the short name of --memory_refresh_max_interval
            r"--memory_refresh_max_interval \(5\) must be >= --memory_refresh_init_interval \(10\)",
        ),
    ],
)
def test_out_of_range_flags_stop_before_any_data_is_read(flags, message, capsys):
    from pretrain import parse_args

    with pytest.raises(SystemExit) as stopped:
        parse_args(flags)
    assert stopped.value.code == 2
    assert re.search(message, capsys.readouterr().err)


def test_report_to_takes_several_trackers():
    from jaket_training.training_log import trackers

    assert trackers("none") is None and trackers("all") == "all"
    assert trackers("tensorboard, wandb") == ["tensorboard", "wandb"]


def test_checkpoints_beyond_the_limit_are_deleted_oldest_first_never_latest(tmp_path):
    from jaket_training.checkpoints import prune_checkpoints

    for step in (5, 10, 20, 40):
        (tmp_path / f"checkpoint-{step}").mkdir()
    (tmp_path / "checkpoint-80.tmp").mkdir()  # a checkpoint still being written is not counted or touched
    (tmp_path / "latest").write_text("checkpoint-10")  # e.g. a resume pointed back at an older one
    deleted = prune_checkpoints(tmp_path, limit=2)
    assert sorted(path.name for path in deleted) == ["checkpoint-5"]
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "checkpoint-10",
        "checkpoint-20",
        "checkpoint-40",
        "checkpoint-80.tmp",
        "latest",
    ]


@pytest.mark.scripts
@pytest.mark.data
def test_gradient_checkpointing_pretrains_to_the_same_weights(tmp_path, tiny_bert_checkpoint, datasets_cache):
    """`--gradient_checkpointing` recomputes activations in the backward pass (dropout's random state kept): the
    same losses and weights as without it, to float rounding."""
    runs = {}
    for name, extra in (("plain", ()), ("checkpointed", ("--gradient_checkpointing",))):
        output = tmp_path / name
        flags = pretraining_arguments(tiny_bert_checkpoint, datasets_cache, output, 4, *extra)
        run_script("pretrain.py", flags)
        runs[name] = (train_history(output)[4]["loss"], load_file(output / "model.safetensors"))
    (plain_loss, plain), (checkpointed_loss, checkpointed) = runs["plain"], runs["checkpointed"]
    assert checkpointed_loss == pytest.approx(plain_loss, rel=1e-5)
    for key in plain:
        torch.testing.assert_close(checkpointed[key], plain[key], rtol=1e-4, atol=1e-6)


def test_max_grad_norm_clips_the_total_norm_through_accelerate():
    from accelerate import Accelerator

    from jaket_training.optimization import clip_gradients

    accelerator = Accelerator(cpu=True)
    model = torch.nn.Linear(3, 2)
    for parameter in model.parameters():
        parameter.grad = torch.full_like(parameter, 4.0)  # total norm sqrt(8 * 16) = 11.31
    assert clip_gradients(accelerator, model, None) is None
    assert clip_gradients(accelerator, model, 2.0) == pytest.approx(128**0.5)
    total = torch.cat([parameter.grad.flatten() for parameter in model.parameters()]).norm()
    assert total == pytest.approx(2.0, rel=1e-4)


@pytest.mark.scripts
@pytest.mark.data
def test_a_launch_maps_the_prepared_data_and_no_process_tokenizes(tmp_path, tiny_bert_checkpoint, datasets_cache):
    """`--prepare_only` tokenizes once; a launch on two processes afterwards maps what it wrote: no process builds a
    dataset or tokenizes the text, and the run trains, here with gradient accumulation and clipping, to the same
    weights on both processes."""
    flags = ("--prepared_dir", str(tmp_path / "prepared"))
    arguments = pretraining_arguments(tiny_bert_checkpoint, datasets_cache, tmp_path / "out", 2, *flags)
    log = run_script("pretrain.py", [*arguments, "--prepare_only"])
    assert "tokenize_linked_text:" in log and "prepared the pre-training data in" in log
    (folder,) = (tmp_path / "prepared").iterdir()
    assert {path.name for path in folder.iterdir()} >= {"windows", "structure", "graph", "confusables", "descriptions"}
    assert not (tmp_path / "out" / "model.safetensors").exists()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ACCELERATE_USE_CPU", "true")
        accumulate_and_clip = ["--gradient_accumulation_steps", "2", "--max_grad_norm", "0.5", "--logging_steps", "1"]
        log = run_script("pretrain.py", [*arguments, *accumulate_and_clip], launcher=(*LAUNCH_TWO, "--multi_gpu"))
    assert "tokenize_linked_text:" not in log and "Generating train split" not in log
    prints = fingerprints(tmp_path / "out")
    assert f"prepared in {folder}" in log and sorted(prints) == [0, 1]
    assert prints[0]["weights"] == prints[1]["weights"] is not None and prints[0]["memory"] == prints[1]["memory"]
    steps = json.loads((tmp_path / "out" / TRAIN_HISTORY_NAME).read_text())
    assert [step["step"] for step in steps] == [1, 2] and all(step["grad_norm"] > 0 for step in steps)


@pytest.mark.scripts
def test_wikipedia_pretraining_runs_from_its_xml_dump_and_evaluates_from_the_prepared_folder(
    tmp_path, tiny_bert_checkpoint
):
    """The paper's data path end to end, small: a Wikidata dump and an enwiki XML dump in parts (the generator of
    benchmark 11), prepared once, pre-trained, evaluated on held-out articles with the prepared alias index."""
    import random

    from bench.synthetic_dumps import write_enwiki_xml, write_wikidata

    rng = random.Random(0)
    sources = tmp_path / "dumps"
    (sources / "wikipedia").mkdir(parents=True)
    pages = write_wikidata(sources / "wikidata.json", 400, 2.0, 0.5, 4.0, rng)
    for part, share in enumerate((pages[: len(pages) // 2], pages[len(pages) // 2 :])):
        write_enwiki_xml(sources / "wikipedia" / f"enwiki-pages-articles{part + 1}.xml", share, 200, rng, pages)
    flags = ["--dataset", "wikipedia_wikidata", "--data_dir", str(sources), "--max_entities", "0"]
    flags += ["--heldout_text_fraction", "0.2", "--preprocessing_num_workers", "2"]
    log = run_script(
        "pretrain.py",
        pretraining_arguments(tiny_bert_checkpoint, str(tmp_path / "cache"), tmp_path / "out", 2, *flags),
    )
    assert re.search(r"\d+ links, \d+ resolved to a page, [1-9]\d* through a redirect, 0 missing", log)
    results = json.loads((tmp_path / "out" / "eval_results.json").read_text())
    assert results["heldout_masked_entities"] > 0 and 0 < results["heldout_masked_entity_string_match_hits_at_1"] <= 1
    graph = KnowledgeGraph.from_pretrained(tmp_path / "out" / "graph")
    assert graph.num_entities > 100 and graph.entity_ids[0].startswith("Q")


@pytest.mark.parametrize(
    "change, message",
    [
        ({"completed_steps": -5}, r"completed_steps must be a whole number in \[0, 2\*\*63\), got -5"),
        ({"completed_steps": 2.9}, r"completed_steps must be a whole number in \[0, 2\*\*63\), got 2.9"),
        ({"completed_steps": "3"}, r"completed_steps must be a whole number in \[0, 2\*\*63\), got '3'"),
        ({"completed_steps": True}, r"completed_steps must be a whole number in \[0, 2\*\*63\), got True"),
        (
            {"refresh_schedule": {"num_refreshes": -1, "next_refresh_step": 10}},
            r"refresh_schedule.num_refreshes must be .* got -1",
        ),
        (
            {"refresh_schedule": {"num_refreshes": 1, "next_refresh_step": 0}},
            r"refresh_schedule.next_refresh_step must be .* got 0",
        ),
        ({"refresh_schedule": {"num_refreshes": 1}}, "refresh_schedule must be an object of num_refreshes and"),
        ({"settings": ["backbone"]}, r"settings must be an object, got \['backbone'\]"),
    ],
)
def test_a_training_state_is_checked_field_by_field(tmp_path, change, message):
    from jaket_training.checkpoints import TRAINING_STATE_NAME, read_training_state, save_training_state

    settings = {"num_entities": 5, "hidden_size": 4}
    save_training_state(tmp_path, EntityContextMemory(5, 2, 4), RefreshSchedule(), 3, 1, settings)
    state = json.loads((tmp_path / TRAINING_STATE_NAME).read_text())
    (tmp_path / TRAINING_STATE_NAME).write_text(json.dumps({**state, **change}))
    with pytest.raises(ValueError, match=f"{TRAINING_STATE_NAME}: {message}"):
        read_training_state(tmp_path, settings)


def test_a_memory_of_another_shape_names_the_file_and_both_shapes(tmp_path):
    from jaket_training.checkpoints import load_training_state, save_training_state

    settings = {"num_entities": 5}
    save_training_state(tmp_path, EntityContextMemory(5, 2, 8), RefreshSchedule(), 3, 1, settings)
    with pytest.raises(ValueError, match=r"entity_memory.safetensors: entity_embeddings of shape \(5, 8\) there, "):
        load_training_state(tmp_path, EntityContextMemory(5, 2, 4), RefreshSchedule(), 1, settings)


def test_a_failed_load_state_does_not_blame_accelerates_own_rng_file(tmp_path):
    """Accelerate's RNG file holds numpy state that plain `torch.load(weights_only=True)` refuses: it was named as
    the culprit of every failure. Files are now tried as Accelerate loads them."""
    from types import SimpleNamespace

    import numpy as np

    from jaket_training.checkpoints import load_accelerator_state

    torch.save(
        {"random_state": np.random.get_state(), "torch_manual_seed": torch.get_rng_state()},
        tmp_path / "random_states_0.pkl",
    )

    def load_state(folder):
        raise RuntimeError("Error(s) in loading state_dict for JaketForPreTraining:\n\tMissing key(s): lm_head.bias")

    with pytest.raises(
        ValueError, match="Accelerate could not restore .* Missing key|Error\\(s\\) in loading"
    ) as error:
        load_accelerator_state(SimpleNamespace(load_state=load_state), tmp_path)
    assert "random_states_0.pkl" not in str(error.value) and str(tmp_path) in str(error.value)
    (tmp_path / "scheduler.bin").write_bytes(b"\x80\x04cos\nsystem\n.")  # a pickle that would run code
    with pytest.raises(ValueError, match=r"cannot resume from scheduler.bin \(UnpicklingError"):
        load_accelerator_state(SimpleNamespace(load_state=load_state), tmp_path)
