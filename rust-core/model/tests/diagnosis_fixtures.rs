//! Every signature of the catalogue against real Flink log text: each fixture
//! `tests/fixtures/diagnosis/<CODE>-<name>[.<variant>].log` must come out with `<CODE>` as
//! its top finding, and each `clean-*.log` (healthy logs of real clusters) with none.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use autotune_model::diagnosis::logtext::records;
use autotune_model::diagnosis::{Catalogue, Context, Diagnoser};

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/diagnosis");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    files
}

/// What `flink-autotune diagnose` does with one file.
fn diagnose(path: &Path) -> Diagnoser {
    let text = String::from_utf8_lossy(&fs::read(path).unwrap()).into_owned();
    static CATALOGUE: OnceLock<Arc<Catalogue>> = OnceLock::new();
    let mut d = Diagnoser::new(
        CATALOGUE
            .get_or_init(|| Arc::new(Catalogue::builtin()))
            .clone(),
    );
    let mut ctx = Context::default();
    for r in records(&text) {
        d.observe_log(&r, None, &mut ctx);
    }
    d
}

fn expected_code(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    name.starts_with("AT")
        .then(|| name.split('-').next().unwrap().to_string())
}

#[test]
fn every_fixture_has_its_code_as_the_top_finding() {
    let mut wrong = Vec::new();
    let mut checked = 0;
    for path in fixtures() {
        let Some(code) = expected_code(&path) else {
            continue;
        };
        checked += 1;
        let d = diagnose(&path);
        let ranked: Vec<String> = d
            .ranked()
            .iter()
            .map(|f| format!("{} {}", f.code, f.name))
            .collect();
        if !ranked.first().is_some_and(|top| top.starts_with(&code)) {
            wrong.push(format!(
                "{}: expected {code}, found {ranked:?}",
                path.file_name().unwrap().to_string_lossy()
            ));
        }
    }
    assert!(checked >= 35, "only {checked} fixtures");
    assert!(
        wrong.is_empty(),
        "{} of {checked} fixtures wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn healthy_logs_of_real_clusters_have_no_findings() {
    let mut checked = 0;
    for path in fixtures().into_iter().filter(|p| {
        p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("clean-")
    }) {
        checked += 1;
        let d = diagnose(&path);
        let found: Vec<String> = d
            .ranked()
            .iter()
            .map(|f| format!("{} {}: {}", f.code, f.name, f.evidence))
            .collect();
        assert!(found.is_empty(), "{}: {found:#?}", path.display());
    }
    assert!(checked >= 2, "clean logs are missing");
}

#[test]
fn every_signature_has_a_fixture() {
    let covered: BTreeSet<String> = fixtures().iter().filter_map(|p| expected_code(p)).collect();
    let missing: Vec<String> = Catalogue::builtin()
        .signatures
        .iter()
        .filter(|s| !covered.contains(&s.code))
        .map(|s| format!("{} {}", s.code, s.name))
        .collect();
    assert!(missing.is_empty(), "no fixture for {missing:?}");
}

#[test]
fn the_readme_lists_every_code() {
    let readme =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md")).unwrap();
    let missing: Vec<String> = Catalogue::builtin()
        .signatures
        .iter()
        .map(|s| format!("| {} | {} |", s.code, s.name))
        .chain([
            "| AT390 | USER_CODE_FAILURE |".to_string(),
            "| AT399 | UNRECOGNIZED_FAILURE |".to_string(),
        ])
        .filter(|row| !readme.contains(row.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "README's code table lacks {missing:?} (flink-autotune signatures prints the rows)"
    );
}
