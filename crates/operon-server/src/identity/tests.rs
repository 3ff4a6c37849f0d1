//! The pure name rules of identity.

use super::service::*;

#[test]
fn server_actor_names_are_reserved_whatever_the_case() {
    for (name, word) in [
        ("admin", "admin"),
        ("Admin", "admin"),
        ("ANONYMOUS", "anonymous"),
        ("enrollment", "enrollment"),
        ("system", "system"),
        ("Root", "root"),
        ("rule", "rule"),
        ("rule-critical", "rule"),
        ("Execution.x-1", "execution"),
        ("schedule_nightly", "schedule"),
        ("association@a", "association"),
        ("window-1", "window"),
        ("alarm", "alarm"),
        ("role-ops", "role"),
        ("webhook.prom", "webhook"),
    ] {
        assert_eq!(reserved_word(name), Some(word), "{name}");
        let refused = valid_identity_name("user", name).unwrap_err();
        assert!(
            refused.message.contains(&format!("{word:?} is reserved")),
            "{name}: {}",
            refused.message
        );
    }
    for name in [
        "alice",
        "admins",
        "administrator",
        "admin@example.com",
        "rules",
        "roleplay",
        "ops-role",
        "my-rule",
        "windows",
    ] {
        assert_eq!(reserved_word(name), None, "{name}");
        assert!(valid_identity_name("user", name).is_ok(), "{name}");
    }
}

#[test]
fn names_are_one_to_64_of_the_allowed_characters() {
    assert!(valid_name("token", "ci.deploy-1_x@example").is_ok());
    assert!(valid_name("token", &"a".repeat(64)).is_ok());
    for bad in ["", "a b", "a/b", "ü", &"a".repeat(65)] {
        let refused = valid_name("token", bad).unwrap_err();
        assert_eq!(refused.code, "InvalidName", "{bad:?}");
    }
    // Tokens are not actors: a reserved word is a fine token name.
    assert!(valid_name("token", "admin").is_ok());
}
