"""Similarity: MinHash and embeddings, their cache in the store, duplicate clusters and the live check."""
