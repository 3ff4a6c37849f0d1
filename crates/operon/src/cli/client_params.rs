//! The typed API of Parameter Store, the key ring and access keys
//! (`operon_api::params`). Parameter names carry `/`, so they go in the path
//! percent-encoded ([`encode`]); so does every query value.

use anyhow::Result;
use operon_api::params::{
    AccessKey, CreateAccessKey, KeyInfo, LabelChange, LabelResult, Parameter, ParameterDeleted,
    ParameterPage, ParameterTagChange, ParameterTags, ParameterWritten, PutParameter, Rewrapped,
};
use serde_json::json;

use super::client::{Answer, Client, to_json};

/// `text` with every byte outside `A-Za-z0-9-_.~` written as `%XX`: safe as
/// one path segment or one query value, whatever the text holds.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A query string (`?a=1&b=x`) from the pairs whose value is present;
/// empty when none is.
pub fn query(pairs: &[(&str, Option<String>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(key, value)| value.as_ref().map(|v| format!("{key}={}", encode(v))))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// `Some("true")` for a set flag, so that an unset one is left out.
fn flag(on: bool) -> Option<String> {
    on.then(|| "true".to_string())
}

/// What `GET /v1/parameters` filters by.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub path: Option<String>,
    pub recursive: bool,
    pub param_type: Option<String>,
    pub name_contains: Option<String>,
    /// `KEY` or `KEY=VALUE`
    pub tag: Option<String>,
}

/// What `GET /v1/parameters-by-path` reads.
#[derive(Debug, Clone, Default)]
pub struct PathRead {
    pub path: String,
    pub recursive: bool,
    pub decrypt: bool,
    pub label: Option<String>,
}

impl Client {
    // ----- Parameters

    pub async fn put_parameter(
        &self,
        name: &str,
        body: &PutParameter,
    ) -> Result<Answer<ParameterWritten>> {
        let path = format!("/v1/parameters/{}", encode(name));
        Answer::read(self.put(&path, &to_json(body)?).await?)
    }

    /// `NAME`, `NAME:VERSION` or `NAME:LABEL`.
    pub async fn parameter(&self, selector: &str, decrypt: bool) -> Result<Answer<Parameter>> {
        let path = format!(
            "/v1/parameters/{}{}",
            encode(selector),
            query(&[("decrypt", flag(decrypt))])
        );
        Answer::read(self.get(&path).await?)
    }

    pub async fn delete_parameter(&self, name: &str) -> Result<Answer<ParameterDeleted>> {
        Answer::read(
            self.delete(&format!("/v1/parameters/{}", encode(name)))
                .await?,
        )
    }

    /// One page of metadata; `next_token` from the page before.
    pub async fn list_parameters(
        &self,
        filter: &ListFilter,
        next_token: Option<&str>,
    ) -> Result<Answer<ParameterPage>> {
        let query = query(&[
            ("path", filter.path.clone()),
            ("recursive", flag(filter.recursive)),
            ("type", filter.param_type.clone()),
            ("name_contains", filter.name_contains.clone()),
            ("tag", filter.tag.clone()),
            ("max_results", Some("50".into())),
            ("next_token", next_token.map(str::to_string)),
        ]);
        Answer::read(self.get(&format!("/v1/parameters{query}")).await?)
    }

    /// One page of parameters with their values under a path.
    pub async fn parameters_by_path(
        &self,
        read: &PathRead,
        next_token: Option<&str>,
    ) -> Result<Answer<ParameterPage>> {
        let query = query(&[
            ("path", Some(read.path.clone())),
            ("recursive", flag(read.recursive)),
            ("decrypt", flag(read.decrypt)),
            ("label", read.label.clone()),
            ("max_results", Some("10".into())),
            ("next_token", next_token.map(str::to_string)),
        ]);
        Answer::read(self.get(&format!("/v1/parameters-by-path{query}")).await?)
    }

    pub async fn parameter_history(
        &self,
        name: &str,
        decrypt: bool,
    ) -> Result<Answer<Vec<Parameter>>> {
        let path = format!(
            "/v1/parameters/{}/history{}",
            encode(name),
            query(&[("decrypt", flag(decrypt))])
        );
        Answer::read(self.get(&path).await?)
    }

    pub async fn label_parameter(
        &self,
        name: &str,
        change: &LabelChange,
    ) -> Result<Answer<LabelResult>> {
        let path = format!("/v1/parameters/{}/labels", encode(name));
        Answer::read(self.post(&path, &to_json(change)?).await?)
    }

    pub async fn unlabel_parameter(
        &self,
        name: &str,
        change: &LabelChange,
    ) -> Result<Answer<LabelResult>> {
        let path = format!("/v1/parameters/{}/unlabel", encode(name));
        Answer::read(self.post(&path, &to_json(change)?).await?)
    }

    pub async fn parameter_tags(&self, name: &str) -> Result<Answer<ParameterTags>> {
        Answer::read(
            self.get(&format!("/v1/parameters/{}/tags", encode(name)))
                .await?,
        )
    }

    pub async fn tag_parameter(
        &self,
        name: &str,
        change: &ParameterTagChange,
    ) -> Result<Answer<ParameterTags>> {
        let path = format!("/v1/parameters/{}/tags", encode(name));
        Answer::read(self.post(&path, &to_json(change)?).await?)
    }

    // ----- The key ring

    pub async fn keys(&self) -> Result<Answer<Vec<KeyInfo>>> {
        Answer::read(self.get("/v1/keys").await?)
    }

    pub async fn rotate_key(&self) -> Result<Answer<Vec<KeyInfo>>> {
        Answer::read(self.post("/v1/keys/rotate", &json!({})).await?)
    }

    pub async fn rewrap_keys(&self) -> Result<Answer<Rewrapped>> {
        Answer::read(self.post("/v1/keys/rewrap", &json!({})).await?)
    }

    // ----- Access keys

    pub async fn create_access_key(&self, body: &CreateAccessKey) -> Result<Answer<AccessKey>> {
        Answer::read(self.post("/v1/access-keys", &to_json(body)?).await?)
    }

    pub async fn access_keys(&self, user: Option<&str>) -> Result<Answer<Vec<AccessKey>>> {
        let query = query(&[("user", user.map(str::to_string))]);
        Answer::read(self.get(&format!("/v1/access-keys{query}")).await?)
    }

    pub async fn delete_access_key(&self, id: &str) -> Result<Answer<AccessKey>> {
        Answer::read(
            self.delete(&format!("/v1/access-keys/{}", encode(id)))
                .await?,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_one_path_segment() {
        let cases = [
            ("/app/prod/db", "%2Fapp%2Fprod%2Fdb"),
            ("/app/db:3", "%2Fapp%2Fdb%3A3"),
            ("plain-name_1.x~", "plain-name_1.x~"),
            ("a b?c#d%e&f=g+h", "a%20b%3Fc%23d%25e%26f%3Dg%2Bh"),
            ("é", "%C3%A9"),
            ("", ""),
        ];
        for (raw, encoded) in cases {
            assert_eq!(encode(raw), encoded, "{raw:?}");
        }
    }

    #[test]
    fn queries_leave_out_absent_values() {
        assert_eq!(query(&[("decrypt", flag(false))]), "");
        assert_eq!(
            query(&[
                ("path", Some("/app/x".into())),
                ("recursive", flag(true)),
                ("label", None),
                ("tag", Some("env=prod".into())),
            ]),
            "?path=%2Fapp%2Fx&recursive=true&tag=env%3Dprod"
        );
    }

    /// Decode `%XX` back into bytes (for the round trip below).
    fn decode(text: &str) -> Vec<u8> {
        let bytes = text.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        out
    }

    /// Every character of the first planes (each alone and all in one
    /// string): the encoding is path-safe and decodes back to the text.
    #[test]
    fn encoding_round_trips_and_is_path_safe() {
        let all: String = (0u32..0x3000).filter_map(char::from_u32).collect();
        let texts = all
            .chars()
            .map(String::from)
            .chain([all.clone(), "\u{10ffff}/x".into()]);
        for text in texts {
            let encoded = encode(&text);
            assert!(
                encoded
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.~%".contains(&b)),
                "{encoded}"
            );
            assert_eq!(decode(&encoded), text.as_bytes(), "{text:?}");
        }
    }
}
