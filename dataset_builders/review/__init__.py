"""Expert review of a build: Label Studio export/import (label_studio, importer), the review sample, the static
gallery. Entry point: ``python -m dataset_builders.review export|import|gallery``."""
