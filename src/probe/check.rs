//! Scenario checks. TODO
