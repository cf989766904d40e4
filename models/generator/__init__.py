"""Training side of the calmtunes generator: corpus, tokens, model, training, export.

``python -m models.generator.train`` rebuilds ``models/calmtunes-generator.onnx`` from music21's
bundled corpus; see ``models/MODEL_CARD.md``.
"""
