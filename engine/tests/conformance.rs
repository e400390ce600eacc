//! Runs twitter-text's conformance YAML against `chirp_engine::text`, reading the files in place.

use std::path::{Path, PathBuf};

use chirp_engine::text::{extract_hashtags, validate_tweet};
use serde::Deserialize;

/// Where the suite lives unless `CHIRP_CONFORMANCE_DIR` says otherwise: `../shared/` beside
/// the repository.
const DEFAULT_DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/conformance/twitter-text"
);

#[derive(Deserialize)]
struct Case<E> {
    description: String,
    text: String,
    expected: E,
}

#[derive(Deserialize)]
struct ValidateFile {
    tests: ValidateSections,
}

#[derive(Deserialize)]
struct ValidateSections {
    tweets: Vec<Case<bool>>,
}

#[derive(Deserialize)]
struct ExtractFile {
    tests: ExtractSections,
}

#[derive(Deserialize)]
struct ExtractSections {
    hashtags: Vec<Case<Vec<String>>>,
    hashtags_from_astral: Vec<Case<Vec<String>>>,
}

/// The suite's directory, or None (with a note) when this machine has no copy of it.
fn conformance_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("CHIRP_CONFORMANCE_DIR")
        .map_or_else(|| PathBuf::from(DEFAULT_DIR), PathBuf::from);
    // Accept the parent `conformance/` folder too, since either reading of the variable is natural.
    let nested = dir.join("twitter-text");
    let dir = if dir.join("extract.yml").exists() || !nested.is_dir() {
        dir
    } else {
        nested
    };
    if dir.is_dir() {
        Some(dir)
    } else {
        println!(
            "note: conformance dir {} is absent; skipping twitter-text conformance",
            dir.display()
        );
        None
    }
}

fn load<T: for<'de> Deserialize<'de>>(path: &Path) -> T {
    let raw =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_yaml::from_str(&raw).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// Runs every case, prints each failure's description, and fails if any case failed.
fn check<E: PartialEq + std::fmt::Debug>(
    section: &str,
    cases: &[Case<E>],
    run: impl Fn(&str) -> E,
) {
    let failures: Vec<_> = cases
        .iter()
        .filter_map(|case| {
            let got = run(&case.text);
            (got != case.expected).then(|| {
                format!(
                    "FAIL [{section}] {}: text {:?}, expected {:?}, got {got:?}",
                    case.description, case.text, case.expected
                )
            })
        })
        .collect();
    for failure in &failures {
        println!("{failure}");
    }
    println!(
        "{section}: {} of {} conformance cases passed",
        cases.len() - failures.len(),
        cases.len()
    );
    assert!(
        failures.is_empty(),
        "{} {section} case(s) failed",
        failures.len()
    );
}

#[test]
fn validate_tweets() {
    let Some(dir) = conformance_dir() else { return };
    let file: ValidateFile = load(&dir.join("validate.yml"));
    check("validate.tweets", &file.tests.tweets, |text| {
        validate_tweet(text).is_ok()
    });
}

#[test]
fn extract_hashtags_conformance() {
    let Some(dir) = conformance_dir() else { return };
    let file: ExtractFile = load(&dir.join("extract.yml"));
    check("extract.hashtags", &file.tests.hashtags, extract_hashtags);
    check(
        "extract.hashtags_from_astral",
        &file.tests.hashtags_from_astral,
        extract_hashtags,
    );
}
