"""PDF layout analysis for the mine stage: figures, captions, citing excerpts, DOI and title."""
