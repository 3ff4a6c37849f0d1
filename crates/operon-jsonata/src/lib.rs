//! operon-jsonata
