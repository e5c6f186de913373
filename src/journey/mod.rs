//! Journeys: multi-step probes of one target that carry a conversation from step to step, with
//! tool calls answered by canned results.

pub mod schema;
