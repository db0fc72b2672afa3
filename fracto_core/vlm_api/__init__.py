"""Generic OpenAI-compatible vision-language API machinery (knows nothing about labelling).

Shared by the LLM labellers (``dataset_builders.labelling.llm``) and the evaluation harness:

- ``backends``: provider presets (openai, gemini, vllm), the per-model parameter dialect, keys from the
  environment at call time;
- ``payloads``: image encoding at the training pixel budget, chat-completions request bodies, the request
  fingerprint (cache key);
- ``client``: many requests through the official ``openai`` SDK (AsyncOpenAI), bounded concurrency,
  429/5xx/timeout retries with backoff + jitter, budget cap, failures as values;
- ``cache``: crash-safe response cache (SQLite WAL) keyed by the fingerprint;
- ``pricing``: a dated, editable price table, cost from usage, dry-run estimates.

Usage:
    from fracto_core.image_budget import IMAGE_MAX_PIXELS
    from fracto_core.vlm_api import backends, client, payloads
    endpoint = backends.Endpoint.create("openai", "gpt-5.2")     # OPENAI_API_KEY is read when a request is sent
    image = payloads.ImageInput.from_path(Path("panel.jpg"), max_pixels=IMAGE_MAX_PIXELS)
    req = payloads.build_request("item-1", endpoint, [image, "Which features?"],
                                 backends.GenerationParams(reasoning_effort="high"), prompt_version="v1")
    results, summary = client.run_requests(endpoint, [req], client.ClientOptions(concurrency=8))
"""
