"""Analysis: what a trained model does with a text (`analyze`), loss against cache size over
thresholds and policies (`sweep`), recall-lab accuracy (`recall`) and the model card's tables
(`evaluate`). Imports ham_core.model and ham_core.data; never training or the command line.
"""
from .analysis import Analysis, Reads, analyze

__all__ = ["Analysis", "Reads", "analyze"]
