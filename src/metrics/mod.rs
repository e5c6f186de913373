//! Every metric family inferprobe exports: name, help, type, labels and buckets live in this
//! folder, apart from the logic that records into them.
//! PLACEHOLDER: the metrics owner replaces this file (probe and self families).

pub mod gpu;
pub mod server;
