"""Triton kernels equal their PyTorch references (float32, 1e-4), run in Triton's interpreter.

There is no GPU here: TRITON_INTERPRET=1 runs the kernels on CPU tensors. Triton reads it when
a function is decorated with @triton.jit, its own library's functions included, i.e. when
`triton` is first imported; so it is set below before anything imports triton. (Nothing in
ham_core imports triton at module level, so collection order in the suite does not matter.)
A last test compiles every kernel for a real GPU (sm_80) with Triton's bundled ptxas, in a
fresh process without the interpreter, because the interpreter accepts code the GPU compiler
would reject.
"""
from __future__ import annotations

import os

os.environ["TRITON_INTERPRET"] = "1"

import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import kernels  # noqa: E402
from ham_core.model import dispatch  # noqa: E402
from ham_core.model.ops import (  # noqa: E402
    cache_attention,
    gated_delta_rule_chunked,
    gated_delta_rule_recurrent,
    selective_attention,
)
from triton.runtime.interpreter import InterpretedFunction  # noqa: E402

if not isinstance(kernels.delta_rule_recurrent._recurrent_kernel, InterpretedFunction):
    raise RuntimeError(
        "triton was imported before tests/test_kernels.py could set TRITON_INTERPRET=1; "
        "run the suite with TRITON_INTERPRET=1 in the environment"
    )

ROOT = Path(__file__).resolve().parents[2]
ATOL = RTOL = 1e-4


def close(got, want, what):
    torch.testing.assert_close(got, want, atol=ATOL, rtol=RTOL, msg=lambda m: f"{what}: {m}")


def rnn_inputs(B, T, H, Dk, Dv, init, seed=0, max_decay=4.0):
    """Unit q, k; gates from weak to strong decay (g down to -max_decay), weak to full writes."""
    gen = torch.Generator().manual_seed(seed)
    q = F.normalize(torch.randn(B, T, H, Dk, generator=gen), dim=-1)
    k = F.normalize(torch.randn(B, T, H, Dk, generator=gen), dim=-1)
    v = torch.randn(B, T, H, Dv, generator=gen)
    g = -max_decay * torch.rand(B, T, H, generator=gen) ** 3
    beta = torch.rand(B, T, H, generator=gen)
    h0 = torch.randn(B, H, Dk, Dv, generator=gen) * 0.5 if init else None
    return q, k, v, g, beta, h0


def check_rnn(got, want):
    for name in ("out", "surprise", "final_state", "residual"):
        close(getattr(got, name), getattr(want, name), name)


# (B, T, H, Dk, Dv, initial state): T = 1, T short and not a multiple of any block, several heads.
RNN_CASES = [
    (1, 1, 1, 16, 16, False),
    (2, 1, 2, 32, 32, True),
    (1, 13, 2, 16, 16, True),
    (2, 21, 3, 32, 32, False),
    (1, 9, 2, 64, 64, True),
    (1, 7, 2, 16, 32, False),
]
CHUNK_CASES = [  # plus the chunk size asked for
    (1, 1, 1, 16, 16, False, 16),
    (1, 13, 2, 32, 32, True, 16),
    (2, 40, 2, 16, 16, True, 16),
    (1, 37, 3, 64, 64, False, 32),
    (1, 70, 2, 64, 64, True, 64),
    (1, 19, 2, 16, 32, True, 8),
]


def rnn_id(case):
    B, T, H, Dk, Dv, init = case[:6]
    d = f"D{Dk}" if Dk == Dv else f"D{Dk}x{Dv}"
    return f"B{B}-T{T}-H{H}-{d}" + ("-h0" if init else "") + (f"-C{case[6]}" if len(case) > 6 else "")


@pytest.mark.parametrize("case", RNN_CASES, ids=rnn_id)
def test_fused_recurrent_matches_reference(case):
    q, k, v, g, beta, h0 = rnn_inputs(*case)
    check_rnn(kernels.fused_recurrent_gated_delta_rule(q, k, v, g, beta, h0),
              gated_delta_rule_recurrent(q, k, v, g, beta, h0))


@pytest.mark.parametrize("case", CHUNK_CASES, ids=rnn_id)
def test_chunked_matches_reference(case):
    *shape, C = case
    q, k, v, g, beta, h0 = rnn_inputs(*shape)
    got = kernels.chunk_gated_delta_rule(q, k, v, g, beta, h0, chunk_size=C)
    check_rnn(got, gated_delta_rule_chunked(q, k, v, g, beta, h0, chunk_size=C))
    check_rnn(got, gated_delta_rule_recurrent(q, k, v, g, beta, h0))


@pytest.mark.parametrize("form", ["recurrent", "chunked"])
def test_strong_decay_keeps_the_prediction(form):
    """alpha_t down to e^-40: the surprise still compares S_{t-1}^T k_t with v_t (a decayed
    alpha_t S_{t-1}^T k_t would underflow and read as "no prediction", surprise 1)."""
    q, k, v, g, beta, h0 = rnn_inputs(1, 21, 2, 16, 16, True, seed=3, max_decay=40.0)
    if form == "recurrent":
        got = kernels.fused_recurrent_gated_delta_rule(q, k, v, g, beta, h0)
    else:
        got = kernels.chunk_gated_delta_rule(q, k, v, g, beta, h0, chunk_size=16)
    check_rnn(got, gated_delta_rule_recurrent(q, k, v, g, beta, h0))


def make_visible(kind, B, T, gen):
    if kind == "full":
        return torch.ones(B, T, dtype=torch.bool)
    if kind == "empty":
        return torch.zeros(B, T, dtype=torch.bool)
    if kind == "sparse":
        return torch.rand(B, T, generator=gen) < 0.25
    if kind == "query_key":  # e.g. a sliding window or another policy's per-query keys
        return torch.rand(B, T, T, generator=gen) < 0.4
    if kind == "window":     # the recent-window policy: query t reads t-4 .. t
        t = torch.arange(T)
        return ((t[:, None] - t[None, :]) < 5).expand(B, T, T)
    raise ValueError(kind)


ATTN_SHAPES = [(1, 1, 1, 16), (2, 13, 2, 32), (1, 40, 3, 64), (2, 70, 2, 16)]
MASKS = ["full", "empty", "sparse", "query_key", "window"]


@pytest.mark.parametrize("mask", MASKS)
@pytest.mark.parametrize("shape", ATTN_SHAPES, ids=lambda s: "B{}-T{}-H{}-D{}".format(*s))
def test_selective_attention_matches_reference(shape, mask):
    B, T, H, D = shape
    gen = torch.Generator().manual_seed(T)
    q = F.normalize(torch.randn(B, T, H, D, generator=gen), dim=-1)
    k = F.normalize(torch.randn(B, T, H, D, generator=gen), dim=-1)
    v = torch.randn(B, T, H, D, generator=gen)
    temperature = 1.0 + 15.0 * torch.rand(H, generator=gen)  # sharp heads test the online max
    visible = make_visible(mask, B, T, gen)
    got = kernels.selective_attention(q, k, v, visible, temperature)
    assert got.weights is None and got.sink is None
    close(got.out, selective_attention(q, k, v, visible, temperature).out, "out")


@pytest.mark.parametrize("shape", [(0, 2, 16), (1, 1, 16), (5, 3, 32), (70, 2, 64)],
                         ids=lambda s: "n{}-H{}-D{}".format(*s))
def test_cache_attention_matches_reference(shape):
    n, H, D = shape
    gen = torch.Generator().manual_seed(n)
    q = F.normalize(torch.randn(H, D, generator=gen), dim=-1)
    keys = F.normalize(torch.randn(n, H, D, generator=gen), dim=-1)
    values = torch.randn(n, H, D, generator=gen)
    temperature = 1.0 + 15.0 * torch.rand(H, generator=gen)
    close(kernels.cache_attention(q, keys, values, temperature),
          cache_attention(q, keys, values, temperature), "out")


def test_kernels_refuse_cpu_tensors_outside_the_interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    q, k, v, g, beta, _ = rnn_inputs(1, 3, 1, 16, 16, False)
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET"):
        kernels.fused_recurrent_gated_delta_rule(q, k, v, g, beta)


def test_attention_kernel_does_not_return_weights():
    q = torch.zeros(1, 2, 1, 16)
    with pytest.raises(ValueError, match="weights"):
        kernels.selective_attention(q, q, q, torch.ones(1, 2, dtype=torch.bool), torch.ones(1), True)


def test_dispatch_modes(monkeypatch):
    x = torch.zeros(2)
    monkeypatch.setenv("HAM_KERNELS", "auto")
    assert not dispatch.use_kernels(x)                    # CPU never touches the kernels
    assert dispatch.device_label("cpu") == "CPU"
    monkeypatch.setenv("HAM_KERNELS", "reference")
    assert not dispatch.use_kernels(x)
    monkeypatch.setenv("HAM_KERNELS", "triton")
    assert dispatch.use_kernels(x)
    assert not dispatch.use_kernels(x, torch.zeros(2, requires_grad=True))  # forward only
    with torch.no_grad():
        assert dispatch.use_kernels(x, torch.zeros(2, requires_grad=True))


def run_model(model, monkeypatch, path, **kwargs):
    monkeypatch.setenv("HAM_KERNELS", path)
    with torch.no_grad():
        return model(**kwargs)


@pytest.mark.parametrize("mode", ["chunked", "recurrent"])
def test_whole_model_same_on_kernel_path(tiny_model, monkeypatch, mode):
    """Tiny model, two texts of 37 tokens; HAM thresholds that cache all, some (per layer) and
    none, and a sliding-window policy: logits, surprise, cached masks and final states match.
    (The recurrent form is slow in the interpreter: it runs the partial-cache case only.)"""
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(0, tiny_model.cfg.vocab_size, (2, 37), generator=gen)
    (B, T), L = ids.shape, tiny_model.cfg.n_layers
    t = torch.arange(T)
    window = ((t[:, None] - t[None, :]) < 6).expand(B, L, T, T)
    runs = [dict(tau=[0.6, 0.9])]
    if mode == "chunked":
        runs += [dict(tau=0.0), dict(tau=3.0), dict(visibility=window)]
    for kwargs in runs:
        want = run_model(tiny_model, monkeypatch, "reference", ids=ids, mode=mode, **kwargs)
        got = run_model(tiny_model, monkeypatch, "triton", ids=ids, mode=mode, **kwargs)
        close(got.logits, want.logits, f"logits {kwargs}")
        close(got.surprise, want.surprise, f"surprise {kwargs}")
        assert torch.equal(got.cached, want.cached), kwargs
        for a, b in zip(got.final_states, want.final_states):
            close(a, b, "final state")
        if kwargs.get("tau") == [0.6, 0.9]:  # routing really was exercised: some, not all
            assert 0 < want.cached.float().mean() < 1


def test_decode_same_on_kernel_path(tiny_model, monkeypatch):
    """Compact-cache decoding (recurrent kernel with carried state + the decode kernel)."""
    from ham_core.model import decode

    results = {}
    for path in ("reference", "triton"):
        monkeypatch.setenv("HAM_KERNELS", path)
        mem = decode.start(tiny_model, tau=0.8)
        results[path] = [decode.step(tiny_model, mem, tok) for tok in (5, 17, 3, 99, 5, 17, 42, 8)]
        results[path + "-sizes"] = mem.cache_sizes()
    assert results["reference-sizes"] == results["triton-sizes"]
    for got, want in zip(results["triton"], results["reference"]):
        close(got.logits, want.logits, "logits")
        close(got.surprise, want.surprise, "surprise")
        assert torch.equal(got.cached, want.cached)


def test_kernels_compile_for_a_gpu():
    """Every kernel goes through the real Triton compiler down to sm_80 machine code."""
    env = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = str(ROOT)
    code = "from kernels.bench import compile_kernels; print(compile_kernels(head_dim=32, chunk=16))"
    run = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True)
    if "ptxas" in run.stderr and "not found" in run.stderr.lower():
        pytest.skip("this Triton install has no ptxas")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "decode attention" in run.stdout


def test_query_gain_same_on_kernel_path(tiny_model, monkeypatch):
    """A model with the attention's per-channel query gain: its queries are no longer unit
    vectors, and the kernels score them as the reference does."""
    from tests.model.test_score_gain import gained_copy

    model = gained_copy(tiny_model, seed=4)
    ids = torch.randint(0, model.cfg.vocab_size, (2, 37), generator=torch.Generator().manual_seed(2))
    want = run_model(model, monkeypatch, "reference", ids=ids, tau=[0.6, 0.9])
    got = run_model(model, monkeypatch, "triton", ids=ids, tau=[0.6, 0.9])
    close(got.logits, want.logits, "logits")
    assert torch.equal(got.cached, want.cached)
