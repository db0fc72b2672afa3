"""FractoVLM evaluation harness (scores served models and API baselines)."""
