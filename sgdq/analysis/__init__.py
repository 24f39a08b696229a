"""Statistics, claims and verdicts, the scorecard, and the tables and figures of the chapters.

* :mod:`.stats` — per-run summaries, paired comparisons, confidence intervals;
* :mod:`.claims` — the paper's claims (``data/claims.yaml``) against our results;
* :mod:`.scorecard` — every claim on one page (``python -m sgdq.analysis.scorecard``);
* :mod:`.tables`, :mod:`.figures` — what the chapters show, computed here rather than in them.
"""
