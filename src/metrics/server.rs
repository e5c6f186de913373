//! Inference-server metric families. PLACEHOLDER: the server-collector owner replaces this file.
