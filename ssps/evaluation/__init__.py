"""Evaluation and reporting: ``ssps eval``, ``ssps calibrate``, ``ssps report``.

- ``embedding``: embed each file once (batched ONNX Runtime calls, on-disk cache); a
  training run directory is exported to a model directory first.
- ``trials``: score trial lists (cosine, AS-norm, S-norm) and write score files.
- ``normalization``: S-norm and AS-norm against a cohort.
- ``calibration``: logistic calibration and thresholds, written to config.json.
- ``plots``: DET, score histograms, t-SNE, intra-speaker similarity, NMI and EER curves.
- ``report``: the Markdown comparison table of training runs.
- ``cli``: the three commands.

The metrics themselves live in ``ssps.metrics`` (EER, minDCF) and ``ssps.scoring``
(actual DCF, Cllr, operating points). Nothing here imports torch; only ``plots`` needs
matplotlib (and scikit-learn for t-SNE), and only when a picture is asked for.
"""
