"""Synthetic Jakarta social-assistance registries with ground truth (see docs/synthetic-data.md).

from satudata_pipeline.synthetic import generate
summary = generate(persons=4000, seed=20261101, out=Path("data"))
"""

from .generate import generate

__all__ = ["generate"]
