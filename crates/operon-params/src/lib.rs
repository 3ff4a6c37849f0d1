//! A pure model of AWS Systems Manager Parameter Store, for Operon.
//!
//! The server stores parameters; this crate holds every rule it applies and
//! every shape it speaks, with no clock, I/O or randomness (time comes in as
//! Unix seconds):
//!
//! * [`names`]: parameter names (`a-zA-Z0-9_.-`, `/` between levels, at most
//!   15 levels and 1011 characters, no `aws`/`ssm` prefix), paths, labels,
//!   `name:version` / `name:label` selectors and ARNs.
//! * [`model`]: `Type`, `Tier`, `DataType`, value size limits (4 KB
//!   Standard, 8 KB Advanced), `AllowedPattern`, and which version to drop
//!   when a parameter would keep more than 100.
//! * [`filters`]: DescribeParameters and GetParametersByPath filters.
//! * [`policies`]: `Expiration`, `ExpirationNotification` and
//!   `NoChangeNotification` parameter policies and when they fall due.
//! * [`ssm`]: the AWS JSON 1.1 request/response types
//!   (`X-Amz-Target: AmazonSSM.<Operation>`) and error bodies.
//!
//! Every rule error is a [`ParamError`], which knows the SSM error code AWS
//! answers with and turns into an [`ssm::SsmError`].
//!
//! ```
//! use operon_params::names::{parse_selector, validate_name, Selector};
//! use operon_params::ssm::{SsmError, SsmErrorCode};
//!
//! assert!(validate_name("/prod/db/password").is_ok());
//! let err = SsmError::from(validate_name("/aws/secret").unwrap_err());
//! assert_eq!(err.code, SsmErrorCode::ValidationException);
//! assert_eq!(
//!     err.to_body(),
//!     r#"{"__type":"ValidationException","message":"Parameter name: can't be prefixed with \"aws\" or \"ssm\" (case-insensitive)."}"#
//! );
//! assert_eq!(
//!     parse_selector("/prod/db:3").unwrap(),
//!     ("/prod/db", Selector::Version(3))
//! );
//! ```

pub mod error;
pub mod filters;
pub mod model;
pub mod names;
pub mod policies;
pub mod ssm;

pub use error::ParamError;
