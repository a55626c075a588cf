import json

import pytest
from results_table import main


def write(folder, name, record):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(record))


def test_tables_average_seeds_in_the_papers_order(tmp_path):
    for seed, accuracy in ((1, 0.5), (2, 0.7)):
        write(
            tmp_path / "ec",
            f"results-jaket-seed{seed}.json",
            {
                "task": "entity_classification",
                "method": "jaket",
                "seed": seed,
                "accuracy": {"100%": accuracy, "5%": 0.25},
            },
        )
    write(
        tmp_path / "ec",
        "results-lm-seed1.json",
        {"task": "entity_classification", "method": "lm", "seed": 1, "accuracy": {"100%": 0.4}},
    )
    write(
        tmp_path / "qa",
        "results-lm-1hop-full-seed1.json",
        {
            "task": "metaqa",
            "method": "lm",
            "seed": 1,
            "setting": "1-hop KG-Full",
            "hits@1": 0.3,
            "hits@1_reachable": 0.31,
        },
    )
    for kg, accuracy in (("meta_train", 0.5), ("none", 0.25)):
        write(
            tmp_path / "fewrel",
            f"results-jaket-5-1-{kg}-seed1.json",
            {
                "task": "fewrel",
                "method": "jaket",
                "kg": kg,
                "seed": 1,
                "setting": "5-way 1-shot",
                "accuracy": accuracy,
            },
        )
    text = main([str(tmp_path)])
    lines = text.splitlines()
    assert "| method | 100% | 5% |" in lines
    assert lines.index("| LM | 40.0 | – |") < lines.index("| JAKET | 60.0 ± 14.1 (n=2) | 25.0 ± 0.0 (n=2) |")
    assert "| LM | 30.0 / 31.0 |" in lines
    assert lines.index("| JAKET | 50.0 |") + 1 == lines.index("| JAKET (no KG) | 25.0 |")  # says which run had no KG


def test_no_results_is_an_error(tmp_path):
    with pytest.raises(SystemExit, match="no results"):
        main([str(tmp_path)])
