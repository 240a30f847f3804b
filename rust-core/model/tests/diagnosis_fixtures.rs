//! Every signature of the catalogue against real Flink log text: each fixture
//! `tests/fixtures/diagnosis/<CODE>-<name>[.<variant>].log` must come out with `<CODE>` as
//! its top finding, and each `clean-*.log` (healthy logs of real clusters) with none.
//!
//! The harvested texts (`harvested/index.toml`, issue 14) hold their `train` part here: code,
//! key and, for a memory failure, the process whose keys they are. Their `held-out` part is
//! never asserted: it measures how the patterns generalise (benches/diagnosis_report.py).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use autotune_model::diagnosis::logtext::records;
use autotune_model::diagnosis::{Catalogue, Context, Diagnoser, Process};
use serde::Deserialize;

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
    let name = path.file_name().unwrap().to_string_lossy();
    let mut ctx = Context::of_log_file(&name);
    for r in records(&text) {
        d.observe_log(&r, None, &mut ctx);
    }
    d
}

#[derive(Deserialize)]
struct Harvest {
    case: Vec<HarvestedCase>,
}

#[derive(Deserialize)]
struct HarvestedCase {
    file: String,
    code: String,
    process: String,
    #[serde(default)]
    key: Vec<String>,
    release: String,
    source: String,
    split: String,
}

fn harvested() -> Vec<HarvestedCase> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/diagnosis/harvested");
    let index: Harvest =
        toml::from_str(&fs::read_to_string(dir.join("index.toml")).unwrap()).unwrap();
    index.case
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
fn every_harvested_training_text_gets_its_code_and_key() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/diagnosis/harvested");
    let catalogue = Catalogue::builtin();
    // A release before a rename prints the old spelling: the index names the newest.
    let newest = |key: &str| {
        catalogue
            .renames
            .iter()
            .find(|r| r.old == key)
            .map_or(key.to_string(), |r| r.key.clone())
    };
    let cases = harvested();
    let mut wrong = Vec::new();
    let mut checked = 0;
    for c in cases.iter().filter(|c| c.split == "train") {
        assert!(
            !c.release.is_empty() && !c.source.is_empty(),
            "{}: no release or source",
            c.file
        );
        checked += 1;
        let d = diagnose(&dir.join(&c.file));
        // A healthy excerpt users pasted: any finding is a false alarm.
        if c.code == "none" {
            if let Some(f) = d.ranked().first() {
                wrong.push(format!("{}: healthy, found {}", c.file, f.code));
            }
            continue;
        }
        let Some(top) = d.ranked().into_iter().next() else {
            wrong.push(format!("{}: no finding", c.file));
            continue;
        };
        let key = top.config.first().map(|s| newest(&s.key));
        let memory = c.code.as_str() < "AT310";
        let process_right = !memory || top.process == Process::from_name(&c.process);
        let key_right = c.key.is_empty()
            || key
                .as_ref()
                .is_some_and(|k| c.key.iter().any(|l| newest(l) == *k));
        if top.code != c.code || !key_right || !process_right {
            wrong.push(format!(
                "{}: expected {} {} {:?}, found {} {:?} {key:?}",
                c.file, c.code, c.process, c.key, top.code, top.process
            ));
        }
    }
    assert!(checked >= 40, "only {checked} training texts");
    assert!(
        wrong.is_empty(),
        "{} of {checked} wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    // Every fixture in the folder is in the index, and the other way round.
    let listed: BTreeSet<&str> = cases.iter().map(|c| c.file.as_str()).collect();
    let present: BTreeSet<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".log"))
        .collect();
    assert_eq!(
        present.iter().map(String::as_str).collect::<BTreeSet<_>>(),
        listed
    );
}

#[test]
fn every_signature_has_a_fixture() {
    let covered: BTreeSet<String> = fixtures()
        .iter()
        .filter_map(|p| expected_code(p))
        .chain(
            harvested()
                .into_iter()
                .filter(|c| c.split == "train")
                .map(|c| c.code),
        )
        .collect();
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
