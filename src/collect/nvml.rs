//! NVML GPU collector. PLACEHOLDER: the NVML owner replaces this file.
