"""Evaluation of frozen features: kNN top-1 and a linear probe."""
from .knn import extract_features, knn_top1, make_encoder, pool_tokens
from .linear_probe import linear_probe

__all__ = ['extract_features', 'knn_top1', 'linear_probe', 'make_encoder', 'pool_tokens']
