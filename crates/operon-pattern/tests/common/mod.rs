//! Locating the conformance data (`testdata/conformance` in the repository).

use std::path::PathBuf;

/// `$OPERON_CONFORMANCE_DIR`, else `<workspace root>/testdata/conformance`.
/// Panics with a clear message when the directory is missing: a test that
/// cannot find its data must fail, not pass.
pub fn conformance_dir() -> PathBuf {
    let dir = match std::env::var_os("OPERON_CONFORMANCE_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/conformance"),
    };
    assert!(
        dir.join("eventbridge").is_dir(),
        "conformance data not found at {} (set OPERON_CONFORMANCE_DIR)",
        dir.display()
    );
    dir
}

pub fn eventbridge_file(name: &str) -> PathBuf {
    conformance_dir().join("eventbridge").join(name)
}
