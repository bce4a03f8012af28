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


@pytest.fixture(scope="session")
def compare_models_dir(tmp_path_factory, tiny_model_dir):
    """assets/compare's layout: one tiny random model per architecture, one tokenizer for all."""
    import shutil

    from ham_core.analysis.compare import COMPARED_ARCHITECTURES
    from ham_core.model.checkpoint import save_checkpoint

    root = tmp_path_factory.mktemp("compare")
    for i, arch in enumerate(COMPARED_ARCHITECTURES):
        torch.manual_seed(i)
        save_checkpoint(HAMModel(tiny_config(architecture=arch)).eval(), root / arch)
        shutil.copy(tiny_model_dir / "tokenizer.json", root / arch / "tokenizer.json")
    return root


@pytest.fixture(scope="session")
def recall_models_dir(tmp_path_factory):
    """assets/compare/recall's layout: one tiny random recall-task model per architecture (the
    recall lab's sizes), in a folder named recall inside a comparison folder (its parent, what
    HAM_LAB_COMPARE names)."""
    from ham_core.analysis.compare import COMPARED_ARCHITECTURES
    from ham_core.data.recall_task import recall_config
    from ham_core.model.checkpoint import save_checkpoint

    root = tmp_path_factory.mktemp("compare_with_recall") / "recall"
    for i, arch in enumerate(COMPARED_ARCHITECTURES):
        torch.manual_seed(i)
        save_checkpoint(HAMModel(recall_config(arch)).eval(), root / arch)
    return root


def broken_model_copy(source, dest, *, tensor=None, config=None):
    """A copy of the model folder `source` at `dest` with one fault: tensor=(name, index, value)
    writes one weight (NaN or infinity), config=(field, value) one config.json field."""
    import json
    import shutil

    from safetensors.torch import load_file, save_file

    shutil.copytree(source, dest)
    if tensor is not None:
        name, index, value = tensor
        state = load_file(str(dest / "model.safetensors"))
        state[name][index] = value
        save_file(state, str(dest / "model.safetensors"))
    if config is not None:
        field, value = config
        cfg = json.loads((dest / "config.json").read_text())
        cfg[field] = value
        (dest / "config.json").write_text(json.dumps(cfg))
    return dest

