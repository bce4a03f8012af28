"""Training: the training loop (`train`) and the recall-lab model's recipe (`recall_train`).
Imports ham_core.model and ham_core.data; never analysis or the command line.
"""
