"""semiadv-perturb as an Apache Beam pipeline, for collections at scale (semiadv-beam-perturb).

Photos matched by a file pattern (local paths, gs://, s3://, hdfs://: any filesystem Beam reads,
through `apache_beam.io.fileio`) are decoded, aligned and resized by the same per-photo function
as semiadv-perturb (`semiadv.perturb.faces.prepare_photo`), perturbed in batches by
`RunInference` over one signature of the export, and written under the same relative name
(relative to the pattern's folder, the part before its first wildcard) through Beam's
`FileSystems`, plus `perturb_report.json` in semiadv-perturb's format.

Every output is written under a hidden temporary name and renamed, so a killed worker leaves no
half-written image, and a rerun skips the outputs that exist (status "already_written", or the
earlier report's entry when that run finished). A bad photo gets its report entry and never
fails its bundle or batch.

The driver (`config.make_config`, `pipeline.run`) never imports TensorFlow; the workers do.
"""
