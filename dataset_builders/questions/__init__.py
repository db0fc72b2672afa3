"""Paper-grounded question answering for the `qa` stage (dataset_builders/qa.py orchestrates it).

    records.py    the question kinds, QA pairs and per-item records, the source sentences they rest on
    templates.py  the offline writer: template answers over the labels, caption and citing excerpts
    llm.py        the GPT / Gemini / vLLM writer through fracto_core/vlm_api (quoted sentences verified)
    export.py     the second LlamaFactory ShareGPT dataset (fracto_qa_<split>), same splits as the morphology one
"""
