"""Trained classifiers: the checkpoint format, the Classifier interface and its PyTorch and ONNX Runtime back-ends,
test-time augmentation, ONNX export and ensembles. Below training, evaluation and recognition, which all use it."""
