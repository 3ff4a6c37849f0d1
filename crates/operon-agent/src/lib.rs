//! operon-agent
