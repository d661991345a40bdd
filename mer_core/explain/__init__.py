"""Explanations: Captum attributions, the models' own attention, localisation scores.

Layer: above training (it loads the fold checkpoints a run stored), below
jobs (explanation reports run as background jobs).

* :mod:`.attributions` — ``explain(model, sample, target, method, **options)``
  (Integrated Gradients, Saliency, Grad-CAM, Occlusion, SmoothGrad) returning
  maps at the input's size, per channel and combined;
* :mod:`.attention` — ``model_attention(model, sample)``: the model's own
  ``attention_maps`` resized to the input;
* :mod:`.localisation` — scores of a map against synthetic ground-truth masks (mass on AUs and blinks,
  pointing game, relevance rank accuracy, ROC AUC, top-K IoU);
* :mod:`.faithfulness` — deletion/insertion and ROAD curves, Captum's infidelity and max-sensitivity;
* :mod:`.sanity` — cascading model-parameter randomisation (Spearman, SSIM), map rank correlation;
* :mod:`.report` — the run-level explanation report (per method, 95% intervals over clips, cached JSON);
* :mod:`.compare` — two runs' reports compared, paired over shared clips, with a sentence;
* :mod:`.runs` — ``RunExplainer(run_id)``: honest (held-out fold) and cached
  explanations of a stored run's samples, failure cases, localisation tables.
"""
from mer_core.explain.attention import AttentionResult, model_attention
from mer_core.explain.attributions import METHODS, Explainer, Explanation, explain
from mer_core.explain.localisation import aggregate_scores, score_map

__all__ = ["METHODS", "AttentionResult", "Explainer", "Explanation", "aggregate_scores", "explain",
           "model_attention", "score_map"]
