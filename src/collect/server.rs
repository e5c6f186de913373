//! Inference-server collector. PLACEHOLDER: the server-collector owner replaces this file.
