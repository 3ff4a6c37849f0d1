//! The params service: the only code that changes or reads parameters.
//!
//! Both edges call it: the native API (`http.rs`, `/v1/parameters`) and the
//! AWS JSON 1.1 endpoint (`aws.rs`). Every rule of Parameter Store comes
//! from the pure `operon-params` crate; this service adds authorization,
//! sealing, auditing of decrypted reads and the change events.
//!
//! Errors carry SSM's error codes (`ParameterNotFound`, `ValidationException`,
//! ...) as their `code`, so the AWS edge answers with them unchanged and the
//! native edge maps the kind to a status.
//!
//! Authorization, per parameter, on `param/<name>` (`param/app/prod/db_url`
//! for `/app/prod/db_url`): `params:Put`, `params:Get` (metadata and
//! String values), `params:GetDecrypted` (SecureString values, audited on
//! every read), `params:GetHistory`, `params:List` (on the path listed, or
//! `param/*`; then each parameter), `params:Label`, `params:Unlabel`, `params:Delete`,
//! `params:Tag`, `params:ListTags`. Key ring: `keys:List`, `keys:Rotate`,
//! `keys:Rewrap` on `key/*`.

use std::fmt;

use operon_params::ParamError;
use operon_params::filters::{FilterContext, FilterKey, ParameterFilter, ParameterMeta};
use operon_params::model::{DataType, ParameterType, Tier};
use operon_params::names::Selector;
use operon_params::{filters, model, names, policies};
use operon_store::{
    AuditEntry, LabelRefusal, NewParameterVersion, ParameterVersion, PutRefusal, Tags,
};
use serde_json::json;

use crate::access::{Principal, check_action};
use crate::service::{ErrorKind, ServiceError, ServiceResult};
use crate::{AppState, now_millis};

/// The key id SecureStrings report (AWS's default `alias/aws/ssm`): Operon
/// has one key ring, whose active key id is in the envelope.
pub const DEFAULT_KEY_ID: &str = "alias/aws/ssm";

/// A put, as either edge hands it over.
#[derive(Clone, Default)]
pub struct PutParameter {
    pub name: String,
    pub value: String,
    pub param_type: Option<String>,
    pub description: Option<String>,
    pub allowed_pattern: Option<String>,
    pub overwrite: bool,
    pub tier: Option<String>,
    pub policies: Option<String>,
    pub tags: Tags,
    pub key_id: Option<String>,
    pub data_type: Option<String>,
}

impl fmt::Debug for PutParameter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PutParameter")
            .field("name", &self.name)
            .field("value", &"<redacted>")
            .field("param_type", &self.param_type)
            .field("overwrite", &self.overwrite)
            .finish_non_exhaustive()
    }
}

/// What a put wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub version: i64,
    pub tier: String,
}

/// A parameter version as the edges show it. `value` is the clear value of
/// a String or StringList, or of a SecureString read with decryption;
/// `sealed` is a SecureString's envelope otherwise (the AWS edge shows it as
/// the encrypted value).
#[derive(Clone, PartialEq)]
pub struct ParamView {
    pub name: String,
    pub param_type: String,
    pub value: Option<String>,
    pub sealed: Option<Vec<u8>>,
    pub version: i64,
    pub selector: Option<String>,
    pub labels: Vec<String>,
    pub modified_at: i64,
    pub modified_by: String,
    pub description: Option<String>,
    pub allowed_pattern: Option<String>,
    pub tier: String,
    pub data_type: String,
    pub policies: Option<String>,
    pub key_id: Option<String>,
}

impl fmt::Debug for ParamView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParamView")
            .field("name", &self.name)
            .field("param_type", &self.param_type)
            .field("version", &self.version)
            .field("value", &self.value.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl ParamView {
    fn of(v: ParameterVersion) -> ParamView {
        let f = v.fields;
        ParamView {
            name: f.name,
            param_type: f.param_type,
            value: f.value,
            sealed: f.sealed,
            version: v.version,
            selector: None,
            labels: v.labels,
            modified_at: f.modified_at,
            modified_by: f.modified_by,
            description: f.description,
            allowed_pattern: f.allowed_pattern,
            tier: f.tier,
            data_type: f.data_type,
            policies: f.policies,
            key_id: f.key_id,
        }
    }

    pub fn is_secure(&self) -> bool {
        self.param_type == ParameterType::SecureString.as_str()
    }
}

/// One page of a listing, and the token of the next one.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_token: Option<String>,
}

/// A GetParametersByPath read.
#[derive(Debug, Clone, Copy)]
pub struct PathRead<'a> {
    pub path: &'a str,
    pub recursive: bool,
    pub filters: &'a [ParameterFilter],
    pub decrypt: bool,
    pub max_results: Option<usize>,
    pub token: Option<&'a str>,
}

/// What a label call changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labelled {
    pub version: i64,
    pub invalid_labels: Vec<String>,
    pub removed_labels: Vec<String>,
}

/// The policy resource of a parameter: `param/app/x` for `/app/x`, `param/x` for `x`.
pub fn resource(name: &str) -> String {
    match name.strip_prefix('/') {
        Some(rest) => format!("param/{rest}"),
        None => format!("param/{name}"),
    }
}

/// What a SecureString's envelope is bound to: its name and version, so an
/// envelope copied to another parameter or version does not open.
pub fn seal_aad(name: &str, version: i64) -> Vec<u8> {
    format!("operon-param\0{name}\0{version}").into_bytes()
}

/// A rule of Parameter Store broken: the SSM code, and the kind for the
/// native edge's status.
pub fn rule(err: ParamError) -> ServiceError {
    let code = err.code();
    let kind = match code.as_str() {
        "ParameterNotFound" | "ParameterVersionNotFound" => ErrorKind::NotFound,
        "ParameterAlreadyExists" => ErrorKind::Conflict,
        _ => ErrorKind::Invalid,
    };
    ServiceError::new(kind, code.as_str(), err.to_string())
}

fn not_found(name: &str) -> ServiceError {
    ServiceError::not_found("ParameterNotFound", format!("Parameter {name} not found."))
}

fn version_not_found(name: &str, version: impl fmt::Display) -> ServiceError {
    ServiceError::not_found(
        "ParameterVersionNotFound",
        format!(
            "Systems Manager could not find version {version} of {name}. Verify the version and try again."
        ),
    )
}

fn validation(message: impl Into<String>) -> ServiceError {
    ServiceError::invalid("ValidationException", message)
}

/// The page size a listing uses when the caller names none.
const PAGE: usize = 10;
/// The most store rows a filtered listing reads per round (a round reads
/// a little more than the page it fills, so a page of 10 of 1,000 reads 21).
const SCAN: usize = 200;

/// Opaque next-page tokens: the hex of the last name shown.
fn next_token(last: &str) -> String {
    hex::encode(last)
}

fn after_token(token: Option<&str>) -> ServiceResult<Option<String>> {
    token
        .map(|t| {
            hex::decode(t)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    ServiceError::invalid("InvalidNextToken", "The specified token isn't valid.")
                })
        })
        .transpose()
}

/// The metadata filters match against.
fn meta(v: &ParamView, tags: Tags) -> ParameterMeta {
    ParameterMeta {
        name: v.name.clone(),
        parameter_type: v.param_type.parse().unwrap_or_default(),
        key_id: v.key_id.clone(),
        tier: v.tier.parse().unwrap_or(Tier::Standard),
        data_type: v.data_type.clone(),
        labels: v.labels.clone(),
        tags,
        description: v.description.clone(),
    }
}

fn needs_tags(filters: &[ParameterFilter]) -> bool {
    filters.iter().any(|f| matches!(f.key, FilterKey::Tag(_)))
}

/// The params service over the server's store, key ring, audit trail and bus.
pub struct ParamService<'a> {
    pub(crate) state: &'a AppState,
}

impl ParamService<'_> {
    /// The one gate for `action` on the parameter `name`.
    async fn allow(&self, principal: &Principal, action: &str, name: &str) -> ServiceResult<()> {
        check_action(&self.state.audit, principal, action, &resource(name)).await
    }

    // ----- Writes ------------------------------------------------------------------

    /// Write a new version (or the first). Retries when another put moved
    /// the latest version between the checks and the write.
    pub async fn put(&self, principal: &Principal, put: PutParameter) -> ServiceResult<Written> {
        names::validate_name(&put.name).map_err(rule)?;
        self.allow(principal, "params:Put", &put.name).await?;
        if put.overwrite && !put.tags.is_empty() {
            return Err(validation(
                "Invalid request: tags and overwrite can't be used together. To create a parameter \
                 with tags, please remove overwrite flag. To update tags for an existing \
                 parameter, please use AddTagsToResource or RemoveTagsFromResource.",
            ));
        }
        for _ in 0..8 {
            let latest = self.state.store.parameter(&put.name).await?;
            if latest.is_some() && !put.overwrite {
                return Err(ServiceError::conflict(
                    "ParameterAlreadyExists",
                    "The parameter already exists. To overwrite this value, set the overwrite \
                     option in the request to true.",
                ));
            }
            let (version, row) = self.next_version(principal, &put, latest.as_ref())?;
            let expect = latest.as_ref().map(|l| l.version);
            match self
                .state
                .store
                .put_parameter(&row, expect, &put.tags)
                .await?
            {
                Ok(written) => {
                    debug_assert_eq!(written, version);
                    if row.policies.is_some() {
                        self.state
                            .coordination
                            .notify(crate::coordination::Topic::ParameterPolicies);
                    }
                    let operation = if expect.is_some() { "Update" } else { "Create" };
                    self.announce(operation, &put.name, &row.param_type, written, None)
                        .await;
                    return Ok(Written {
                        version: written,
                        tier: row.tier,
                    });
                }
                Err(PutRefusal::Moved) => continue,
                Err(PutRefusal::AlreadyExists) => {
                    return Err(ServiceError::conflict(
                        "ParameterAlreadyExists",
                        "The parameter already exists. To overwrite this value, set the \
                         overwrite option in the request to true.",
                    ));
                }
                Err(PutRefusal::MaxVersions) => {
                    let oldest = self
                        .state
                        .store
                        .parameter_history(&put.name)
                        .await?
                        .first()
                        .map_or(1, |v| v.version);
                    return Err(rule(ParamError::MaxVersionsAllLabeled {
                        name: put.name.clone(),
                        oldest: oldest as u64,
                    }));
                }
            }
        }
        Err(ServiceError::new(
            ErrorKind::Unavailable,
            "ThrottlingException",
            format!("{} is being changed by other writers; try again", put.name),
        ))
    }

    /// The row a put writes after `latest`: what the put leaves out carries
    /// over from the latest version, as AWS does for an overwrite.
    fn next_version(
        &self,
        principal: &Principal,
        put: &PutParameter,
        latest: Option<&ParameterVersion>,
    ) -> ServiceResult<(i64, NewParameterVersion)> {
        let before = latest.map(|l| &l.fields);
        let param_type: ParameterType = match (&put.param_type, before) {
            (Some(t), _) => t.parse().map_err(rule)?,
            (None, Some(b)) => b.param_type.parse().map_err(rule)?,
            (None, None) => ParameterType::String,
        };
        if let Some(data_type) = &put.data_type {
            data_type.parse::<DataType>().map_err(rule)?;
        }
        if put.key_id.is_some() && param_type != ParameterType::SecureString {
            return Err(validation(
                "KeyId is required for SecureString type parameter only.",
            ));
        }
        if let Some(key_id) = &put.key_id
            && key_id != DEFAULT_KEY_ID
            && key_id != "alias/operon"
        {
            return Err(ServiceError::invalid(
                "InvalidKeyId",
                format!(
                    "The key {key_id:?} is not a key Operon holds: SecureStrings are sealed with \
                     the server's key ring; use {DEFAULT_KEY_ID} or leave KeyId out."
                ),
            ));
        }
        let description = put
            .description
            .clone()
            .or_else(|| before.and_then(|b| b.description.clone()));
        if let Some(d) = &description {
            model::check_description(d).map_err(rule)?;
        }
        let allowed_pattern = put
            .allowed_pattern
            .clone()
            .or_else(|| before.and_then(|b| b.allowed_pattern.clone()));
        if let Some(pattern) = &allowed_pattern {
            let regex = model::compile_allowed_pattern(pattern).map_err(rule)?;
            model::check_allowed_pattern(&regex, pattern, &put.value).map_err(rule)?;
        }
        let policies = match &put.policies {
            Some(text) => {
                let parsed = policies::parse_policies(text).map_err(rule)?;
                policies::check_not_expired(&parsed, now_millis() / 1000).map_err(rule)?;
                (!parsed.is_empty()).then(|| text.clone())
            }
            None => before.and_then(|b| b.policies.clone()),
        };
        let requested: Tier = match &put.tier {
            Some(t) => t.parse().map_err(rule)?,
            None => Tier::Standard,
        };
        let currently_advanced = before.is_some_and(|b| b.tier == Tier::Advanced.as_str());
        let tier = model::effective_tier(
            requested,
            put.value.len(),
            policies.is_some(),
            currently_advanced,
        );
        if policies.is_some() && tier == Tier::Standard {
            return Err(rule(ParamError::PoliciesNeedAdvancedTier));
        }
        model::check_value(param_type, tier, &put.value).map_err(rule)?;
        let version = latest.map_or(1, |l| l.version + 1);
        let (value, sealed, key_id) = if param_type == ParameterType::SecureString {
            let sealed = self
                .state
                .keys
                .seal(&seal_aad(&put.name, version), put.value.as_bytes())
                .map_err(|e| {
                    tracing::error!(error = %e, "sealing a SecureString failed");
                    ServiceError::new(ErrorKind::Internal, "InternalServerError", "sealing failed")
                })?;
            let key_id = put.key_id.clone().unwrap_or_else(|| DEFAULT_KEY_ID.into());
            (None, Some(sealed), Some(key_id))
        } else {
            (Some(put.value.clone()), None, None)
        };
        Ok((
            version,
            NewParameterVersion {
                name: put.name.clone(),
                param_type: param_type.as_str().into(),
                value,
                sealed,
                key_id,
                description,
                allowed_pattern,
                tier: tier.as_str().into(),
                data_type: put.data_type.clone().unwrap_or_else(|| "text".into()),
                policies,
                modified_at: now_millis(),
                modified_by: principal.name.clone(),
            },
        ))
    }

    /// Delete a parameter with all its versions.
    pub async fn delete(&self, principal: &Principal, name: &str) -> ServiceResult<i64> {
        names::validate_name(name).map_err(|_| not_found(name))?;
        self.allow(principal, "params:Delete", name).await?;
        let deleted = self
            .state
            .store
            .delete_parameter(name)
            .await?
            .ok_or_else(|| not_found(name))?;
        self.announce(
            "Delete",
            name,
            &deleted.fields.param_type,
            deleted.version,
            None,
        )
        .await;
        Ok(deleted.version)
    }

    /// Put labels on a version (the latest when `None`). Labels that break
    /// the naming rules are answered back, as AWS does, and the rest applied.
    pub async fn label(
        &self,
        principal: &Principal,
        name: &str,
        version: Option<i64>,
        labels: &[String],
    ) -> ServiceResult<Labelled> {
        check_label_count(labels)?;
        self.allow(principal, "params:Label", name).await?;
        let latest = self
            .state
            .store
            .parameter(name)
            .await?
            .ok_or_else(|| not_found(name))?;
        let version = version.unwrap_or(latest.version);
        let (valid, invalid) = names::split_labels(labels);
        if !valid.is_empty() {
            match self
                .state
                .store
                .label_parameter(name, version, &valid)
                .await?
            {
                Ok(()) => {}
                Err(refusal) => return Err(label_refusal(name, version, refusal)),
            }
            let detail = json!({"labels": valid});
            self.announce(
                "LabelParameterVersion",
                name,
                &latest.fields.param_type,
                version,
                Some(detail),
            )
            .await;
        }
        Ok(Labelled {
            version,
            invalid_labels: invalid,
            removed_labels: vec![],
        })
    }

    /// Take labels off a version; labels it did not carry are answered back.
    pub async fn unlabel(
        &self,
        principal: &Principal,
        name: &str,
        version: i64,
        labels: &[String],
    ) -> ServiceResult<Labelled> {
        check_label_count(labels)?;
        self.allow(principal, "params:Unlabel", name).await?;
        let removed = match self
            .state
            .store
            .unlabel_parameter(name, version, labels)
            .await?
        {
            Ok(removed) => removed,
            Err(refusal) => return Err(label_refusal(name, version, refusal)),
        };
        let invalid = labels
            .iter()
            .filter(|l| !removed.contains(l))
            .cloned()
            .collect();
        if !removed.is_empty() {
            let param_type = self
                .state
                .store
                .parameter(name)
                .await?
                .map(|p| p.fields.param_type)
                .unwrap_or_default();
            let detail = json!({"labels": removed});
            self.announce(
                "UnlabelParameterVersion",
                name,
                &param_type,
                version,
                Some(detail),
            )
            .await;
        }
        Ok(Labelled {
            version,
            invalid_labels: invalid,
            removed_labels: removed,
        })
    }

    /// Add and remove tags; answers the tags after.
    pub async fn tag(
        &self,
        principal: &Principal,
        name: &str,
        add: &Tags,
        remove: &[String],
    ) -> ServiceResult<Tags> {
        self.allow(principal, "params:Tag", name).await?;
        for (key, value) in add {
            if key.is_empty() || key.len() > 128 || value.len() > 256 {
                return Err(validation(format!(
                    "the tag {key:?} is not valid: keys are 1 to 128 characters, values up to 256"
                )));
            }
        }
        if !self.state.store.tag_parameter(name, add, remove).await? {
            return Err(ServiceError::invalid(
                "InvalidResourceId",
                format!("The resource ID {name:?} is not valid. Verify the ID and try again."),
            ));
        }
        Ok(self
            .state
            .store
            .parameter_tags(name)
            .await?
            .unwrap_or_default())
    }

    // ----- Reads ---------------------------------------------------------------------

    /// One parameter by `name`, `name:version` or `name:label`; a
    /// SecureString's value only with `decrypt` (and `params:GetDecrypted`).
    pub async fn get(
        &self,
        principal: &Principal,
        selector: &str,
        decrypt: bool,
    ) -> ServiceResult<ParamView> {
        let (name, selection) = names::parse_selector(selector).map_err(rule)?;
        names::validate_name(name).map_err(|_| not_found(name))?;
        self.allow(principal, "params:Get", name).await?;
        let mut view = self.select(name, &selection).await?;
        view.selector = selection.to_wire();
        if decrypt {
            self.decrypt_all(principal, std::slice::from_mut(&mut view))
                .await?;
        }
        Ok(view)
    }

    async fn select(&self, name: &str, selection: &Selector) -> ServiceResult<ParamView> {
        let store = &self.state.store;
        let found = match selection {
            Selector::Latest => store.parameter(name).await?,
            Selector::Version(v) => {
                let v = i64::try_from(*v).unwrap_or(i64::MAX);
                let found = store.parameter_version(name, v).await?;
                if found.is_none() && store.parameter(name).await?.is_some() {
                    return Err(version_not_found(name, v));
                }
                found
            }
            Selector::Label(label) => {
                let found = store.parameter_by_label(name, label).await?;
                if found.is_none() && store.parameter(name).await?.is_some() {
                    return Err(version_not_found(name, label));
                }
                found
            }
        };
        found.map(ParamView::of).ok_or_else(|| not_found(name))
    }

    /// Several parameters: those found, and the names (as asked) that were not.
    pub async fn get_many(
        &self,
        principal: &Principal,
        selectors: &[String],
        decrypt: bool,
    ) -> ServiceResult<(Vec<ParamView>, Vec<String>)> {
        let mut found = Vec::new();
        let mut invalid = Vec::new();
        for selector in selectors {
            let Ok((name, selection)) = names::parse_selector(selector) else {
                invalid.push(selector.clone());
                continue;
            };
            if names::validate_name(name).is_err() {
                invalid.push(selector.clone());
                continue;
            }
            self.allow(principal, "params:Get", name).await?;
            match self.select(name, &selection).await {
                Ok(mut view) => {
                    view.selector = selection.to_wire();
                    found.push(view);
                }
                Err(e) if e.kind == ErrorKind::NotFound => invalid.push(selector.clone()),
                Err(e) => return Err(e),
            }
        }
        if decrypt {
            self.decrypt_all(principal, &mut found).await?;
        }
        Ok((found, invalid))
    }

    /// The latest versions under a path (one level, or every level with
    /// `recursive`) that pass the filters and that the principal may get.
    pub async fn get_by_path(
        &self,
        principal: &Principal,
        read: &PathRead<'_>,
    ) -> ServiceResult<Page<ParamView>> {
        let PathRead {
            path,
            recursive,
            filters,
            decrypt,
            max_results,
            token,
        } = *read;
        names::validate_path(path).map_err(rule)?;
        let prefix = if path.ends_with('/') {
            path.to_string()
        } else {
            format!("{path}/")
        };
        // The path itself, as IAM authorizes GetParametersByPath; then each
        // parameter (a Deny on one hides it).
        let scope = format!("{}*", resource(&prefix));
        check_action(&self.state.audit, principal, "params:Get", &scope).await?;
        let mut page = self
            .scan(
                principal,
                "params:Get",
                &prefix,
                filters,
                max_results,
                token,
                |name| names::under_path(name, path, recursive),
            )
            .await?;
        if decrypt {
            self.decrypt_all(principal, &mut page.items).await?;
        }
        Ok(page)
    }

    /// Metadata of the parameters passing `filters` that the principal may list.
    pub async fn describe(
        &self,
        principal: &Principal,
        filters: &[ParameterFilter],
        max_results: Option<usize>,
        token: Option<&str>,
    ) -> ServiceResult<Page<ParamView>> {
        // Listing is authorized on the path the filters name (everything
        // without one); then each parameter (a Deny on one hides it).
        let path = filters.iter().find_map(|f| match f.key {
            FilterKey::Path => f.values.first().cloned(),
            _ => None,
        });
        let scope = match &path {
            Some(p) if p.ends_with('/') => format!("{}*", resource(p)),
            Some(p) => format!("{}/*", resource(p)),
            None => "param/*".to_string(),
        };
        check_action(&self.state.audit, principal, "params:List", &scope).await?;
        let mut page = self
            .scan(
                principal,
                "params:List",
                "",
                filters,
                max_results,
                token,
                |_| true,
            )
            .await?;
        for item in &mut page.items {
            item.value = None;
            item.sealed = None;
        }
        Ok(page)
    }

    /// Walk names after the token in order, keeping those `under` and the
    /// filters accept and `action` allows, until a page is full.
    #[allow(clippy::too_many_arguments)]
    async fn scan(
        &self,
        principal: &Principal,
        action: &str,
        prefix: &str,
        filters: &[ParameterFilter],
        max_results: Option<usize>,
        token: Option<&str>,
        under: impl Fn(&str) -> bool,
    ) -> ServiceResult<Page<ParamView>> {
        let limit = max_results.unwrap_or(PAGE);
        let mut after = after_token(token)?;
        let mut items = Vec::new();
        let with_tags = needs_tags(filters);
        loop {
            let rows = self
                .state
                .store
                .parameters_after(prefix, after.as_deref(), (2 * limit + 1).min(SCAN))
                .await?;
            let exhausted = rows.len() < (2 * limit + 1).min(SCAN);
            for row in rows {
                after = Some(row.name().to_string());
                let view = ParamView::of(row);
                if !under(&view.name)
                    || principal
                        .decide(&principal.request(action, &resource(&view.name)))
                        .is_err()
                {
                    continue;
                }
                if !filters.is_empty() {
                    let tags = if with_tags {
                        self.state
                            .store
                            .parameter_tags(&view.name)
                            .await?
                            .unwrap_or_default()
                    } else {
                        Tags::new()
                    };
                    if !filters::matches(&meta(&view, tags), filters) {
                        continue;
                    }
                }
                items.push(view);
                if items.len() == limit {
                    let last = items.last().map(|v| v.name.clone()).unwrap_or_default();
                    principal.allowed_action(action, &format!("{}*", resource(prefix)));
                    return Ok(Page {
                        items,
                        next_token: Some(next_token(&last)),
                    });
                }
            }
            if exhausted {
                principal.allowed_action(action, &format!("{}*", resource(prefix)));
                return Ok(Page {
                    items,
                    next_token: None,
                });
            }
        }
    }

    /// Every kept version, oldest first.
    pub async fn history(
        &self,
        principal: &Principal,
        name: &str,
        decrypt: bool,
    ) -> ServiceResult<Vec<ParamView>> {
        self.allow(principal, "params:GetHistory", name).await?;
        let mut versions: Vec<ParamView> = self
            .state
            .store
            .parameter_history(name)
            .await?
            .into_iter()
            .map(ParamView::of)
            .collect();
        if versions.is_empty() {
            return Err(not_found(name));
        }
        if decrypt {
            self.decrypt_all(principal, &mut versions).await?;
        }
        Ok(versions)
    }

    /// A parameter's tags.
    pub async fn tags(&self, principal: &Principal, name: &str) -> ServiceResult<Tags> {
        self.allow(principal, "params:ListTags", name).await?;
        self.state.store.parameter_tags(name).await?.ok_or_else(|| {
            ServiceError::invalid(
                "InvalidResourceId",
                format!("The resource ID {name:?} is not valid. Verify the ID and try again."),
            )
        })
    }

    /// Open the SecureStrings among `views`: `params:GetDecrypted` on each
    /// (all or nothing), then one audit record naming every name and
    /// version read, committed before any value leaves.
    async fn decrypt_all(
        &self,
        principal: &Principal,
        views: &mut [ParamView],
    ) -> ServiceResult<()> {
        let mut read = Vec::new();
        for view in views.iter().filter(|v| v.is_secure()) {
            self.allow(principal, "params:GetDecrypted", &view.name)
                .await?;
            read.push(json!({"name": view.name, "version": view.version}));
        }
        if read.is_empty() {
            return Ok(());
        }
        let resource = match &read[..] {
            [one] => resource(one["name"].as_str().unwrap_or_default()),
            _ => "param/*".to_string(),
        };
        let mut detail = json!({"parameters": read});
        if let Some(acting_as) = &principal.acting_as {
            detail["acting_as"] = json!(acting_as);
        }
        let entry = AuditEntry {
            actor: principal.name.clone(),
            action: "params:GetDecrypted".into(),
            resource,
            outcome: "allowed".into(),
            detail,
        };
        self.state.audit.record(entry).await.map_err(|e| {
            tracing::error!(error = %e, "a decrypted read could not be audited");
            ServiceError::new(
                ErrorKind::Unavailable,
                "InternalServerError",
                "the read could not be audited, so it was not done",
            )
        })?;
        for view in views.iter_mut().filter(|v| v.is_secure()) {
            let Some(sealed) = view.sealed.take() else {
                continue;
            };
            let clear = self
                .state
                .keys
                .unseal(&seal_aad(&view.name, view.version), &sealed)
                .map_err(|e| {
                    tracing::error!(name = %view.name, version = view.version, error = %e, "a SecureString does not open");
                    ServiceError::new(
                        ErrorKind::Internal,
                        "InternalServerError",
                        format!("{} version {} could not be decrypted; see the server log", view.name, view.version),
                    )
                })?;
            view.value = Some(String::from_utf8_lossy(&clear).into_owned());
        }
        Ok(())
    }

    // ----- Change events -------------------------------------------------------

    /// Put the `Parameter Store Change` event on the default bus (after the
    /// change committed; like the other server events it is best effort:
    /// a failure is logged, the change stands).
    async fn announce(
        &self,
        operation: &str,
        name: &str,
        param_type: &str,
        version: i64,
        extra: Option<serde_json::Value>,
    ) {
        let mut detail = json!({
            "operation": operation,
            "name": name,
            "type": param_type,
            "version": version,
        });
        if let (Some(serde_json::Value::Object(extra)), Some(map)) = (extra, detail.as_object_mut())
        {
            map.extend(extra);
        }
        self.state
            .coordination
            .notify(crate::coordination::Topic::ParameterSyncs);
        super::put_event(self.state, "Parameter Store Change", name, detail).await;
    }
}

/// A label call names 1 to 10 labels, as SSM requires.
fn check_label_count(labels: &[String]) -> ServiceResult<()> {
    if labels.is_empty() || labels.len() > operon_store::MAX_LABELS_PER_VERSION {
        return Err(validation(format!(
            "1 validation error detected: Value at 'labels' failed to satisfy constraint: \
             Member must have length between 1 and 10 (it has {})",
            labels.len()
        )));
    }
    Ok(())
}

fn label_refusal(name: &str, version: i64, refusal: LabelRefusal) -> ServiceError {
    match refusal {
        LabelRefusal::ParameterNotFound => not_found(name),
        LabelRefusal::VersionNotFound => version_not_found(name, version),
        LabelRefusal::LabelLimitExceeded => ServiceError::invalid(
            "ParameterVersionLabelLimitExceeded",
            "A parameter version can have maximum 10 labels.Move one or more labels to another \
             version and try again.",
        ),
    }
}

/// Whether a filter context accepts the filters (for the edges).
pub fn validate_filters(
    context: FilterContext,
    filters: &[operon_params::filters::ParameterStringFilter],
) -> ServiceResult<Vec<ParameterFilter>> {
    filters::validate_filters(context, filters).map_err(rule)
}
