"""Labelling: who turns a kept image (with its caption and citing text) into morphology-feature labels.

    base.py           the task a labeller gets, the outcome it returns, its interface and errors
    mentions.py       finds vocabulary features named in a sentence (negation, letters)
    caption_rules.py  the offline labeller: caption and citing-text rules
    schema.py         the LLM labelling prompt, its JSON schema and the reply validation
    llm.py            the GPT / Gemini / vLLM labeller through the shared OpenAI-compatible client
    registry.py       --labeler NAME -> labeller
    audit.py          agreement of two label sets (per feature, Cohen's kappa)
"""
