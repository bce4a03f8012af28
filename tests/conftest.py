"""Shared fixtures: a tiny random HAM model (and a tiny tokenizer) that any test can load fast."""
from __future__ import annotations

import pytest
import torch

from ham_core.model.config import HAMConfig
from ham_core.model.model import HAMModel

SAMPLE_TEXT = (
    "Marguerite Okonkwo kept the lighthouse on Skerry Point. Every night she wrote the date, "
    "the wind and the ships she saw. On 12 March 1921 the steamer Aldebaran passed at 9:40, "
    "and Marguerite wrote its name twice. The keeper's log is kept in the museum today.\n"
    "def add(a, b):\n    return a + b\n"
    "The cat sat on the mat. The cat sat on the mat. The cat sat on the mat.\n"
)


def tiny_config(vocab_size: int = 320, **overrides) -> HAMConfig:
    base = dict(
        vocab_size=vocab_size, d_model=32, n_layers=2, n_heads=2, head_dim=16,
        mlp_hidden=64, chunk_size=8, max_tokens=512,
    )
    base.update(overrides)
    return HAMConfig(**base)


@pytest.fixture(scope="module")
def one_thread():
    """Run a module's tests on one torch thread, then restore the count. Tiny tensors gain
    nothing from a second thread, and on a busy machine every op's thread hand-off can cost a
    scheduler slice (the core tests ran 10x slower on two threads under load)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny_model() -> HAMModel:
    torch.manual_seed(0)
    return HAMModel(tiny_config()).eval()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A folder with model.safetensors, config.json and tokenizer.json of a tiny random model."""
    from ham_core.model.checkpoint import save_checkpoint
    from ham_core.model.tokenizer import train_tokenizer

    directory = tmp_path_factory.mktemp("tiny_model")
    tokenizer = train_tokenizer([SAMPLE_TEXT] * 4, vocab_size=320, out_path=directory / "tokenizer.json")
    torch.manual_seed(0)
    model = HAMModel(tiny_config(vocab_size=tokenizer.vocab_size)).eval()
    save_checkpoint(model, directory)
    return directory
