"""The networks: the autoencoder, gender classifiers, face matchers and dlib's ResNet.

Importing this package registers every Keras layer semiadv defines, so that
`keras.models.load_model` opens any `.keras` file the package wrote (work-dir stages with
dlib's ResNet, exports of older versions) after `import semiadv.models`.
"""

from semiadv.models import dlib_resnet, legacy_layers  # noqa: F401  (registers their layers)
