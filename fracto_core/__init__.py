"""The shared core: what the dataset builder, training and evaluation all read.

    vocabulary.py     the morphology vocabulary (canonical names, synonyms, rare flags, mechanism hints)
    phrases.py        the one phrase matcher: vocabulary phrases found in free text (captions, excerpts)
    answer_format.py  the instruction prompt, the answer format and its parsing
    image_budget.py   the image pixel budget (one constant) and the image-token arithmetic of Qwen3-VL
    files.py          crash-safe (atomic) writers and typed JSON/JSONL readers
    vlm_api/          the OpenAI-compatible client (GPT, Gemini, vLLM), its response cache and prices

Nothing here imports from dataset_builders, training or eval.
"""
