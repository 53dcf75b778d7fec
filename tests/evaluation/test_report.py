"""The report: its gender verdict reads only foreign classifiers, its identity verdict only
unseen matchers; ROC legends."""

import numpy as np

from semiadv.evaluation import metrics


def _entry(seen, relation=None, **conditions):
    entry = {"origin": "x", "seen": seen, "conditions": conditions}
    if relation:
        entry["relation"] = relation
    return entry


def _metrics(gender_op_errors, matcher_tmrs):
    """A metrics dict: classifiers' (relation, error on OP), matchers' (seen, original TMR, OP
    TMR)."""
    gender = {name: _entry(relation == "seen", relation, original={"error_rate": 0.1},
                           opposite={"error_rate": error})
              for name, (relation, error) in gender_op_errors.items()}
    matchers = {name: _entry(seen, original={"tmr_at_fmr": {"0.01": original}},
                             opposite={"tmr_at_fmr": {"0.01": opposite}})
                for name, (seen, original, opposite) in matcher_tmrs.items()}
    return {"gender": gender, "matching": {"matchers": matchers}}


def test_verdict_reads_only_the_foreign_classifiers_and_unseen_matchers():
    from semiadv.evaluation import report

    result = _metrics({"aux": ("seen", 0.99), "indep": ("sibling", 0.20),
                       "cloud": ("foreign", 0.30), "hog": ("foreign", 0.45)},
                      {"aux m": (True, 0.9, 0.9), "weak": (False, 0.05, 0.01),
                       "onnx": (False, 0.80, 0.32)})
    gender = report.gender_verdict(result)
    # The foreign classifier that still reads gender best decides: 30% is only partly hidden;
    # the sibling's lower 20% does not count.
    assert gender.startswith("**Is gender hidden from foreign classifiers?** Partly")
    assert "at least 30.0%" in gender and "cloud 30.0%, 10.0% on the originals" in gender
    assert "hog 45.0%" in gender and "aux" not in gender and "indep" not in gender
    identity = report.identity_verdict(result)
    # The strongest foreign matcher (not the seen one at 100% kept): 0.32 / 0.80 = 40% kept.
    assert "** No: the strongest of them (onnx) keeps 40.0%" in identity
    # A sibling matcher, however strong, does not count.
    result["matching"]["matchers"]["indep m"] = _entry(
        False, "sibling", original={"tmr_at_fmr": {"0.01": 0.95}},
        opposite={"tmr_at_fmr": {"0.01": 0.94}})
    assert "(onnx) keeps 40.0%" in report.identity_verdict(result)
    del result["matching"]["matchers"]["onnx"], result["matching"]["matchers"]["weak"]
    assert "Unknown: no foreign matcher" in report.identity_verdict(result)
    result = _metrics({"cvlib": ("foreign", 0.52)}, {"onnx": (False, 0.80, 0.78)})
    assert "** Yes:" in report.gender_verdict(result)
    assert "** Yes:" in report.identity_verdict(result)  # 97.5% kept.
    # Only a seen and a sibling classifier: no verdict, and the flag that would give one.
    result = _metrics({"aux": ("seen", 0.9), "indep": ("sibling", 0.6)},
                      {"weak": (False, 0.05, 0.05)})
    verdict = report.gender_verdict(result)
    assert "Unknown: no foreign classifier" in verdict and "--gender_classifier=" in verdict
    # A foreign classifier that cannot read gender on the originals says nothing about OP.
    result["gender"]["coin"] = _entry(False, "foreign", original={"error_rate": 0.5},
                                      opposite={"error_rate": 0.5})
    verdict = report.gender_verdict(result)
    assert "Unknown: no foreign classifier read gender on the originals" in verdict
    assert "Unknown: the strongest" in report.identity_verdict(result)
    # Metrics written before relations existed: unseen entries count as foreign.
    old = {"gender": {"plug": _entry(False, original={"error_rate": 0.1},
                                     opposite={"error_rate": 0.42})}}
    assert "** Yes:" in report.gender_verdict(old)


def test_roc_legends_carry_the_auc_and_name_hidden_twins(tmp_path):
    from semiadv.evaluation import report

    curve = metrics.roc_curve(np.array([0.9, 0.8, 0.3]), np.array([0.7, 0.2]))
    other = metrics.roc_curve(np.array([0.9, 0.8]), np.array([0.85, 0.1]))
    curves = {"original": other, "same": curve, "neutral": curve, "opposite": other}
    labels = report.roc_legend(curves)
    assert labels["same"] == "SM (AUC 0.833)"  # 5 of 6 positive-negative pairs ordered.
    assert labels["neutral"] == "NT (AUC 0.833), same as SM"
    assert labels["opposite"] == "OP (AUC 0.750), same as original"
    report.plot_roc(tmp_path / "roc.png", "t", curves, "x", "y")
    assert (tmp_path / "roc.png").stat().st_size > 0
