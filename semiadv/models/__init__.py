"""The networks: the autoencoder, gender classifiers, face matchers and dlib's ResNet.

- `autoencoders`: the SAN autoencoder and its inference view, the perturber.
- `choice_autoencoder`: the autoencoder told per face which attributes to hide (PrivacyNet).
- `gender_classifiers`: the auxiliary gender CNN (and its multi-class variant for age group
  and race), the VGG-style ensemble member, and the independent (unseen) residual classifier.
- `matchers`: the VGG-Face-style matcher and the independent residual matcher.
- `blocks`: what the builders share (input checks, sizing, residual blocks).
- `dtypes`: which layers stay float32 under mixed precision.
- `dlib_resnet/`: dlib's face recognition ResNet, read from dlib's `.dat` file.
- `legacy_layers`: layers only exports of older versions hold.

Importing this package registers every Keras layer semiadv defines, so that
`keras.models.load_model` opens any `.keras` file the package wrote (work-dir stages with
dlib's ResNet, exports of older versions) after `import semiadv.models`.
"""

from semiadv.models import dlib_resnet, legacy_layers  # noqa: F401  (registers their layers)
