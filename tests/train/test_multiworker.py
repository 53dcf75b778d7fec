"""MultiWorkerMirroredStrategy: two local worker processes train like one, only the chief writes.

Each worker is a real process (`tests/_worker.py`) with one CPU device and its own TMPDIR, so
the cluster has two replicas and each worker reads 4 of every global batch of 8.
"""

import os

import numpy as np
import pytest
import tensorflow as tf

import _worker
from semiadv.train import distribute
from semiadv.train import trainer

STEPS = 4


def files_under(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_two_workers_train_like_one_and_only_the_chief_writes(tmp_path):
    workdir = tmp_path / "work"
    workers = _worker.launch_cluster(
        tmp_path, [f"--stage_dir={workdir / 'san'}", f"--steps={STEPS}", "--checkpoint_every=2",
                   "--steps_per_loop=1"])
    # Meanwhile, the same run on one device in this process.
    reference = _worker.one_device_reference(tmp_path / "reference", STEPS)
    _worker.wait_all(workers)

    chief, other = (_worker.load_weights(tmp_path / f"run-weights{i}.npz") for i in range(2))
    for a, b in zip(chief, other):
        np.testing.assert_array_equal(a, b)  # Same all-reduced gradients on both workers.
    initial = _worker.san_task(_worker.tiny_config(tmp_path, STEPS)).build().get_weights()
    moved = False
    for multi, single, before in zip(chief, reference.model.get_weights(), initial):
        np.testing.assert_allclose(multi, single, rtol=1e-4, atol=1e-5)
        moved |= not np.allclose(multi, before, atol=1e-4)
    assert moved, "the autoencoder did not learn"
    for index in range(2):
        assert f"done worker{index} steps=[1, 2, 3, 4]" in workers[index].output()

    # Only the chief's artefacts are in the work dir; the other worker's scratch is gone.
    files = files_under(workdir)
    assert [f for f in files if not f.startswith("san/logs/")] == [
        "san/ckpt/checkpoint", "san/ckpt/ckpt-2.data-00000-of-00001", "san/ckpt/ckpt-2.index",
        "san/ckpt/ckpt-4.data-00000-of-00001", "san/ckpt/ckpt-4.index", "san/model.keras"]
    assert len([f for f in files if f.startswith("san/logs/")]) == 1  # The chief's event file.
    assert os.listdir(tmp_path / "tmp-worker0") == []
    assert os.listdir(tmp_path / "tmp-worker1") == []
    # The chief's model.keras holds the trained weights.
    saved = tf.keras.models.load_model(workdir / "san" / trainer.FINAL_MODEL, safe_mode=True)
    for a, b in zip(saved.get_weights(), chief):
        np.testing.assert_array_equal(a, b)


def test_multi_worker_strategy_reads_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    monkeypatch.delenv("SLURM_PROCID", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG"):
        distribute.make_strategy("multi_worker")


class FakeResolver:
    def __init__(self, cluster, task_type, task_id):
        self._cluster, self.task_type, self.task_id = cluster, task_type, task_id

    def cluster_spec(self):
        return tf.train.ClusterSpec(self._cluster)


class FakeStrategy:
    def __init__(self, resolver):
        self.cluster_resolver = resolver


@pytest.mark.parametrize("cluster, task, chief", [
    ({"worker": ["a:1", "b:1"]}, ("worker", 0), True),
    ({"worker": ["a:1", "b:1"]}, ("worker", 1), False),
    ({"chief": ["c:1"], "worker": ["a:1"]}, ("chief", 0), True),
    ({"chief": ["c:1"], "worker": ["a:1"]}, ("worker", 0), False),
    ({}, (None, None), True),
])
def test_only_the_chief_keeps_files(tmp_path, cluster, task, chief):
    strategy = FakeStrategy(FakeResolver(cluster, *task))
    assert distribute.is_chief(strategy) is chief
    with distribute.saving_dir(strategy, tmp_path / "kept") as target:
        assert (target == tmp_path / "kept") is chief
        target.mkdir(parents=True, exist_ok=True)
        (target / "model.keras").write_text("x")
    assert (tmp_path / "kept" / "model.keras").exists() is chief
    if not chief:
        assert not target.exists()


def test_slurm_job_step_gives_the_cluster(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")  # No nvidia-smi: CPU nodes.
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("SLURM_STEP_NUM_TASKS", "4")
    monkeypatch.setenv("SLURM_STEP_NODELIST", "node[07-08]")
    monkeypatch.setenv("SLURM_STEP_TASKS_PER_NODE", "2(x2)")
    specs = {}
    for rank in range(4):
        monkeypatch.setenv("SLURM_PROCID", str(rank))
        resolver = distribute.slurm_cluster_resolver()
        specs[rank] = resolver.cluster_spec().as_dict()
        assert (resolver.task_type, resolver.task_id) == ("worker", rank)
        assert distribute.is_chief(FakeStrategy(resolver)) is (rank == 0)
    assert specs[0] == specs[3] == {
        "worker": ["node07:8888", "node07:8889", "node08:8888", "node08:8889"]}
    assert "CUDA_VISIBLE_DEVICES" not in os.environ
