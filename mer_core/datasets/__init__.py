"""Datasets: the sample-table schema, class sets and one indexer per dataset.

Layer: above the store, below preprocessing; it turns folders and coding
sheets into a plain table and knows nothing of models or training.

Importing this package registers the built-in indexers.
"""
from mer_core.datasets.registry import dataset_info, index_dataset, list_datasets, register_dataset  # noqa: F401
from mer_core.datasets.schema import make_table, validate_table  # noqa: F401
from mer_core.datasets.classes import LABEL_SYNONYMS, normalise_label  # noqa: F401
from mer_core.datasets import manifest  # noqa: F401,E402
from mer_core.datasets import casme2, samm, smic, composite, casme3, check  # noqa: F401,E402
from mer_core.datasets import synthetic  # noqa: F401,E402
