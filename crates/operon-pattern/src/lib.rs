//! operon-pattern
