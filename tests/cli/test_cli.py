"""The command line: `python -m ham_core analyze | sweep | generate` (ham_core.cli).

A few runs go through a real subprocess; the rest call main(argv) in-process to stay fast.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import SAMPLE_TEXT, broken_model_copy
from ham_core import cli
from ham_core.cli.common import dump_json
from ham_core.analysis.analysis import analyze
from ham_core.analysis.sweep import sweep
from ham_core.model.checkpoint import load_bundle

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


pytestmark = pytest.mark.usefixtures("one_thread")   # tests/conftest.py


@pytest.fixture
def sample(tmp_path):
    path = tmp_path / "sample.txt"
    path.write_text(SAMPLE_TEXT, encoding="utf-8")
    return path


def run(*argv, stdin: bytes = b""):
    """`python -m ham_core ...` in a subprocess -> (exit code, stdout, stderr)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT)
    p = subprocess.run([sys.executable, "-m", "ham_core", *map(str, argv)], input=stdin,
                       capture_output=True, cwd=ROOT, env=env, timeout=300)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def call(capsys, *argv):
    """main(argv) in-process -> (exit code, stdout, stderr); argparse's exits count as codes."""
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_one_line_error(code, err):
    assert code not in (0, None)
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err


def test_analyze_json_matches_the_api(tiny_model_dir, sample):
    code, out, err = run("analyze", sample, "--model", tiny_model_dir, "--tau", "0.8",
                         "--layer-tau", "1=1.0", "--json")
    assert code == 0, err
    model, tok = load_bundle(tiny_model_dir)
    api = analyze(model, tok, SAMPLE_TEXT, 0.8, layer_tau={1: 1.0}, model_name=str(tiny_model_dir))
    got = json.loads(out)
    size = len(SAMPLE_TEXT.encode())
    assert (got.pop("input_bytes"), got.pop("bytes_read"), got["truncated"]) == (size, size, False)
    assert got == api.to_dict()


def test_bad_input_in_a_subprocess(tmp_path, tiny_model_dir):
    code, out, err = run("analyze", tmp_path / "missing.txt", "--model", tiny_model_dir)
    assert_one_line_error(code, err)
    assert "not found" in err and out == ""


def test_stdin_in_a_subprocess(tiny_model_dir):
    code, out, err = run("sweep", "-", "--model", tiny_model_dir, "--taus", "0,0.9,2.5",
                         "--policies", "ham,window", "--csv", stdin=SAMPLE_TEXT.encode())
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0] == "policy,tau,kv_fraction,kv_bytes_peak,loss" and len(lines) == 7
    assert "sweep [" in err                                             # the progress bar


BAD_FILES = {
    "empty": b"",
    "whitespace": b"  \n\t \n",
    "invalid_utf8": b"caf\xe9 au lait",
    "binary": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
}


@pytest.mark.parametrize("command", ["analyze", "sweep"])
@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_bad_files(capsys, tmp_path, tiny_model_dir, kind, command):
    path = tmp_path / f"{kind}.txt"
    path.write_bytes(BAD_FILES[kind])
    code, out, err = call(capsys, command, path, "--model", tiny_model_dir)
    assert_one_line_error(code, err)
    assert out == ""


@pytest.mark.parametrize("argv", [
    ["--tau", "-0.5"], ["--tau", "nan"], ["--tau", "inf"], ["--tau", "abc"],
    ["--layer-tau", "9=0.5"], ["--layer-tau", "0:0.5"], ["--layer-tau", "0=-1"], ["--policy", "oracle"],
])
def test_bad_thresholds(capsys, sample, tiny_model_dir, argv):
    assert_one_line_error(*call(capsys, "analyze", sample, "--model", tiny_model_dir, *argv)[::2])


@pytest.mark.parametrize("argv", [["--taus", "0,-1"], ["--taus", "a,b"], ["--policies", "ham,nope"],
                                  ["--fractions", "0.5,2"], ["--json", "--csv"]])
def test_bad_sweep_options(capsys, sample, tiny_model_dir, argv):
    assert_one_line_error(*call(capsys, "sweep", sample, "--model", tiny_model_dir, *argv)[::2])


def test_missing_file_folder_and_model(capsys, tmp_path, sample, tiny_model_dir, monkeypatch):
    assert_one_line_error(*call(capsys, "analyze", tmp_path / "nope.txt", "--model", tiny_model_dir)[::2])
    assert_one_line_error(*call(capsys, "analyze", tmp_path, "--model", tiny_model_dir)[::2])
    assert_one_line_error(*call(capsys, "analyze", sample, "--model", tmp_path / "no_model")[::2])
    monkeypatch.setattr("ham_core.model.checkpoint.default_model_dir", lambda: tmp_path / "no_model")
    code, _, err = call(capsys, "analyze", sample)
    assert_one_line_error(code, err)
    assert "--model" in err


def test_analyze_table_and_stdin(capsys, monkeypatch, tiny_model_dir):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(SAMPLE_TEXT.encode())))
    code, out, err = call(capsys, "analyze", "-", "--model", tiny_model_dir, "--rows", "5", "--policy", "sinks")
    assert code == 0, err
    assert "policy sinks" in out and "KV cache" in out and "more tokens" in out
    assert len(out.splitlines()) < 15


@pytest.mark.parametrize("data", [b"\xc3\x28 bad bytes", b"", b" \n ", b"a\x00b", b"\xff\xfea\x00\x00\xd8"])
def test_bad_stdin(capsys, monkeypatch, tiny_model_dir, data):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    code, out, err = call(capsys, "analyze", "-", "--model", tiny_model_dir)
    assert_one_line_error(code, err)
    assert "stdin" in err and out == ""


def test_long_text_notice_on_stderr(capsys, tmp_path, tiny_model_dir):
    path = tmp_path / "long.txt"
    path.write_text(SAMPLE_TEXT * 12)                                  # > 512 tokens (the tiny limit)
    code, out, err = call(capsys, "analyze", path, "--model", tiny_model_dir, "--json")
    assert code == 0
    assert json.loads(out)["n_tokens"] == 512
    assert err.startswith("notice: ") and "only the first 512" in err


def test_endless_input_reads_only_a_prefix(tiny_model_dir):
    """/dev/zero never ends: only the prefix 512 tokens can use is read, then one clear line."""
    p = subprocess.run([sys.executable, "-m", "ham_core", "analyze", "/dev/zero", "--model", str(tiny_model_dir)],
                       capture_output=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), timeout=120)
    assert_one_line_error(p.returncode, p.stderr.decode())
    assert "binary" in p.stderr.decode()
    with open("/dev/zero", "rb") as zero:                                # endless stdin, too
        p = subprocess.run([sys.executable, "-m", "ham_core", "analyze", "-", "--model", str(tiny_model_dir)],
                           stdin=zero, capture_output=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT),
                           timeout=120)
    assert_one_line_error(p.returncode, p.stderr.decode())


def test_100_mb_file_is_cut_with_a_notice_and_says_so_in_json(tmp_path, tiny_model_dir):
    path = tmp_path / "big.txt"
    line = b"The keeper wrote the date, the wind and the ships she saw.\n"
    with path.open("wb") as f:
        f.write(line * (100 * 2 ** 20 // len(line) + 1))
    size = path.stat().st_size
    code, out, err = run("analyze", path, "--model", tiny_model_dir, "--json")
    assert code == 0, err
    got = json.loads(out)
    assert got["truncated"] is True and got["input_bytes"] == size and got["n_tokens"] == 512
    assert got["bytes_read"] < 100_000                                  # a prefix, not 100 MB
    notes = err.strip().splitlines()
    assert all(n.startswith("notice: ") for n in notes) and f"{size:,} bytes" in err and "Traceback" not in err


def test_utf16_file_with_a_bom_is_read(capsys, tmp_path, tiny_model_dir):
    for encoding in ("utf-16", "utf-16-be", "utf-32"):
        path = tmp_path / f"{encoding}.txt"
        data = SAMPLE_TEXT.encode(encoding)
        path.write_bytes(data if encoding != "utf-16-be" else b"\xfe\xff" + data)
        code, out, err = call(capsys, "analyze", path, "--model", tiny_model_dir, "--json")
        assert code == 0, err
        assert "".join(t["text"] for t in json.loads(out)["tokens"]) == SAMPLE_TEXT


def test_non_finite_numbers_never_reach_json():
    from ham_core.errors import HAMInputError

    assert dump_json({"loss": 1.5}) == '{"loss": 1.5}'
    for bad in (float("nan"), float("inf")):
        with pytest.raises(HAMInputError, match="not finite"):
            dump_json({"loss": bad})


def test_sweep_json_matches_the_api(capsys, sample, tiny_model_dir):
    code, out, err = call(capsys, "sweep", sample, "--model", tiny_model_dir, "--taus", "0,0.8,2.5",
                          "--policies", "ham,hola,none", "--json", "--quiet")
    assert code == 0 and err == ""
    model, tok = load_bundle(tiny_model_dir)
    api = sweep(model, tok, [0, 0.8, 2.5], ["ham", "hola", "none"], text=SAMPLE_TEXT)
    assert json.loads(out) == [r.to_dict() for r in api]


def test_sweep_table_and_fractions(capsys, sample, tiny_model_dir):
    code, out, _ = call(capsys, "sweep", sample, "--model", tiny_model_dir, "--quiet")
    lines = out.strip().splitlines()
    assert code == 0 and lines[0].split() == ["policy", "tau", "kv_fraction", "kv_bytes_peak", "loss"]
    assert len(lines) == 17                                              # 16 default thresholds
    code, out, _ = call(capsys, "sweep", sample, "--model", tiny_model_dir, "--fractions", "0,0.25,1",
                        "--policies", "ham,random", "--json", "--quiet")
    rows = json.loads(out)
    assert code == 0 and [r["policy"] for r in rows] == ["ham"] * 3 + ["random"] * 3
    assert rows[0]["kv_fraction"] == 0.0 and rows[2]["kv_fraction"] == 1.0


def test_generate(capsys, tiny_model_dir):
    code, out, err = call(capsys, "generate", "--model", tiny_model_dir, "--prompt", "The cat",
                          "--tokens", "6", "--tau", "0.7", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert len(result["tokens"]) == 6 and result["tau"] == 0.7
    sizes = [t["cache"] for t in result["tokens"]]
    assert all(len(s) == 2 for s in sizes)
    assert all(b >= a for s1, s2 in zip(sizes, sizes[1:]) for a, b in zip(s1, s2))   # caches only grow
    code, out, _ = call(capsys, "generate", "--model", tiny_model_dir, "--prompt", "The cat", "--tokens", "3")
    assert code == 0 and out.startswith("The cat") and "cache size" in out
    assert_one_line_error(*call(capsys, "generate", "--model", tiny_model_dir, "--prompt", "  ")[::2])
    assert_one_line_error(*call(capsys, "generate", "--model", tiny_model_dir, "--prompt", "a", "--tau", "-1")[::2])


COMMANDS = ("analyze", "sweep", "generate", "corpus", "tokenizer", "train", "train-recall", "calibrate", "recall",
            "evaluate", "lookups-lab")


def test_calibrate_writes_one_scale_per_layer(capsys, tmp_path, tiny_model_dir):
    model = tmp_path / "m"
    shutil.copytree(tiny_model_dir, model)
    texts = tmp_path / "texts"
    texts.mkdir()
    (texts / "a.txt").write_text(SAMPLE_TEXT * 3)
    code, out, err = call(capsys, "calibrate", "--model", str(model), "--from-dir", str(texts),
                          "--windows", "2", "--length", "32")
    assert code == 0, err
    assert "surprise scale per layer" in out
    scales = json.loads((model / "config.json").read_text())["surprise_scale"]
    assert len(scales) == 2 and all(s > 0 for s in scales)
    assert_one_line_error(*call(capsys, "calibrate", "--model", str(tmp_path / "nowhere"))[::2])


def test_help_lists_every_command_and_each_has_help(capsys):
    code, out, _ = call(capsys, "--help")
    assert code == 0
    for command in COMMANDS:
        assert command in out
        code, out_command, _ = call(capsys, command, "--help")
        assert code == 0 and f"ham {command}" in out_command, command
    assert_one_line_error(*call(capsys)[::2])


@pytest.mark.parametrize("fault", ["d_model", "chunk_size", "nan"])
def test_a_broken_model_is_one_line_naming_the_file(capsys, tmp_path, tiny_model_dir, sample, fault):
    if fault == "nan":
        fault_of = {"tensor": ("blocks.0.ham.qkv.weight", (1, 2), float("inf"))}
    else:
        fault_of = {"config": (fault, {"d_model": 100_000_000, "chunk_size": 1_000_000_000}[fault])}
    broken = broken_model_copy(tiny_model_dir, tmp_path / "broken", **fault_of)
    for command in ("analyze", "sweep"):
        code, out, err = call(capsys, command, sample, "--model", broken, "--json")
        assert_one_line_error(code, err)
        if fault == "nan":
            assert str(broken / "model.safetensors") in err and "blocks.0.ham.qkv.weight" in err
        else:
            assert str(broken / "config.json") in err and f"{fault} = " in err
        assert out == ""


def test_analyze_reads_gives_each_tokens_top_reads_per_layer(capsys, sample, tiny_model_dir):
    code, out, err = call(capsys, "analyze", sample, "--model", tiny_model_dir, "--tau", "0", "--json", "--reads", "3")
    assert code == 0, err
    got = json.loads(out)
    model, tok = load_bundle(tiny_model_dir)
    api = analyze(model, tok, SAMPLE_TEXT, 0.0)
    L = model.cfg.n_layers
    for i, token in enumerate(got["tokens"]):
        assert len(token["reads"]) == L
        for layer, reads in enumerate(token["reads"]):
            assert len(reads) == min(3, i + 1)                   # a full cache: every earlier key and itself
            assert all(0 <= pos <= i for pos, _ in reads)
            assert [w for _, w in reads] == sorted((w for _, w in reads), reverse=True)
            best = api.reads(i, layer).top(1)[0]
            assert reads[0] == [best[0], pytest.approx(best[1], abs=1e-5)]
    code, out, err = call(capsys, "analyze", sample, "--model", tiny_model_dir, "--json", "--reads", "-1")
    assert_one_line_error(code, err)


def test_analyze_per_head_reads_are_each_heads_own_and_average_to_the_layers(capsys, sample, tiny_model_dir):
    K = 4
    code, out, err = call(capsys, "analyze", sample, "--model", tiny_model_dir, "--tau", "0", "--json",
                          "--reads", str(K), "--per-head")
    assert code == 0, err
    heads = json.loads(out)["tokens"]
    code, out, err = call(capsys, "analyze", sample, "--model", tiny_model_dir, "--tau", "0", "--json", "--reads", str(K))
    mean = json.loads(out)["tokens"]
    model, _ = load_bundle(tiny_model_dir)
    L, H = model.cfg.n_layers, model.cfg.n_heads
    for i, (token, averaged) in enumerate(zip(heads, mean)):
        assert len(token["reads"]) == L and all(len(per) == H for per in token["reads"])
        for layer in range(L):
            for reads in token["reads"][layer]:
                assert len(reads) == min(K, i + 1) and all(0 <= pos <= i for pos, _ in reads)
                assert [w for _, w in reads] == sorted((w for _, w in reads), reverse=True)
            if i + 1 <= K:                       # every key listed: the heads' mean is the layer's read
                by_key = {}
                for reads in token["reads"][layer]:
                    for pos, w in reads:
                        by_key[pos] = by_key.get(pos, 0.0) + w / H
                for pos, w in averaged["reads"][layer]:
                    assert by_key[pos] == pytest.approx(w, abs=1e-4)
    code, out, err = call(capsys, "analyze", sample, "--model", tiny_model_dir, "--json", "--per-head")
    assert_one_line_error(code, err)
    assert "--reads" in err


def test_evaluate_reports_gap_copy_test_names_and_health(capsys, tmp_path, tiny_model_dir, monkeypatch):
    from ham_core.data import corpus

    monkeypatch.setattr(corpus, "default_corpus_dir", lambda: tmp_path / "no-corpus")
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    (model_dir / "valid_slice.txt").write_text(SAMPLE_TEXT * 6)      # held-out text when no corpus is built
    names = tmp_path / "names"
    names.mkdir()
    (names / "a.txt").write_text("Ada met Brann in Quillby. Later Ada and Brann left Quillby. Ada slept.")
    code, out, err = call(capsys, "evaluate", "--model", model_dir, "--windows", "2", "--length", "32",
                          "--passage", "12", "--fractions", "0,0.5,1", "--policies", "ham,random",
                          "--no-recall", "--names", names, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert set(report["copy_test"]) == {"full", "none", "ham25", "first-half25"}
    assert all(set(r) == {"first", "second"} for r in report["copy_test"].values())
    assert report["names"]["lookups"]["mentions"] == 4 and report["names"]["windows"] == 1
    assert len(report["health"]["layers"]) == 2 and report["gap"]["windows"] == 2
    rows = {(r["policy"], r["target"]): r for r in report["lm"]}
    assert rows[("ham", 0.0)]["gap_recovered"] == pytest.approx(0.0, abs=1e-9)
    assert rows[("ham", 1.0)]["gap_recovered"] == pytest.approx(1.0, abs=1e-9)
    assert rows[("ham", 0.5)]["se_vs_ham"] == 0.0 and rows[("random", 0.5)]["se_vs_ham"] >= 0.0
    code, out, err = call(capsys, "evaluate", "--model", model_dir, "--windows", "2", "--length", "32",
                          "--passage", "12", "--fractions", "0,0.5,1", "--policies", "ham,random",
                          "--no-recall", "--names", names)
    assert code == 0, err
    for heading in ("No cache minus full cache", "Copy test", "name lookups", "The same texts per policy",
                    "Attention health"):
        assert heading in out
    names_rows = {(r["policy"], r["target"]): r for r in report["names"]["lm"]}
    assert set(names_rows) == set(rows) and names_rows[("ham", 1.0)]["gap_recovered"] == pytest.approx(1.0)
