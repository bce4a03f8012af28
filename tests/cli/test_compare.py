"""`ham compare`: the four architectures' loss on the same tokens, on tiny random models in a temp folder."""
from __future__ import annotations

import json
import math
import shutil

import pytest
import torch

from ham_core import cli
from ham_core.analysis.compare import compare_losses, load_comparison
from ham_core.model.model import next_token_nll
from tests.conftest import SAMPLE_TEXT

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def models_dir(compare_models_dir):
    return compare_models_dir


@pytest.fixture
def sample(tmp_path):
    path = tmp_path / "sample.txt"
    path.write_text(SAMPLE_TEXT, encoding="utf-8")
    return path


def compare_json(capsys, *argv):
    assert cli.main(["compare", *map(str, argv), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_rows_per_architecture_and_fraction(models_dir, sample, capsys):
    rows = compare_json(capsys, sample, "--models", models_dir)
    assert all(set(r) == {"model", "kv_fraction", "loss"} for r in rows)
    want = [("transformer", 1.0), ("gdn", 0.0), ("window", 0.1), ("window", 0.25), ("window", 0.5),
            ("window", 1.0), ("ham", 0.1), ("ham", 0.25), ("ham", 0.5), ("ham", 1.0)]
    assert [r["model"] for r in rows] == [m for m, _ in want]
    for r, (_, f) in zip(rows, want):     # the cache actually used: HAM's threshold meets f as closely as it can
        assert r["kv_fraction"] == pytest.approx(f, abs=0.02 if r["model"] == "ham" else 0.005)
    assert all(math.isfinite(r["loss"]) and r["loss"] > 0 for r in rows)


def test_losses_are_the_models_own_readings(models_dir, tiny_model_dir):
    """The Transformer's row is its plain forward; the window's is W = f x T; both on the same ids."""
    models = load_comparison(models_dir)
    ids = torch.tensor(models["ham"][1].encode(SAMPLE_TEXT))
    rows = {(r["model"], round(r["kv_fraction"], 2)): r["loss"] for r in compare_losses(models, [ids])
            if r["model"] != "ham"}
    with torch.no_grad():
        transformer = models["transformer"][0](ids[None]).logits
        window = models["window"][0](ids[None], window=round(0.25 * len(ids))).logits
    assert rows[("transformer", 1.0)] == pytest.approx(next_token_nll(transformer, ids[None]).mean().item())
    assert rows[("window", 0.25)] == pytest.approx(next_token_nll(window, ids[None]).mean().item())


def test_a_folder_of_texts_weights_by_tokens(models_dir, tmp_path, capsys):
    texts = tmp_path / "texts"
    texts.mkdir()
    (texts / "a.txt").write_text(SAMPLE_TEXT)
    (texts / "b.txt").write_text("The cat sat on the mat. " * 6)
    both = compare_json(capsys, texts, "--models", models_dir)
    one = compare_json(capsys, texts / "a.txt", "--models", models_dir)
    other = compare_json(capsys, texts / "b.txt", "--models", models_dir)
    models = load_comparison(models_dir)
    tok = models["ham"][1]
    na, nb = len(tok.encode(SAMPLE_TEXT)) - 1, len(tok.encode((texts / "b.txt").read_text())) - 1
    for r, a, b in zip(both[:2], one, other):                   # transformer and gdn: one reading each
        assert r["loss"] == pytest.approx((a["loss"] * na + b["loss"] * nb) / (na + nb))


def test_table_names_the_missing_architectures(models_dir, tmp_path, sample, capsys):
    partial = tmp_path / "partial"
    for arch in ("gdn", "ham"):
        shutil.copytree(models_dir / arch, partial / arch)
    assert cli.main(["compare", str(sample), "--models", str(partial)]) == 0
    out = capsys.readouterr().out
    assert "no model for: transformer, window" in out and "| gdn | 0.0% |" in out and "| ham | " in out


@pytest.mark.parametrize("case,message", [
    ("no-models", "no comparison models in"),
    ("no-folder", "nowhere (no such folder)"),
    ("wrong-architecture", "holds a 'ham' model, not 'window'"),
    ("missing-text", "file not found"),
    ("empty-text", "is empty"),
    ("blank-text", "no text to read"),
    ("empty-folder", "no .txt files"),
])
def test_clear_errors(models_dir, tmp_path, sample, capsys, case, message):
    models, source = models_dir, sample
    if case == "no-models":
        models = tmp_path / "empty"
        models.mkdir()
    elif case == "no-folder":
        models = tmp_path / "nowhere"
    elif case == "wrong-architecture":
        models = tmp_path / "swapped"
        shutil.copytree(models_dir / "ham", models / "window")
    elif case == "missing-text":
        source = tmp_path / "absent.txt"
    elif case in ("empty-text", "blank-text"):
        source = tmp_path / "blank.txt"
        source.write_text("" if case == "empty-text" else "  \n")
    elif case == "empty-folder":
        source = tmp_path / "no_texts"
        source.mkdir()
    assert cli.main(["compare", str(source), "--models", str(models)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_shipped_folder_says_when_it_holds_no_models(tmp_path, sample, capsys, monkeypatch):
    import ham_core.analysis.compare as compare

    monkeypatch.setattr(compare, "default_compare_dir", lambda: tmp_path / "assets" / "compare")
    assert cli.main(["compare", str(sample)]) == 2          # not made yet
    assert "no comparison models in" in capsys.readouterr().err
    (tmp_path / "assets" / "compare").mkdir(parents=True)
    assert cli.main(["compare", str(sample)]) == 2          # made, but empty
    err = capsys.readouterr().err
    assert "no comparison models in" in err and "--models DIR" in err


def test_cache_size_against_position(models_dir):
    """The picture of the seeds' claim: Transformer diagonal, GDN flat 0, window flat at W, HAM
    at most the full diagonal; each equals what the compact-cache decode holds token by token."""
    from ham_core.analysis.compare import cache_by_position
    from ham_core.model import decode

    models = load_comparison(models_dir)
    ids = torch.tensor(models["ham"][1].encode(SAMPLE_TEXT))
    T, L = len(ids), 2
    diagonal = torch.arange(1, T + 1) * L
    assert torch.equal(cache_by_position(models["transformer"][0], ids), diagonal)
    assert torch.equal(cache_by_position(models["gdn"][0], ids), torch.zeros(T, dtype=torch.long))
    W = round(0.25 * T)
    assert torch.equal(cache_by_position(models["window"][0], ids, 0.25), diagonal.clamp(max=W * L))
    ham = cache_by_position(models["ham"][0], ids, 0.25)
    assert (ham <= diagonal).all() and (ham[1:] >= ham[:-1]).all() and ham[-1] < diagonal[-1]
    model = models["window"][0]
    mem = decode.start(model, window=W)
    held = []
    for t in ids.tolist():
        decode.step(model, mem, t)
        held.append(sum(mem.cache_sizes()))
    assert held == cache_by_position(model, ids, 0.25).tolist()


def test_recall_rows_per_architecture(recall_models_dir, capsys):
    rows = compare_json(capsys, "--recall", "--models", recall_models_dir)
    assert all(set(r) == {"model", "kv_fraction", "accuracy"} and 0 <= r["accuracy"] <= 1 for r in rows)
    assert [r["model"] for r in rows] == ["transformer", "gdn"] + ["window"] * 4 + ["ham"] * 4
    fractions = [r["kv_fraction"] for r in rows]
    assert fractions[:2] == [1.0, 0.0] and fractions[2:6] == pytest.approx([0.1, 0.25, 0.5, 1.0], abs=0.005)
    assert all(f <= target + 1e-9 for f, target in zip(fractions[6:], (0.1, 0.25, 0.5, 1.0)))   # HAM: at most


def test_recall_table_and_its_errors(recall_models_dir, sample, tmp_path, capsys):
    assert cli.main(["compare", "--recall", "--models", str(recall_models_dir)]) == 0
    assert "| gdn | 0.0% |" in capsys.readouterr().out
    assert cli.main(["compare", str(sample), "--recall", "--models", str(recall_models_dir)]) == 2
    assert "leave FILE|DIR out" in capsys.readouterr().err
    assert cli.main(["compare", "--recall", "--models", str(tmp_path)]) == 2
    assert "no comparison models in" in capsys.readouterr().err
    assert cli.main(["compare"]) == 2
    assert "compare needs a text" in capsys.readouterr().err


def test_where_they_differ(models_dir):
    """The tokens the Transformer predicts best against GDN, each with the Transformer's strongest
    read and whether HAM's cache held it."""
    from ham_core.analysis.compare import where_they_differ

    models = load_comparison(models_dir)
    ids = torch.tensor(models["ham"][1].encode(SAMPLE_TEXT))
    rows = where_they_differ(models, ids, 0.25, top=5)
    gains = [r["gdn"] - r["transformer"] for r in rows]
    assert len(rows) == 5 and gains == sorted(gains, reverse=True)
    with torch.no_grad():
        weights = models["transformer"][0](ids[None], attention="all").attention
    for r in rows:
        query = r["position"] - 1                       # the token that predicts this one
        assert 0 <= r["read_key"] <= query
        best = max(float(w[0, :, query].max()) for w in weights)
        assert r["read_weight"] == pytest.approx(best)
    partial = {k: v for k, v in models.items() if k != "gdn"}
    with pytest.raises(Exception, match="gdn"):
        where_they_differ(partial, ids)


@pytest.mark.parametrize("architecture", ["transformer", "gdn", "window", "ham"])
def test_every_comparison_model_loads_with_model_like_the_shipped_one(compare_models_dir, sample, capsys, architecture):
    """analyze (with reads), sweep and generate read any architecture without a traceback."""
    model = str(compare_models_dir / architecture)
    assert cli.main(["analyze", str(sample), "--model", model, "--json", "--reads", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_tokens"] > 0 and math.isfinite(out["loss"])
    assert cli.main(["sweep", str(sample), "--model", model, "--taus", "0,2.5", "--quiet"]) == 0
    assert cli.main(["generate", "--prompt", "The cat", "--tokens", "3", "--model", model]) == 0
    capsys.readouterr()
