"""Deployment: ONNX export (`onnx_export`), the inference backends (`inference`),
image I/O (`images`) and `depthnas predict` (`predict`); CLI hooks in `cli`."""
