"""FractoVLM dataset builders: scientific PDFs -> LlamaFactory fractography dataset."""
