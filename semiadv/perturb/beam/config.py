"""What the Beam pipeline does: its frozen config, checked and built by `make_config`."""

from __future__ import annotations

import dataclasses

from apache_beam.io.filesystems import FileSystems

from semiadv.export import locate
from semiadv.perturb import outputs
from semiadv.perturb import report as perturb_report
from semiadv.perturb.beam import filesystems
from semiadv.perturb.beam import paths


@dataclasses.dataclass(frozen=True)
class BeamPerturbConfig:
    """What the pipeline does; built by `make_config`, which checks it.

    Attributes:
        export: The SavedModel version dir (resolved: a model dir's newest version).
        prototype: Signature: "opposite", "same" or "neutral".
        image_shape: The export's (H, W, C).
        input_pattern: Beam file pattern of the photos (absolute for local paths).
        input_dir: The pattern's folder; outputs are named relative to it.
        output_dir: Where outputs and the report go.
        align: Detect and align faces; False only resizes (already aligned crops).
        batch_size: Photos per call of the signature (the photo output: every face of
            each photo goes in the same call).
        output: "photo" (the whole photo, every face edited) or "crop"
            (`semiadv.perturb.outputs`).
        max_faces: The photo output's most faces edited per photo.
        keep_metadata: The photo output copies the input's metadata (else none is written).
        jpeg_quality: Quality of JPEG outputs.
        fast_worker_exit: SDK worker processes end without interpreter teardown
            (`worker.exit_fast_in_sdk_worker`). `pipeline.run` turns it on for the
            DirectRunner only: there the harness's end is the run's end and its exit code is
            only logged, while other runners' workers (Dataflow's) are judged by their exit
            code and restarted.
    """

    export: str
    prototype: str
    image_shape: tuple
    input_pattern: str
    input_dir: str
    output_dir: str
    align: bool = True
    batch_size: int = perturb_report.DEFAULT_BATCH_SIZE
    output: str = "crop"
    max_faces: int = outputs.DEFAULT_MAX_FACES
    keep_metadata: bool = False
    jpeg_quality: int = outputs.DEFAULT_JPEG_QUALITY
    fast_worker_exit: bool = False


def output_path(config, relative):
    """Where the output of the input named `relative` goes."""
    return FileSystems.join(config.output_dir, *relative.split("/"))


def make_config(export, input_pattern, output_dir, prototype="opposite", align=True,
                batch_size=perturb_report.DEFAULT_BATCH_SIZE, output=None,
                max_faces=outputs.DEFAULT_MAX_FACES, keep_metadata=False,
                jpeg_quality=outputs.DEFAULT_JPEG_QUALITY):
    """Checks the arguments and reads the export's image shape.

    Only the export's saved_model.pb is read here (`semiadv.export.locate.read_image_shape`,
    without TensorFlow); each worker loads the export itself, so an export with unreadable
    variables fails in the workers.

    Raises:
        FileNotFoundError: for a missing export or a pattern that matches nothing.
        ValueError: for an unknown prototype, a bad batch size, output options that do not
            go together (`semiadv.perturb.outputs.check_output`; output None: "photo" when
            aligning), or an output folder that is the input folder or contains it.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    output = outputs.check_output(output, align, max_faces, keep_metadata, jpeg_quality)
    filesystem = filesystems.BeamFilesystem()
    image_shape = locate.read_image_shape(export, prototype, filesystem)
    pattern, input_dir = paths.normalize_pattern(input_pattern)
    output_dir = paths.normalized(output_dir)
    if output_dir == input_dir:
        raise ValueError(f"output_dir must differ from the input folder ({input_dir!r}): "
                         "inputs are never overwritten")
    if paths.is_within(input_dir, output_dir):
        raise ValueError(f"input folder {input_dir!r} is inside output_dir {output_dir!r}: "
                         "outputs could overwrite inputs")
    try:
        matched = FileSystems.match([pattern], limits=[1])[0].metadata_list
    except Exception as error:  # noqa: BLE001  Beam wraps each filesystem's own error.
        raise FileNotFoundError(f"cannot match --input_pattern={pattern!r}: {error}") from None
    if not matched:
        raise FileNotFoundError(f"no file matches --input_pattern={pattern!r}")
    return BeamPerturbConfig(export=str(locate.resolve_export(export, filesystem)),
                             prototype=prototype, image_shape=tuple(image_shape),
                             input_pattern=pattern, input_dir=input_dir, output_dir=output_dir,
                             align=bool(align), batch_size=int(batch_size), output=output,
                             max_faces=int(max_faces), keep_metadata=bool(keep_metadata),
                             jpeg_quality=int(jpeg_quality))
