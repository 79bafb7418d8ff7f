"""Examples: the review workflow, the review queue, taxonomy and guidelines, guideline rules and model drafts."""
