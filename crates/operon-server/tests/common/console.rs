//! A browser without JavaScript for the console tests: keeps cookies by
//! hand (reqwest here has no cookie store), follows no redirect, signs in
//! through the form and reads CSRF fields from pages.

use std::collections::BTreeMap;

use reqwest::header::HeaderMap;

use super::Api;

/// A browser without JavaScript: follows nothing, keeps cookies.
pub struct Browser {
    pub base: String,
    pub client: reqwest::Client,
    pub cookies: BTreeMap<String, String>,
}

/// What a page answered.
pub struct Page {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    pub fn location(&self) -> &str {
        self.headers
            .get("location")
            .map_or("", |v| v.to_str().unwrap())
    }

    /// The `Set-Cookie` header setting cookie `name`.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .find(|c| c.starts_with(&format!("{name}=")))
    }

    /// The value of the hidden field `csrf` of the page's (first) form.
    pub fn csrf(&self) -> String {
        let marker = "name=\"csrf\" value=\"";
        let start = self.body.find(marker).expect("a csrf field") + marker.len();
        let end = self.body[start..].find('"').unwrap();
        self.body[start..start + end].to_string()
    }
}

impl Browser {
    pub fn new(api: &Api) -> Browser {
        Browser {
            base: api.server.url(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: BTreeMap::new(),
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        self.send(self.client.get(format!("{}{path}", self.base)))
            .await
    }

    pub async fn post(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Page {
        let mut request = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form_body(form));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request).await
    }

    pub async fn send(&mut self, mut request: reqwest::RequestBuilder) -> Page {
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            request = request.header("cookie", jar.join("; "));
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        for cookie in headers.get_all("set-cookie") {
            let cookie = cookie.to_str().unwrap();
            let (pair, attributes) = cookie.split_once(';').unwrap_or((cookie, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || attributes.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_string(), value.to_string());
            }
        }
        let body = response.text().await.unwrap();
        Page {
            status,
            headers,
            body,
        }
    }

    /// Sign in with `token` through the form; the answer of the POST.
    pub async fn sign_in(&mut self, token: &str) -> Page {
        let form = self.get("/login").await;
        assert_eq!(form.status, 200, "{}", form.body);
        let csrf = form.csrf();
        self.post("/login", &[("token", token), ("csrf", &csrf)], &[])
            .await
    }

    /// Sign in and expect to land on the fleet.
    pub async fn signed_in(api: &Api, token: &str) -> Browser {
        let mut browser = Browser::new(api);
        let answer = browser.sign_in(token).await;
        assert_eq!(answer.status, 303, "{}", answer.body);
        assert_eq!(answer.location(), "/nodes");
        browser
    }

    pub fn session(&self) -> String {
        self.cookies["operon_console"].clone()
    }

    /// The CSRF secret of the session, read from a page's sign-out form.
    pub async fn csrf(&mut self) -> String {
        let page = self.get("/commands").await;
        assert_eq!(page.status, 200, "{}", page.body);
        page.csrf()
    }
}

/// `application/x-www-form-urlencoded` by hand (reqwest here has no `form`).
pub fn form_body(fields: &[(&str, &str)]) -> String {
    let encode = |text: &str| -> String {
        text.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

pub fn assert_security_headers(page: &Page, what: &str) {
    let header = |name: &str| {
        page.headers
            .get(name)
            .unwrap_or_else(|| panic!("{what}: no {name}"))
            .to_str()
            .unwrap()
            .to_string()
    };
    let csp = header("content-security-policy");
    for part in [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
    ] {
        assert!(csp.contains(part), "{what}: {csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{what}: {csp}");
    assert_eq!(header("x-content-type-options"), "nosniff", "{what}");
    assert_eq!(header("referrer-policy"), "same-origin", "{what}");
    assert_eq!(header("x-frame-options"), "DENY", "{what}");
}

impl Browser {
    /// The `Cookie` header this browser sends.
    pub fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// The `<section>` of a page whose heading has id `heading`.
pub fn section<'a>(page: &'a str, heading: &str) -> &'a str {
    let start = page
        .find(&format!("aria-labelledby=\"{heading}\""))
        .unwrap_or_else(|| panic!("no section {heading}: {page}"));
    let end = page[start..].find("</section>").unwrap() + start;
    &page[start..end]
}
