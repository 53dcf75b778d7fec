"""Tests of semiadv.export.models_config: TF Serving's list of the models under a base path."""

from semiadv.export import models_config


def test_models_config_lists_every_model_with_a_version(tmp_path):
    (tmp_path / "empty_model").mkdir()  # No version yet: not served.
    (tmp_path / "other" / "3").mkdir(parents=True)
    (tmp_path / "san" / "1").mkdir(parents=True)
    (tmp_path / "san" / ".incomplete-2-abc").mkdir()  # An export being written.
    (tmp_path / ".hidden" / "1").mkdir(parents=True)
    path = models_config.write_models_config(tmp_path)
    assert path == tmp_path.resolve() / models_config.MODELS_CONFIG
    base = tmp_path.resolve()
    assert path.read_text() == (
        "model_config_list {\n"
        "  config {\n"
        '    name: "other"\n'
        f'    base_path: "{base / "other"}"\n'
        '    model_platform: "tensorflow"\n'
        "  }\n"
        "  config {\n"
        '    name: "san"\n'
        f'    base_path: "{base / "san"}"\n'
        '    model_platform: "tensorflow"\n'
        "  }\n"
        "}\n")
    # Written atomically: no temporary file is left beside it.
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == [".hidden"]
