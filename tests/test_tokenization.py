import json

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import DATA_DIR
from modeling_jaket.tokenization_jaket import special_tokens_around, tokenize_into_windows
from tokenization import DataCollatorWithMentions, encode_descriptions, tokenize_with_mentions, words_to_text

TEXT = "The Mississippi River flows past Cape Girardeau."
MENTIONS = [(4, 21, "Q1497"), (33, 47, "Q5034838")]  # "Mississippi River", "Cape Girardeau"
VOCAB = {"Q1497": 0, "Q5034838": 1}


def mention_tokens(tokenizer, encoding, example=0):
    ids = encoding["input_ids"][example]
    return [
        tokenizer.decode(ids[s : e + 1]).strip()
        for s, e in zip(encoding["mention_starts"][example], encoding["mention_ends"][example])
    ]


@pytest.mark.parametrize("tokenizer_name", ["bert_tokenizer", "roberta_tokenizer"])
def test_spans_map_to_the_mention_tokens(tokenizer_name, request):
    tokenizer = request.getfixturevalue(tokenizer_name)
    encoding = tokenize_with_mentions(tokenizer, [TEXT], [MENTIONS[::-1]], entity_vocab=VOCAB)
    assert [m.lower() for m in mention_tokens(tokenizer, encoding)] == ["mississippi river", "cape girardeau"]
    assert encoding["mention_entity_ids"] == [[0, 1]]  # in text order
    assert encoding["num_truncated_mentions"] == [0]


@pytest.mark.parametrize("tokenizer_name", ["bert_tokenizer", "roberta_tokenizer"])
def test_truncation_drops_and_counts_mentions_that_do_not_fit(tokenizer_name, request, caplog):
    tokenizer = request.getfixturevalue(tokenizer_name)
    full = tokenize_with_mentions(tokenizer, [TEXT], [MENTIONS], entity_vocab=VOCAB)
    max_length = full["mention_ends"][0][0] + 2  # the first mention and the closing special token fit, no more
    encoding = tokenize_with_mentions(tokenizer, [TEXT], [MENTIONS], entity_vocab=VOCAB, max_length=max_length)
    assert encoding["num_truncated_mentions"] == [1]
    assert encoding["mention_entity_ids"] == [[0]] and len(encoding["input_ids"][0]) == max_length
    assert encoding["mention_starts"][0] == full["mention_starts"][0][:1]
    assert encoding["mention_ends"][0] == full["mention_ends"][0][:1]
    assert "dropped 1 mentions" in caplog.text
    whole = tokenize_with_mentions(
        tokenizer, [TEXT], [MENTIONS], entity_vocab=VOCAB, max_length=max_length, truncation=False
    )
    assert {key: whole[key] for key in full} == dict(full)  # nothing cut: max_length is not read


def test_the_encoding_says_which_mentions_it_kept_and_takes_mentions_without_entities(bert_tokenizer):
    full = tokenize_with_mentions(bert_tokenizer, [TEXT], [MENTIONS[::-1]], entity_vocab=VOCAB)
    assert full["mention_indices"] == [[1, 0]]  # text order: the given list's second mention comes first
    spans = [[(start, end) for start, end, _ in MENTIONS[::-1]]]
    plain = tokenize_with_mentions(bert_tokenizer, [TEXT], spans)
    assert "mention_entity_ids" not in plain
    assert all(plain[k] == full[k] for k in ("input_ids", "mention_starts", "mention_ends", "mention_indices"))
    cut = tokenize_with_mentions(bert_tokenizer, [TEXT], spans, max_length=full["mention_ends"][0][0] + 2)
    assert cut["mention_indices"] == [[1]] and cut["num_truncated_mentions"] == [1]
    with pytest.raises(ValueError, match="example 1, mention 0 has an entity but example 0, mention 0 has none"):
        tokenize_with_mentions(bert_tokenizer, [TEXT, TEXT], [[(4, 21)], [(4, 21, 0)]])
    with pytest.raises(ValueError, match=r"example 0, mention 0: \(4,\) is not \(start, end\) or"):
        tokenize_with_mentions(bert_tokenizer, [TEXT], [[(4,)]])
    with pytest.raises(ValueError, match=r"example 0, mention 0: \(4.0, 21\) is not \(start, end\) characters"):
        tokenize_with_mentions(bert_tokenizer, [TEXT], [[(4.0, 21, 0)]])
    with pytest.raises(ValueError, match=r"needs each mention's entity"):
        tokenize_into_windows(bert_tokenizer, [TEXT], spans)


@pytest.mark.data
def test_fewrel_word_spans_on_real_data(bert_tokenizer):
    with open(DATA_DIR / "fewrel" / "val_wiki.json", encoding="utf-8") as f:
        instances = json.load(f)["P177"][:20]
    texts, mentions = [], []
    for instance in instances:
        spans = [(instance[key][2][0][0], instance[key][2][0][-1]) for key in ("h", "t")]
        text, char_spans = words_to_text(instance["tokens"], spans)
        texts.append(text)
        mentions.append([(s, e, instance[key][1]) for (s, e), key in zip(char_spans, ("h", "t"))])
    vocab = {q: i for i, q in enumerate(sorted({m[2] for ms in mentions for m in ms}))}
    encoding = tokenize_with_mentions(bert_tokenizer, texts, mentions, entity_vocab=vocab)
    for example, instance in enumerate(instances):
        decoded = mention_tokens(bert_tokenizer, encoding, example)
        # in text order; normalised as the tokenizer does (lower case, accents stripped)
        words = sorted(
            (instance[k][2][0][0], " ".join(instance["tokens"][i] for i in instance[k][2][0])) for k in ("h", "t")
        )
        expected = [bert_tokenizer.decode(bert_tokenizer(w, add_special_tokens=False)["input_ids"]) for _, w in words]
        assert decoded == expected


def test_encode_descriptions_marks_the_first_mention(bert_tokenizer):
    encoding = encode_descriptions(bert_tokenizer, ["Dog", "cat"], ["a dog is a dog", "a small feline"])
    ids = encoding["input_ids"][0]
    assert bert_tokenizer.decode(ids[encoding["mention_starts"][0] : encoding["mention_ends"][0] + 1]) == "dog"
    assert encoding["mention_starts"][0] == 2  # [CLS] a dog
    assert encoding["mention_starts"][1] == -1 and encoding["mention_ends"][1] == -1


def test_collator_pads_tokens_and_mentions(bert_tokenizer):
    encoding = tokenize_with_mentions(bert_tokenizer, [TEXT, "hello there"], [MENTIONS, []], entity_vocab=VOCAB)
    features = [{key: encoding[key][i] for key in encoding} for i in range(2)]
    for feature, label in zip(features, (1, 0)):
        feature["labels_class"] = label
    batch = DataCollatorWithMentions(bert_tokenizer.pad_token_id, pad_to_multiple_of=8)(features)
    assert batch["input_ids"].shape == (2, 16) and batch["input_ids"][1, 4:].eq(bert_tokenizer.pad_token_id).all()
    assert batch["attention_mask"][1].sum() == 4
    assert batch["mention_starts"].tolist()[1] == [-1, -1] and batch["mention_entity_ids"].tolist()[0] == [0, 1]
    assert batch["labels_class"].tolist() == [1, 0] and "num_truncated_mentions" not in batch


@pytest.mark.parametrize(
    "texts, mentions, message",
    [
        (["  "], [[]], "example 0: text is empty"),
        ([TEXT, ""], [[], []], "example 1: text is empty"),
        ([TEXT], [[(40, 60, "Q1497")]], r"example 0, mention 0: character span \[40, 60\) is out of range"),
        ([TEXT], [[(5, 5, "Q1497")]], "out of range"),
        (
            [TEXT],
            [[(4, 21, "Q1497"), (16, 27, "Q5034838")]],
            r"example 0: mentions 0 \[4, 21\) and 1 \[16, 27\) overlap",
        ),
        ([TEXT], [[(4, 21, "Q42")]], "example 0, mention 0: unknown entity 'Q42'"),
        ([TEXT], [[(3, 4, "Q1497")]], "covers no token"),
        ([TEXT], [[]] * 2, "got 1 texts but 2 mention lists"),
    ],
)
def test_bad_input_names_the_example(bert_tokenizer, texts, mentions, message):
    with pytest.raises(ValueError, match=message):
        tokenize_with_mentions(bert_tokenizer, texts, mentions, entity_vocab=VOCAB)


def test_integer_entities_are_range_checked(bert_tokenizer):
    with pytest.raises(ValueError, match=r"entity id 7 is outside \[0, 5\)"):
        tokenize_with_mentions(bert_tokenizer, [TEXT], [[(4, 21, 7)]], num_entities=5)
    with pytest.raises(ValueError, match="not an int id"):
        tokenize_with_mentions(bert_tokenizer, [TEXT], [[(4, 21, "Q1")]])
    with pytest.raises(ValueError, match="entity True is not an int id"):  # it was entity 1
        tokenize_with_mentions(bert_tokenizer, [TEXT], [[(4, 21, True)]], num_entities=5)
    for length in (0, -1, 2, 7.0):  # 0 meant no truncation
        with pytest.raises(ValueError, match=f"max_length must be an integer of at least 3 .* got {length!r}"):
            tokenize_with_mentions(bert_tokenizer, [TEXT], [[]], max_length=length)


def test_bad_word_spans_and_empty_descriptions(bert_tokenizer):
    with pytest.raises(ValueError, match=r"word span \(2, 5\) is outside the 3 words"):
        words_to_text(["a", "b", "c"], [(2, 5)])
    with pytest.raises(ValueError, match="description 1 \\('cat'\\) is empty"):
        encode_descriptions(bert_tokenizer, ["dog", "cat"], ["a dog", " "])
    with pytest.raises(ValueError, match="feature 1 has keys"):
        DataCollatorWithMentions(0)([{"input_ids": [1]}, {"input_ids": [1], "x": 1}])


def test_collated_batch_runs_through_the_model(bert_tokenizer, minilm_path):
    from modeling_jaket import JaketModel

    model = JaketModel.from_backbone(minilm_path).eval()
    encoding = tokenize_with_mentions(bert_tokenizer, [TEXT, "hello there"], [MENTIONS, []], entity_vocab=VOCAB)
    batch = DataCollatorWithMentions(bert_tokenizer.pad_token_id)(
        [{k: encoding[k][i] for k in encoding} for i in range(2)]
    )
    text = {key: batch[key] for key in ("input_ids", "attention_mask")}
    with torch.no_grad():
        output = model(
            **batch,
            subgraph_entity_ids=torch.tensor([0, 1]),
            edge_index=torch.tensor([[1], [0]]),
            edge_type=torch.tensor([0]),
            entity_init_embeddings=torch.randn(2, 384),
            relation_embeddings=torch.randn(1, 384),
        )
        text_only = model(**text).last_hidden_state
    assert output.last_hidden_state.shape == (2, batch["input_ids"].shape[1], 384)
    # the knowledge reaches the first text, whose mentions the collator kept, and leaves the second as it was
    assert not torch.allclose(output.last_hidden_state[0], text_only[0])
    torch.testing.assert_close(output.last_hidden_state[1], text_only[1])


def test_no_descriptions_and_batches_without_mentions(bert_tokenizer):
    assert encode_descriptions(bert_tokenizer, [], []) == {"input_ids": [], "mention_starts": [], "mention_ends": []}
    encoding = bert_tokenizer(["a dog", "a cat sleeps"])
    batch = DataCollatorWithMentions(bert_tokenizer.pad_token_id)(
        [{"input_ids": encoding["input_ids"][i], "attention_mask": encoding["attention_mask"][i]} for i in range(2)]
    )
    assert sorted(batch) == ["attention_mask", "input_ids"] and batch["input_ids"].shape == (2, 5)


WORDS = ["river", "Mississippi", "flows", "past", "Cape", "Girardeau", "the", "unbelievably", "ox", "."]


@pytest.mark.parametrize("tokenizer_name", ["bert_tokenizer", "roberta_tokenizer"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    words=st.lists(st.sampled_from(WORDS), min_size=1, max_size=60),
    linked=st.lists(st.booleans(), min_size=60, max_size=60),
    max_length=st.integers(8, 40),
    stride=st.integers(0, 3),
)
def test_windows_keep_every_token_and_mention(tokenizer_name, request, words, linked, max_length, stride):
    tokenizer = request.getfixturevalue(tokenizer_name)
    text, spans = words_to_text(words, [(i, i + 1) for i in range(0, len(words) - 1, 2) if linked[i]])
    mentions = [(start, end, number) for number, (start, end) in enumerate(spans)]
    whole = tokenizer(text, add_special_tokens=False)["input_ids"]
    before, after = special_tokens_around(tokenizer)
    size = max_length - len(before) - len(after)
    try:
        windows = tokenize_into_windows(tokenizer, [text], [mentions], max_length=max_length, stride=stride)
    except ValueError as error:  # only where a mention is longer than a window
        longest = max(len(tokenizer(text[s:e], add_special_tokens=False)["input_ids"]) for s, e, _ in mentions)
        assert "does not fit in a window" in str(error) and longest > size
        return
    rebuilt = []
    for ids in windows["input_ids"]:
        assert len(ids) <= max_length and ids[: len(before)] == before and ids[len(ids) - len(after) :] == after
        piece = ids[len(before) : len(ids) - len(after)]
        # each window starts `stride` tokens before the last one ended, or where it ended when a mention moved
        # that boundary back
        overlaps = [
            k
            for k in (stride, 0)
            if len(rebuilt) >= k and whole[: len(rebuilt) - k + len(piece)] == rebuilt[: len(rebuilt) - k] + piece
        ]
        assert overlaps and piece
        rebuilt = rebuilt[: len(rebuilt) - overlaps[0]] + piece
    assert rebuilt == whole  # every token, in order
    assert windows["text_index"] == [0] * len(windows["input_ids"])
    found = {}
    for window, ids in enumerate(windows["input_ids"]):
        for entity, start, end in zip(
            windows["mention_entity_ids"][window], windows["mention_starts"][window], windows["mention_ends"][window]
        ):
            found.setdefault(entity, tokenizer.decode(ids[start : end + 1]).strip())
    expected = {
        number: tokenizer.decode(tokenizer(text[s:e], add_special_tokens=False)["input_ids"]).strip()
        for s, e, number in mentions
    }
    assert found == expected  # every mention, whole, over its own tokens


def test_windows_of_a_short_text_are_its_tokenize_with_mentions_row(bert_tokenizer):
    windows = tokenize_into_windows(bert_tokenizer, [TEXT, TEXT], [MENTIONS, MENTIONS[:1]], entity_vocab=VOCAB)
    row = tokenize_with_mentions(bert_tokenizer, [TEXT, TEXT], [MENTIONS, MENTIONS[:1]], entity_vocab=VOCAB)
    for key in ("input_ids", "attention_mask", "mention_entity_ids", "mention_starts", "mention_ends"):
        assert windows[key] == row[key]
    assert windows["text_index"] == [0, 1]


def test_a_mention_longer_than_a_window_is_refused_naming_the_example(bert_tokenizer):
    with pytest.raises(
        ValueError, match=r"example 1: a mention of \d+ tokens does not fit in a window of 3 \(max_length 5\)"
    ):
        tokenize_into_windows(bert_tokenizer, ["an ox", TEXT], [[], [(4, 47, 0)]], max_length=5)
    with pytest.raises(ValueError, match="0 <= stride < size"):
        tokenize_into_windows(bert_tokenizer, [TEXT], [[]], max_length=5, stride=3)


@pytest.mark.parametrize("tokenizer_name", ["bert_tokenizer", "roberta_tokenizer"])
def test_a_text_pair_maps_each_text_s_mentions_into_its_own_sequence(tokenizer_name, request):
    tokenizer = request.getfixturevalue(tokenizer_name)
    pair = "Memphis lies on the Mississippi River."
    pair_mentions = [(0, 7, "Q16563"), (20, 37, "Q1497")]
    vocab = {**VOCAB, "Q16563": 2}
    encoding = tokenize_with_mentions(
        tokenizer, [TEXT], [MENTIONS], entity_vocab=vocab, text_pairs=[pair], pair_mentions=[pair_mentions]
    )
    assert [m.lower() for m in mention_tokens(tokenizer, encoding)] == [
        "mississippi river",
        "cape girardeau",
        "memphis",
        "mississippi river",
    ]
    assert encoding["mention_entity_ids"] == [[0, 1, 2, 0]] and encoding["mention_indices"] == [[0, 1, 2, 3]]
    sequence_ids = tokenizer(TEXT, pair).sequence_ids()
    assert [sequence_ids[s] for s in encoding["mention_starts"][0]] == [0, 0, 1, 1]
    if "token_type_ids" in tokenizer.model_input_names:  # BERT: the pair's tokens are type 1
        assert encoding["token_type_ids"][0] == tokenizer(TEXT, pair)["token_type_ids"]
    cut = tokenize_with_mentions(
        tokenizer, [TEXT], [MENTIONS], entity_vocab=vocab, text_pairs=[pair], pair_mentions=[pair_mentions],
        max_length=14,
    )  # fmt: skip
    kept = len(cut["mention_starts"][0])
    assert kept + cut["num_truncated_mentions"][0] == 4 and kept < 4  # both texts cut, every mention counted
    with pytest.raises(ValueError, match="example 0 \\(pair\\), mention 1: character span \\[20, 99\\)"):
        tokenize_with_mentions(
            tokenizer, [TEXT], [MENTIONS], vocab, text_pairs=[pair], pair_mentions=[[(0, 7, 2), (20, 99, 0)]]
        )
    with pytest.raises(ValueError, match="text_pairs and pair_mentions go together"):
        tokenize_with_mentions(tokenizer, [TEXT], [MENTIONS], vocab, text_pairs=[pair])
