"""The experiments and what they share.

Shared, one of each:

* :mod:`.spec` — :class:`~.spec.OptimizerSpec`, from which every optimizer is built and named;
* :mod:`.config` — :class:`~.config.ExperimentConfig` (profile, device, seeds, validation, key)
  and the device and seed helpers;
* :mod:`.store` — :class:`~.store.ResultsStore` (load, configuration check, atomic write, lock,
  provenance history);
* :mod:`.provenance` — the provenance builder (commit, device, versions);
* :mod:`.notebook` — the chapters' parameters and profile settings.

The experiments: :mod:`.synthetic` and :mod:`.text_classification` (experiment 1, Table II),
:mod:`.gsm8k` and :mod:`.llm_finetuning` (experiment 2, Table III), :mod:`.ablations`,
:mod:`.toy` (small problems) and :mod:`.benchmark` (the timing suite).
"""
