//! The HTTP API as data: request bodies, answers, the error body and the
//! action catalogue. Shared by the server (which answers with these types),
//! the CLI's typed client and the generated OpenAPI components.
//!
//! No I/O: serde and utoipa only. Field order is the order the server has
//! always written, so answers stay byte-for-byte what they were.

pub mod alarms;
pub mod associations;
pub mod catalogue;
pub mod commands;
pub mod documents;
pub mod error;
pub mod events;
pub mod fleet;
pub mod heal;
pub mod identity;
pub mod inventory;
pub mod logs;
pub mod metrics;
pub mod monitors;
pub mod openapi;
pub mod params;
pub mod sessions;
pub mod workflows;

pub use commands::{
    CancelRequested, CommandSummary, CommandView, CreateCommand, Invocation, InvocationStatus,
};
pub use documents::{
    CreateDocument, CreatedVersion, DefaultVersionChange, DocumentSummary, DocumentView,
    UpdateDefaultVersion,
};
pub use error::{ErrorBody, ErrorDetail};
pub use fleet::{
    CreateEnrollToken, CreatedEnrollToken, EnrollToken, Inventory, NodeStatus, NodeView, TagChange,
};
