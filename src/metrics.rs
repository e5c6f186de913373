//! Metric families. TODO
