"""The Gradio demo (`demo`) and its `depthnas demo` command (`cli`)."""
