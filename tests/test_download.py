"""The download command against a local mirror of its sources, built from the data folder CI has: Debian packages
holding WordNet, the wsd_corpora archive holding SemCor as NAF, FewRel's and MetaQA's files as published."""

import gzip
import io
import json
import shutil
import tarfile
import urllib.parse
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import pytest

from conftest import DATA_DIR
from datasets_scripts import download


def mirror_path(mirror: Path, url: str) -> Path:
    parts = urllib.parse.urlsplit(url)
    path = mirror / parts.netloc / parts.path.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def tar_bytes(files: dict[str, bytes], mode: str = "w:gz") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as archive:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def deb_bytes(files: dict[str, bytes]) -> bytes:
    """A Debian package as dpkg-deb writes one: an ar archive of debian-binary, control.tar, data.tar."""
    members = {
        "debian-binary": b"2.0\n",
        "control.tar.gz": tar_bytes({"./control": b"Package: wordnet\n"}),
        "data.tar": tar_bytes({f"./usr/share/wordnet/{name}": content for name, content in files.items()}, "w"),
    }
    out = b"!<arch>\n"
    for name, content in members.items():
        out += f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(content):<10}`\n".encode() + content
        out += b"\n" if len(content) % 2 else b""
    return out


def naf_documents(sentences_file: Path) -> dict[str, bytes]:
    """SemCor's NAF release rebuilt from the sentences it converts to: word forms numbered through the document, a
    term with WordNet references for each annotated token and one without for each sentence's first token."""
    documents: dict[str, list[dict]] = {}
    with gzip.open(sentences_file, "rt", encoding="utf-8") as f:
        for line in f:
            sentence = json.loads(line)
            documents.setdefault(sentence["doc"], []).append(sentence)
    naf = {}
    for document, sentences in documents.items():
        words, terms = [], []
        for sentence in sentences:
            senses = {sense[0]: sense for sense in sentence["senses"]}
            for index, token in enumerate(sentence["tokens"]):
                word = f"w{len(words)}"
                words.append(f'<wf id="{word}" sent="{sentence["sent"]}" para="1">{escape(token)}</wf>')
                refs = ""
                if index in senses:
                    _, lemma, pos, key, _ = senses[index]
                    refs = (
                        f'<externalReferences><externalRef reference="1" reftype="sense_number"/>'
                        f'<externalRef reference={quoteattr(key.split("%", 1)[1])} reftype="lexical_key"/>'
                        "</externalReferences>"
                    )
                elif index == 0:
                    lemma, pos = token.lower(), "DT"
                else:
                    continue
                terms.append(
                    f'<term id="t{word[1:]}" pos={quoteattr(pos)} lemma={quoteattr(lemma)}>'
                    f'<span><target id="{word}"/></span>{refs}</term>'
                )
        text = f"<NAF><text>{''.join(words)}</text><terms>{''.join(terms)}</terms></NAF>"
        naf[f"wsd_corpora-c31b9b8/semcor3.0/{document}.naf"] = (
            b"<?xml version='1.0' encoding='UTF-8'?>\n" + text.encode()
        )
    return naf


@pytest.fixture(scope="module")
def mirror(tmp_path_factory) -> Path:
    mirror = tmp_path_factory.mktemp("mirror")
    wordnet = {name: (DATA_DIR / "wordnet-3.0" / name).read_bytes() for name in download.WORDNET_FILES}
    sense_index = {"index.sense": wordnet.pop("index.sense")}
    for package, files in (("wordnet-base", wordnet), ("wordnet-sense-index", sense_index)):
        mirror_path(mirror, f"{download.DEBIAN_POOL}/{package}_3.0-37_all.deb").write_bytes(deb_bytes(files))
    archive = tar_bytes(naf_documents(DATA_DIR / "semcor-3.0" / "semcor3.0.sentences.jsonl.gz"), "w")
    mirror_path(mirror, download.WSD_CORPORA).write_bytes(archive)
    for name in ("val_wiki.json", "pid2name.json"):
        shutil.copy(DATA_DIR / "fewrel" / name, mirror_path(mirror, f"{download.FEWREL}/{name}"))
    for name in download.METAQA_FILES:
        shutil.copy(DATA_DIR / "metaqa" / name, mirror_path(mirror, f"{download.METAQA_QUESTIONS}/{name}"))
    for name in ("relation2text.txt", "kb.txt"):
        shutil.copy(DATA_DIR / "metaqa" / name, mirror_path(mirror, f"{download.METAQA_KB}/{name}"))
    return mirror


@pytest.mark.data
def test_download_writes_the_data_folder_ci_measures_on(mirror, tmp_path):
    out = tmp_path / "data"
    download.main([str(out), "--mirror", str(mirror)])
    for path in download.CHECKSUMS:
        written, reference = out / path, DATA_DIR / path
        if path.endswith(".gz"):
            assert gzip.decompress(written.read_bytes()) == gzip.decompress(reference.read_bytes()), path
        else:
            assert written.read_bytes() == reference.read_bytes(), path
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == sorted(download.CHECKSUMS)


@pytest.mark.data
def test_a_changed_source_is_named_and_nothing_of_its_folder_is_written(mirror, tmp_path):
    changed = tmp_path / "mirror"
    shutil.copytree(mirror / "github.com" / "thunlp", changed / "github.com" / "thunlp")
    pid2name = mirror_path(changed, f"{download.FEWREL}/pid2name.json")
    pid2name.write_bytes(pid2name.read_bytes().replace(b"located", b"situated", 1))
    with pytest.raises(download.DownloadError, match=r"fewrel/pid2name.json: sha256 \w+ differs from the expected"):
        download.download(tmp_path / "data", only=["fewrel"], mirror=changed)
    assert not (tmp_path / "data" / "fewrel").exists()


@pytest.mark.data
def test_semcor_needs_wordnet_first_and_unreachable_sources_are_named(mirror, tmp_path):
    with pytest.raises(download.DownloadError, match="wordnet-3.0/index.sense is missing"):
        download.download(tmp_path / "data", only=["semcor-3.0"], mirror=mirror)
    with pytest.raises(download.DownloadError, match=r"could not fetch file://.*thunlp/FewRel/raw/278a231/data"):
        download.download(tmp_path / "data", only=["fewrel"], mirror=tmp_path / "empty")
    with pytest.raises(ValueError, match=r"unknown data folders \['wordnet'\]"):
        download.download(tmp_path / "data", only=["wordnet"])


def test_a_damaged_debian_package_names_its_url():
    """Each of these was a raw ValueError, tarfile.ReadError or UnicodeDecodeError naming no URL."""
    url = "https://deb.debian.org/x.deb"
    good = deb_bytes({"data.noun": b"words"})
    data_tar = good.index(b"data.tar") + 60  # where its content starts
    assert list(download.debian_members(good, url)) == [("usr/share/wordnet/data.noun", b"words")]
    size_field = good.index(b"data.tar") + 48
    for damaged, message in (
        (good[:size_field] + b"x" + good[size_field + 1 :], "a damaged ar member header at byte"),
        (good[:8] + b"\xff" + good[9:], "a damaged ar member header at byte"),
        (good[:-40], r"member .* is cut short"),
        (good[:data_tar] + b"x" * 10 + good[data_tar + 10 :], r"its data.tar does not unpack \(ReadError\)"),
        (b"garbage", "is not a Debian package"),
    ):
        with pytest.raises(download.DownloadError, match=f"{url}.* ?{message}"):
            list(download.debian_members(damaged, url))
