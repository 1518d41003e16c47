//! Scenario tests: a small simulated system (frontend → catalog, checkout → payments →
//! an uninstrumented payment API, databases, a queue with a consumer, several instances on
//! several nodes, background noise) with one fault injected at a time.

mod continuous;
mod resources;
mod scenarios;
mod seasonal;
mod sim;
