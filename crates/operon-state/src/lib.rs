//! Desired state for Operon nodes: the pure core of the State Manager.
//!
//! A desired-state document (YAML or JSON, `schemaVersion: operon-state/1`)
//! declares typed `parameters`, as command documents do, and a list of
//! `resources`. Every resource has a unique `name`, a `type`, and may list
//! `requires` (resources applied, successfully, before it) and `notify`
//! (services to restart or commands to run when it changed). The types:
//!
//! | type        | fields |
//! |-------------|--------|
//! | `file`      | `path`, one of `content`/`template`/`source`, `mode` (octal string), `owner`, `group`, `state` present\|absent |
//! | `directory` | `path`, `mode`, `owner`, `group`, `state` |
//! | `line`      | `path`, `line`, `match` (regex), `state` |
//! | `package`   | `package` (default: the resource name), `version` (exact or `latest`), `state` installed\|absent |
//! | `service`   | `service` (default: the resource name), `state` running\|stopped, `enabled` |
//! | `user`      | `user` (default: the resource name), `uid`, `groups`, `shell`, `home`, `authorized_keys`, `locked`, `state` |
//! | `group`     | `group` (default: the resource name), `gid`, `state` |
//! | `command`   | `run`, `creates`, `unless`, `onlyif`, `cwd`, `user` |
//!
//! The crate does no I/O. It provides:
//!
//! - [`document`]: parsing and validation, reporting every problem with a
//!   JSON pointer and the resource's name;
//! - [`plan`]: the order of application and what a failure or a change means
//!   for the other resources;
//! - [`diff`]: unified diffs for check mode and compliance reports;
//! - [`guard`]: whether a `command` runs given its guards' results;
//! - [`template`]: `{{ parameter }}` substitution, `{{ssm:...}}` listing.
//!
//! # Example
//!
//! ```
//! use operon_state::{document, plan, diff};
//!
//! let text = r#"
//! schemaVersion: operon-state/1
//! parameters:
//!   port: { type: String, default: "8080", allowedPattern: "^[0-9]+$" }
//! resources:
//!   - name: nginx-conf
//!     type: file
//!     path: /etc/nginx/conf.d/app.conf
//!     template: "listen {{ port }};\n"
//!     mode: "0644"
//!     requires: [nginx]
//!     notify: [nginx-service]
//!   - name: nginx-service
//!     type: service
//!     service: nginx
//!     state: running
//!     enabled: true
//!   - name: nginx
//!     type: package
//! "#;
//! let doc = document::parse(text).unwrap();
//! let graph = plan::Graph::from_document(&doc).unwrap();
//! let order: Vec<&str> = graph.order().unwrap().iter().map(|&i| doc.resources[i].name.as_str()).collect();
//! assert_eq!(order, ["nginx", "nginx-conf", "nginx-service"]);
//!
//! // Validation reports every problem, each with where it is.
//! let bad = document::parse("schemaVersion: operon-state/1\nresources:\n  - {name: d, type: directory, path: /srv, mode: \"0999\"}\n");
//! assert_eq!(
//!     bad.unwrap_err().to_string(),
//!     "the document is invalid:\n  /resources/0/mode: \"0999\" is not an octal mode (resource \"d\")"
//! );
//!
//! assert_eq!(
//!     diff::unified_diff("/etc/motd", "hello\n", "hi\n"),
//!     "--- a/etc/motd\n+++ b/etc/motd\n@@ -1 +1 @@\n-hello\n+hi\n"
//! );
//! ```

pub mod diff;
pub mod document;
pub mod guard;
pub mod plan;
pub mod template;
