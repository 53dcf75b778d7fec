"""The evaluators of a run: the work dir's networks are seen, ensemble members in order."""

from semiadv.evaluation import evaluators as evaluators_lib


def test_work_dir_networks_are_seen_with_ensemble_members_in_order(tmp_path):
    from semiadv.models import gender_classifiers, matchers

    gender = gender_classifiers.build_gender_classifier(16, 3, width=0.125)
    for stage in ("gender", "gender_1", "gender_2", "gender_10"):
        (tmp_path / stage).mkdir()
        gender.save(tmp_path / stage / "model.keras")
    (tmp_path / "matcher").mkdir()
    matchers.build_matcher(16, 3, embedding_dim=8, width=0.125).save(
        tmp_path / "matcher" / "model.keras")
    evaluators = evaluators_lib.auxiliary_evaluators(str(tmp_path))
    assert [(e.name, e.kind, e.origin) for e in evaluators] == [
        ("auxiliary CNN", "gender", "auxiliary"),
        ("ensemble member 1", "gender", "ensemble"),
        ("ensemble member 2", "gender", "ensemble"),
        ("ensemble member 10", "gender", "ensemble"),
        ("auxiliary matcher", "matcher", "auxiliary")]
    assert all(evaluators_lib.is_seen(e) for e in evaluators)
