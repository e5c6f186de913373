//! GPU metric families (NVML). PLACEHOLDER: the NVML owner replaces this file.
