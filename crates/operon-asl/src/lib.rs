//! operon-asl
