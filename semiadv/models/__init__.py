"""The networks: the autoencoder, gender classifiers, face matchers and dlib's ResNet."""
