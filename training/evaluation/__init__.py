"""Evaluation beyond one eval loss: scoring, fast generation, the automatic judge, the canary, the
blind comparisons, the cost estimate before a run, the promotion gate, and comparisons of base
models and of runs.

Lower rooms first: scoring and generation know nothing of the store; judge and canary build on
them; blind reads and writes comparisons and votes; estimate, promotion and selection sit on top.
training.evaluate (the evaluation job) uses them all, and selection borrows its prompt splitter.
"""
