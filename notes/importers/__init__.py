"""Importers and exporters: Markdown journals, paper stacks, BibTeX; export of everything back to Markdown (zip)."""
