//! operon-server
