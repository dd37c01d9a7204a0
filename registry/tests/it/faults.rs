//! Fault injection: a proxy in front of a real registry.
