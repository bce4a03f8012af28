"""Analysis: what a trained model does with a text (`analyze`), loss against cache size over
thresholds and policies (`sweep`), recall-lab accuracy (`recall`) and the model card's tables
(`evaluate`). Imports ham_core.model and ham_core.data; never training or the command line.
"""
__all__ = ["Analysis", "Reads", "analyze"]


def __getattr__(name: str):
    # Imported on first use (torch), so the torch-free readmap can be imported alone.
    if name in __all__:
        from . import analysis

        return getattr(analysis, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
