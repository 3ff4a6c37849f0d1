//! Client commands, one module per noun.

pub mod events;
pub mod workflows;
