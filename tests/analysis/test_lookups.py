"""Name lookups and the copy test: what a teacher's claim that the model reads its cache rests on."""
from __future__ import annotations

import pytest
import torch

from ham_core.analysis.lookups import MIN_LOOKUP, copy_test, name_lookups, name_mentions
from ham_core.analysis import lookups
from ham_core.analysis.analysis import Analysis


def test_name_mentions_finds_recurring_names_not_sentence_openers():
    text = ("The boat left Quillmouth. Captain Brackwater steered. Later Brackwater said that "
            "Quillmouth was gone. Later it rained. The end.")
    found = name_mentions(text)
    assert set(found) == {"Quillmouth", "Brackwater"}           # "Later" and "The" only open sentences
    assert [text[a:b] for a, b in found["Brackwater"]] == ["Brackwater"] * 2
    assert name_mentions("Ada. Ada. Ada.") == {}                 # never mid-sentence: not shown to be a name


def test_copy_test_reads_each_passage_twice(tiny_model):
    passages = torch.randint(0, 320, (2, 10), generator=torch.Generator().manual_seed(0))
    got = copy_test(tiny_model, passages)
    assert set(got) == {"full", "none", "ham25", "first-half25"}
    # no cache: the RNN sees the same text both times, the second reading has no lookup to make
    assert all(v > 0 for r in got.values() for v in r.values())


def test_the_copy_tests_reference_cache_is_the_first_half_of_the_first_reading(tiny_model):
    """A quarter of a passage read twice: the first half of its first reading, in every layer."""
    routing = lookups.routings(tiny_model.cfg.n_layers, 10, tiny_model.cfg.head_rule)["first-half25"]
    cached = tiny_model(torch.arange(20)[None], **routing).cached[0]                 # [L, T]
    assert cached[:, :5].all() and not cached[:, 5:].any()


def test_name_lookups_count_a_strong_read_on_an_earlier_mention(tiny_model_dir, monkeypatch):
    from ham_core.model.checkpoint import load_bundle
    from ham_core.analysis.readmap import ReadMap
    import numpy as np

    model, tok = load_bundle(tiny_model_dir)
    text = "Ada went home. Then Ada slept."
    result = lookups.analyze(model, tok, text, 0.0)
    starts = [t.start for t in result.tokens]
    first, later = starts.index(text.index("Ada")), starts.index(text.rindex("Ada"))

    def fake_read_map(self, layer, top=8, head=None):         # every token reads the first "Ada" strongly
        T = self.n_tokens
        keys = np.full((T, 1), first, dtype=np.int32)
        return ReadMap(layer, None, keys, np.full((T, 1), weight, dtype=np.float32), np.zeros(T, np.float32))

    monkeypatch.setattr(Analysis, "read_map", fake_read_map)
    weight = MIN_LOOKUP + 0.01
    got = name_lookups(model, tok, [text]).as_dict()
    assert got["mentions"] == 1 and got["found"] == got["found_mean"] == 1 and got["share"] == 1.0
    assert got["found_control"] == 0                             # nothing lands 7 tokens after "Ada"
    weight = MIN_LOOKUP - 0.01                                   # the peak of a smear does not count
    assert name_lookups(model, tok, [text]).found == 0
    assert later > first


def test_name_lookups_count_a_head_and_the_heads_mean_apart(tiny_model_dir, monkeypatch):
    """One sharp head among heads that read elsewhere: a lookup per head, not in the heads' mean;
    a head whose attention gate is shut does not count."""
    from ham_core.model.checkpoint import load_bundle
    from ham_core.analysis.readmap import ReadMap
    import numpy as np

    model, tok = load_bundle(tiny_model_dir)
    text = "Ada went home. Then Ada slept."
    result = lookups.analyze(model, tok, text, 0.0)
    first = [t.start for t in result.tokens].index(text.index("Ada"))

    def fake_read_map(self, layer, top=8, head=None):         # head 0 reads "Ada"; the mean is a smear
        T = self.n_tokens
        keys = np.full((T, 1), first if head == 0 else 0, dtype=np.int32)
        weight = 0.9 if head == 0 else 0.1
        return ReadMap(layer, head, keys, np.full((T, 1), weight, dtype=np.float32), np.zeros(T, np.float32))

    monkeypatch.setattr(Analysis, "read_map", fake_read_map)
    got = name_lookups(model, tok, [text])
    assert (got.found, got.found_mean) == (1, 0)
    real = lookups.analyze

    def shut(*args, **kwargs):
        a = real(*args, **kwargs)
        a.steps.gate_attn[:] = lookups.LOOKUP_GATE / 2
        return a

    monkeypatch.setattr(lookups, "analyze", shut)
    assert name_lookups(model, tok, [text]).found == 0


def test_chars_per_token_counts_the_predicted_tokens_text(tiny_model_dir):
    from ham_core.analysis.evaluate import chars_per_token
    from ham_core.model.tokenizer import HAMTokenizer
    tok = HAMTokenizer.from_file(tiny_model_dir / "tokenizer.json")
    text = "The cat sat on the mat. The cat sat again." * 3
    ids = torch.tensor(tok.encode(text))
    n = (len(ids) // 8) * 8
    windows = ids[:n].view(-1, 8)
    expected = sum(len(tok.decode(w[1:].tolist())) for w in windows) / (windows.shape[0] * 7)
    assert chars_per_token(tok, windows) == pytest.approx(expected)
    assert 1.0 <= chars_per_token(tok, windows) <= len(text)
