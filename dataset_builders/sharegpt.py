"""The LlamaFactory ShareGPT layout the exports share: the image placeholder and the dataset_info.json entry.

Kept apart from dataset_builders.export (the build's export stage) so the Hugging Face export and the question
export can name the layout without importing the stage and everything it imports (0.3 s of CPU per command).

Usage:
    from dataset_builders.sharegpt import IMAGE_TAG, dataset_info_entry
    info["fracto_train"] = dataset_info_entry("fracto_train.json")
"""

from __future__ import annotations

IMAGE_TAG = "<image>"  # where LlamaFactory's mm_plugin puts the image in a message


def dataset_info_entry(file_name: str) -> dict:
    """dataset_info.json entry; keys as llamafactory.data.parser.DatasetAttr.join reads them."""
    return {
        "file_name": file_name,
        "formatting": "sharegpt",
        "columns": {"messages": "messages", "images": "images"},
        "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"},
    }
