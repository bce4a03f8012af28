"""Data: the English corpus, token streams cut into training windows, and the synthetic recall
task. Depends on ham_core.model at most (the recall task's model config); never on analysis,
training or the command line.
"""
