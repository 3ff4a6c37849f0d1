//! operon-store
