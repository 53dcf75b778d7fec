"""The three prototypes a face can be rendered with, by name.

These names are the SavedModel's signatures, `--prototype`'s values and the evaluation's
conditions. No TensorFlow: the Beam driver reads them too.
"""

SAME = "same"
NEUTRAL = "neutral"
OPPOSITE = "opposite"
# The order of the outputs of the serving model and of the evaluation's tables.
KINDS = (SAME, NEUTRAL, OPPOSITE)
