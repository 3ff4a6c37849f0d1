//! The OpenAPI document served at `/v1/openapi.json`: generated once, at the
//! first request, by `operon_api::openapi::document` from the API types and
//! the operations each feature describes there. Nothing is kept by hand.

use std::sync::LazyLock;

use serde_json::Value;

static DOCUMENT: LazyLock<Value> = LazyLock::new(operon_api::openapi::document);

static TEXT: LazyLock<String> =
    LazyLock::new(|| serde_json::to_string(document()).expect("the document serialises"));

/// The document.
pub(crate) fn document() -> &'static Value {
    &DOCUMENT
}

/// The document as served.
pub(crate) fn text() -> &'static str {
    &TEXT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_served_text_is_the_document() {
        let parsed: Value = serde_json::from_str(text()).unwrap();
        assert_eq!(&parsed, document());
        assert_eq!(parsed["openapi"], "3.1.0");
        assert!(parsed["paths"].as_object().unwrap().len() >= 70);
    }
}
