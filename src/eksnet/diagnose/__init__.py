"""Diagnosis of imported clusters: what a node holds against what its controllers would write
(`drift`, `eksnet check`), and why a walk drops (`explain`, `eksnet walk … --explain`).

It sits on `importers` (the dumps' views) and `render` (and so on the walk engine): a finding's
consequences are found by walking.
"""
