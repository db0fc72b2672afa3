"""FractoVLM dataset builders: scientific PDFs -> LlamaFactory fractography dataset."""

import sys

# PyMuPDF 2.0 depends on pymupdf_layout and pymupdf4llm and imports both with `import pymupdf`
# (pymupdf/__init__.py as installed: `try: import pymupdf.layout except ImportError: pass`, and the same for
# pymupdf4llm). They bring ONNX Runtime and its sessions: measured here, `import pymupdf` took 0.93 s,
# 141 MiB and 6 threads with them, 0.10 s, 47 MiB and 1 thread without, in every build process. The
# builders use neither Page.get_layout() nor pymupdf.to_markdown/to_text/to_json (their only users), so
# both imports are refused and PyMuPDF runs as it does when they are not installed. A process that
# imported them before this package keeps them.
for _optional in ("pymupdf.layout", "pymupdf4llm"):
    sys.modules.setdefault(_optional, None)  # type: ignore[arg-type]
