"""Face detection and eye alignment, framed like UTKFace's aligned crops.

- `detector`: the FaceDetector interface and the face-box convention every detector returns.
- `haar`: the detector on OpenCV's Haar cascades; `dlib_detector`: the one on dlib's HOG faces
  and 5-point landmarks (the `[dlib]` extra); `dlib_models`: the check for that extra;
  `mediapipe`: the one on MediaPipe's BlazeFace and Face Mesh (the `[mediapipe]` extra).
- `registry`: detectors by name, one per thread.
- `geometry`: the canonical eye points, similarity transforms and warps.
- `face`: `align_face`, one photo to one crop; `folder`: `align_folder`, a folder and its report.
- `tf_warp`: alignment by known landmarks as TensorFlow ops, for input pipelines.
"""
