"""RunInference over one signature of an export."""

from __future__ import annotations

import logging
import time

import numpy as np
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from semiadv.export import locate
from semiadv.perturb.beam import worker


class _LoadedSignature:
    """The loaded SavedModel and one of its signatures, as one object: RunInference keeps
    a weak reference to the model (a tuple cannot have one), and the signature reads the
    SavedModel's variables, so both must live together."""

    def __init__(self, loaded, signature):
        self.loaded = loaded
        self.signature = signature


class SignatureModelHandler(ModelHandler):
    """RunInference over one signature of an export: faces [H, W, C] in, dicts out; or, for
    the photo output, `semiadv.perturb.photoprep.PhotoFaces` in (every face of a batch of
    photos goes in one call), dicts with each photo's perturbed faces and scores out, the
    PhotoFaces carried on as the result's example (the write-back needs it).

    The stock TF handler calls a model, not a named signature with a keyword input, hence
    this handler. The SavedModel is loaded once per worker process (RunInference shares
    it between the worker's threads) and batches are exactly `batch_size` photos except
    at the end of a bundle.
    """

    def __init__(self, export, prototype, batch_size, photo_output=False):
        super().__init__(min_batch_size=batch_size, max_batch_size=batch_size)
        self.export = export
        self.prototype = prototype
        self.photo_output = photo_output

    def load_model(self):
        worker.import_faces()  # Its import is counted apart, as the worker's import.
        start = time.perf_counter()
        model = _LoadedSignature(*locate.load_signature(self.export, self.prototype)[:2])
        seconds = time.perf_counter() - start
        worker.record_load_model(seconds)
        logging.info("loaded %s (%s) in %.2f s", self.export, self.prototype, seconds)
        return model

    def run_inference(self, batch, model, inference_args=None):
        worker.report_startup("load_model_s")
        if self.photo_output:
            return self._run_photos(batch, model)
        import tensorflow as tf  # Loaded with the model: the driver never imports it.

        start = time.perf_counter()
        try:
            outputs = model.signature(image=tf.constant(np.stack(batch)))
            perturbed, scores = outputs["perturbed"].numpy(), outputs["male_score"].numpy()
        except Exception as error:  # noqa: BLE001  One bad face must not fail its batch.
            if len(batch) == 1:
                return [PredictionResult(None, {"error": f"{type(error).__name__}: {error}"})]
            return [result for face in batch for result in self.run_inference([face], model)]
        Metrics.distribution(worker.METRICS_NAMESPACE, "model_us_per_batch").update(
            int(1e6 * (time.perf_counter() - start)))
        # The face itself is not carried on (example=None): it would only cost memory.
        return [PredictionResult(None, {"perturbed": image, "male_score": float(score)})
                for image, score in zip(perturbed, scores)]

    def _run_photos(self, batch, model):
        """Every face of the batch's photos in one call; a photo whose faces fail alone."""
        import tensorflow as tf

        start = time.perf_counter()
        try:
            faces = np.stack([face for photo_faces in batch for face in photo_faces.faces])
            outputs = model.signature(image=tf.constant(faces))
            perturbed, scores = outputs["perturbed"].numpy(), outputs["male_score"].numpy()
        except Exception as error:  # noqa: BLE001  One bad photo must not fail its batch.
            if len(batch) == 1:
                return [PredictionResult(batch[0], {"error": f"{type(error).__name__}: {error}"})]
            return [result for photo in batch for result in self._run_photos([photo], model)]
        Metrics.distribution(worker.METRICS_NAMESPACE, "model_us_per_batch").update(
            int(1e6 * (time.perf_counter() - start)))
        results, first = [], 0
        for photo_faces in batch:
            mine = slice(first, first + len(photo_faces.faces))
            first = mine.stop
            results.append(PredictionResult(photo_faces, {
                "perturbed": list(perturbed[mine]),
                "male_scores": [float(score) for score in scores[mine]]}))
        return results

    def get_num_bytes(self, batch):
        if self.photo_output:
            return sum(photo.pixels.nbytes for photo in batch)
        return sum(face.nbytes for face in batch)  # The default pickles the whole batch.

    def get_metrics_namespace(self):
        return "RunInference_semiadv"
