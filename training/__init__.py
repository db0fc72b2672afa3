"""FractoVLM training side: recipe loading and checks, run cards, serving arguments, the CPU smoke run."""
