"""PDF layout analysis for the mine stage (dataset_builders.mine); none of these modules imports a stage.

- captions: figure captions and citations in plain text (caption starts, panel parts, citing excerpts).
- numbers: figure numbers as text ("3", "7.5", "3-2", "S3"): normalising, ranges, JSON form.
- geometry: Box helpers (union, gaps, overlap, containment, rounding).
- text: page lines and blocks from get_text("dict"), and the caption blocks on a page.
- images: each placed image's xref, repeated publisher logos, decoding and writing images (ImageWriter).
- figures: drawing regions, clustering graphics, matching captions, merging grids, panel letters.
- tiling: separately embedded pictures that tile one rectangle (a full grid, a captioned row) as one figure.
- continued: figures continued across a page break (marked "(continued)" or not), linked to their caption.
- word: Word-export pages: margin comment balloons, broken cross-references in the body text.
- scan: scanned pages (one page image + an invisible OCR text layer): figure regions cut from the image.
- ocr: scanned pages without a text layer: OCR'd with Tesseract (PyMuPDF's get_textpage_ocr), then cut as scans.
- metadata: the paper's title and DOI.
- floor: the speed floor the build benchmark compares against (floor_pass).
- file_check: which given files are PDFs, and their paper ids (content hashes, kept for unchanged files).
"""
