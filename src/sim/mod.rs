//! The built-in simulated LLM endpoint. PLACEHOLDER: the simulator owner replaces this.
