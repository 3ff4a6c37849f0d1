//! operon-proto
