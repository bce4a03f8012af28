"""Speed of the analysis engine on the CPU (issue 3): `analyze`, a HAM sweep of 16 thresholds,
and the 5 compared policies at 6 cache fractions, for texts of 256, 1,024 and 4,096 tokens.

    python bench/analysis_bench.py                  # the figures in docs/PERFORMANCE.md
    python bench/analysis_bench.py --threads 1      # one thread (a busy, shared machine)
    python bench/analysis_bench.py --lengths 1024 --skip-policies

Model: the shipped one (assets/lm) when it exists, else random weights of the default
HAMConfig (4 layers x 4 heads x 64, width 256) with the vocabulary of assets/lm/tokenizer.json.
Text: assets/lm/valid_slice.txt (repeated if too short), else a built-in paragraph repeated.
Times are medians of --repeats runs after one warm-up (sweeps run once): wall time and the
process's CPU time, with the load average, since the machine may be shared.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ham_core.analysis import analyze                                      # noqa: E402
from ham_core.model.checkpoint import TOKENIZER, WEIGHTS, default_model_dir, load_bundle  # noqa: E402
from ham_core.model.config import HAMConfig                                      # noqa: E402
from ham_core.model.model import HAMModel                                        # noqa: E402
from ham_core.analysis.sweep import DEFAULT_TAUS, fraction_sweep, sweep  # noqa: E402
from ham_core.analysis.thresholds import DEFAULT_FRACTIONS  # noqa: E402
from ham_core.model.policies import COMPARED  # noqa: E402

TARGETS_AT_1024 = {"analyze": 0.3, "ham sweep x16": 3.0, "5 policies x 6 fractions": 15.0}
PARAGRAPH = ("The keeper of the lighthouse wrote the date, the wind and the ships she saw. "
             "On some nights nothing passed; on others the log filled a page. ")


def load():
    """(model, tokenizer, description)."""
    directory = default_model_dir()
    if (directory / WEIGHTS).is_file():
        model, tokenizer = load_bundle(directory)
        return model, tokenizer, f"shipped model ({directory})"
    from ham_core.model.tokenizer import HAMTokenizer, train_tokenizer

    path = directory / TOKENIZER
    tokenizer = HAMTokenizer.from_file(path) if path.is_file() else train_tokenizer([PARAGRAPH] * 50, 512)
    torch.manual_seed(0)
    model = HAMModel(HAMConfig(vocab_size=max(tokenizer.vocab_size, 4096))).eval()
    return model, tokenizer, f"random HAMConfig() weights ({model.num_parameters():,} parameters), tokenizer {path}"


def text_of(tokenizer, n: int) -> str:
    """A text of exactly n tokens (cut at a token boundary)."""
    source = ROOT / "assets" / "lm" / "valid_slice.txt"
    base = source.read_text() if source.is_file() else PARAGRAPH
    text = base
    while len(tokenizer.encode(text)) < n:
        text += "\n\n" + base
    tokens = tokenizer.tokenize(text)
    return text[: tokens[n - 1].end]


def timed(fn, repeats: int):
    """Median wall and CPU seconds over `repeats` runs (after one warm-up when repeats > 1)."""
    if repeats > 1:
        fn()
    wall, cpu = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[256, 1024, 4096])
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of analyze per length")
    parser.add_argument("--skip-policies", action="store_true", help="leave out the policy comparison")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model, tokenizer, what = load()
    print(f"model: {what}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f} at start")
    print(f"\n{'tokens':>7} {'measure':<26} {'forwards':>8} {'wall s':>8} {'cpu s':>8} {'per fwd s':>9} {'load':>5}")
    for n in args.lengths:
        text = text_of(tokenizer, n)
        ids = [t.id for t in tokenizer.tokenize(text)]
        runs = [("analyze", 1, lambda: analyze(model, tokenizer, text, 0.5), args.repeats)]
        counter = {"forwards": 0}

        def count(done, total):
            counter["forwards"] = done

        runs.append(("ham sweep x16", None, lambda: sweep(model, ids, DEFAULT_TAUS, ["ham"], count), 1))
        if not args.skip_policies:
            runs.append(("5 policies x 6 fractions", None,
                         lambda: fraction_sweep(model, ids, DEFAULT_FRACTIONS, COMPARED, count), 1))
        for name, forwards, fn, repeats in runs:
            counter["forwards"] = 0
            wall, cpu = timed(fn, repeats)
            forwards = forwards or counter["forwards"]
            target = TARGETS_AT_1024.get(name) if n == 1024 else None
            mark = "" if target is None else f"  (target {target:g} s: {'met' if wall <= target else 'missed'})"
            print(f"{n:>7} {name:<26} {forwards:>8} {wall:>8.2f} {cpu:>8.2f} {wall / max(forwards, 1):>9.3f} "
                  f"{os.getloadavg()[0]:>5.2f}{mark}", flush=True)


if __name__ == "__main__":
    main()
