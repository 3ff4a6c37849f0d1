//! Parameter names, hierarchy paths, labels and selectors.
//!
//! AWS's rules (PutParameter `Name`, LabelParameterVersion `Labels`):
//! names use `a-zA-Z0-9_.-` plus `/` between hierarchy levels, are case
//! sensitive, must begin with `/` once they contain one, have at most 15
//! levels and 1011 characters, and can't begin with `aws` or `ssm`.

use crate::error::ParamError;

/// The documented maximum length of a fully qualified parameter name (the
/// API's 2048 includes room for the ARN prefix).
pub const MAX_NAME_LEN: usize = 1011;
/// The deepest hierarchy AWS accepts.
pub const MAX_LEVELS: usize = 15;
/// The longest label.
pub const MAX_LABEL_LEN: usize = 100;

fn is_name_char(ch: char) -> bool {
    ch.is_ascii_alphanumeric() || matches!(ch, '_' | '.' | '-' | '/')
}

/// The number of hierarchy levels of a name, counted as AWS does: each
/// `/`-separated segment is a level, so `/a/b/c` has three and `a` one.
pub fn levels(name: &str) -> usize {
    name.trim_start_matches('/')
        .split('/')
        .filter(|segment| !segment.is_empty())
        .count()
}

fn has_reserved_prefix(name: &str) -> bool {
    let bare = name.strip_prefix('/').unwrap_or(name);
    let head: String = bare
        .chars()
        .take(3)
        .collect::<String>()
        .to_ascii_lowercase();
    head == "aws" || head == "ssm"
}

fn check_chars(name: &str) -> Result<(), ParamError> {
    match name.char_indices().find(|(_, ch)| !is_name_char(*ch)) {
        Some((position, ch)) => Err(ParamError::NameInvalidChar {
            name: name.to_owned(),
            ch,
            position,
        }),
        None => Ok(()),
    }
}

fn check_len(name: &str, field: &'static str) -> Result<(), ParamError> {
    let len = name.chars().count();
    if len == 0 {
        return Err(ParamError::Empty { field });
    }
    if len > MAX_NAME_LEN {
        return Err(ParamError::NameTooLong {
            len,
            max: MAX_NAME_LEN,
        });
    }
    Ok(())
}

fn check_depth(name: &str) -> Result<(), ParamError> {
    let depth = levels(name);
    if depth > MAX_LEVELS {
        return Err(ParamError::HierarchyTooDeep {
            name: name.to_owned(),
            levels: depth,
        });
    }
    Ok(())
}

/// The name AWS works with: spaces at the beginning or end are removed
/// (spaces inside still fail validation).
pub fn normalize_name(name: &str) -> &str {
    name.trim_matches(' ')
}

/// Checks a parameter name against every AWS naming rule. Call it on the
/// [`normalize_name`]d name.
pub fn validate_name(name: &str) -> Result<(), ParamError> {
    check_len(name, "name")?;
    check_chars(name)?;
    if name.contains('/') {
        if !name.starts_with('/') {
            return Err(ParamError::NotFullyQualified {
                name: name.to_owned(),
            });
        }
        // "/" alone, "//" anywhere and a trailing "/" all leave a level empty.
        if name.len() == 1 || name.contains("//") || name.ends_with('/') {
            return Err(ParamError::EmptyLevel {
                name: name.to_owned(),
            });
        }
    }
    if has_reserved_prefix(name) {
        return Err(ParamError::ReservedPrefix {
            name: name.to_owned(),
        });
    }
    check_depth(name)
}

/// Checks a GetParametersByPath `Path`: it begins with `/`, `/` alone is the
/// root, a trailing `/` is allowed, and it has at most 15 levels.
pub fn validate_path(path: &str) -> Result<(), ParamError> {
    check_len(path, "path")?;
    if !path.starts_with('/') || path.contains("//") {
        return Err(ParamError::InvalidPath {
            path: path.to_owned(),
        });
    }
    check_chars(path)?;
    check_depth(path)
}

/// Whether `name` lies under `path`: with `recursive` at any depth, without
/// only as a direct child (one level below). A name equal to the path is not
/// under it. Names without a leading `/` are outside every hierarchy, so no
/// path (not even `/`) contains them.
pub fn under_path(name: &str, path: &str, recursive: bool) -> bool {
    if !name.starts_with('/') {
        return false;
    }
    let prefix = if path.ends_with('/') {
        path.to_owned()
    } else {
        format!("{path}/")
    };
    let Some(rest) = name.strip_prefix(prefix.as_str()) else {
        return false;
    };
    !rest.is_empty() && (recursive || !rest.contains('/'))
}

/// Why a label was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelProblem {
    /// Empty.
    Empty,
    /// Over 100 characters.
    TooLong,
    /// A character other than letters, digits, `.`, `-`, `_`.
    InvalidChar,
    /// Begins with a digit.
    BeginsWithDigit,
    /// Begins with `aws` or `ssm` (any case).
    ReservedPrefix,
}

/// Checks one label against AWS's label rules.
pub fn validate_label(label: &str) -> Result<(), LabelProblem> {
    let Some(first) = label.chars().next() else {
        return Err(LabelProblem::Empty);
    };
    if label.chars().count() > MAX_LABEL_LEN {
        return Err(LabelProblem::TooLong);
    }
    if !label
        .chars()
        .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '-' | '_'))
    {
        return Err(LabelProblem::InvalidChar);
    }
    if first.is_ascii_digit() {
        return Err(LabelProblem::BeginsWithDigit);
    }
    if has_reserved_prefix(label) {
        return Err(LabelProblem::ReservedPrefix);
    }
    Ok(())
}

/// Splits labels into (valid, invalid), keeping order: AWS attaches the
/// valid ones and reports the others as `InvalidLabels` instead of failing.
pub fn split_labels<S: AsRef<str>>(labels: &[S]) -> (Vec<String>, Vec<String>) {
    let mut valid = Vec::new();
    let mut invalid = Vec::new();
    for label in labels {
        let label = label.as_ref();
        match validate_label(label) {
            Ok(()) => valid.push(label.to_owned()),
            Err(_) => invalid.push(label.to_owned()),
        }
    }
    (valid, invalid)
}

/// Which version a `GetParameter` name selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// No selector: the latest version.
    Latest,
    /// `name:3`.
    Version(u64),
    /// `name:label`.
    Label(String),
}

impl Selector {
    /// The selector as AWS echoes it in `Parameter.Selector` (`:3`, `:label`).
    pub fn to_wire(&self) -> Option<String> {
        match self {
            Selector::Latest => None,
            Selector::Version(version) => Some(format!(":{version}")),
            Selector::Label(label) => Some(format!(":{label}")),
        }
    }
}

/// Splits `name`, `name:3` or `name:label` into the name and its selector.
/// Names can't contain `:`, so the first `:` starts the selector.
pub fn parse_selector(input: &str) -> Result<(&str, Selector), ParamError> {
    let Some((name, selector)) = input.split_once(':') else {
        return Ok((input, Selector::Latest));
    };
    let invalid = |reason| ParamError::InvalidSelector {
        input: input.to_owned(),
        reason,
    };
    if name.is_empty() {
        return Err(invalid("the name before ':' is empty"));
    }
    if selector.is_empty() {
        return Err(invalid("nothing follows ':'"));
    }
    if selector.contains(':') {
        return Err(invalid("only one ':' may follow the name"));
    }
    if selector.chars().all(|ch| ch.is_ascii_digit()) {
        return match selector.parse::<u64>() {
            Ok(0) => Err(invalid("versions start at 1")),
            Ok(version) => Ok((name, Selector::Version(version))),
            Err(_) => Err(invalid("the version number is too large")),
        };
    }
    if validate_label(selector).is_err() {
        return Err(invalid("the label is not a valid label"));
    }
    Ok((name, Selector::Label(selector.to_owned())))
}

/// The ARN of a parameter. A hierarchical name already begins with `/`; a
/// plain name gets one, so both read `...:parameter/...`.
pub fn arn(region: &str, account: &str, name: &str) -> String {
    let slash = if name.starts_with('/') { "" } else { "/" };
    format!("arn:aws:ssm:{region}:{account}:parameter{slash}{name}")
}
