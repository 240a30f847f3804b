//! The catalogue of known failures: data, not code. The built-in catalogue is
//! `rust-core/model/diagnosis/catalogue.toml`, compiled in; a user's own file (same format)
//! adds entries or replaces built-in ones by code, without recompiling anything.

use std::collections::BTreeSet;
use std::fmt;

use regex::{Regex, RegexSet};
use serde::Deserialize;

use super::{FlinkVersion, Severity};

/// The catalogue shipped with the plugin.
pub const BUILTIN: &str = include_str!("../../diagnosis/catalogue.toml");

/// Codes that the code itself gives (not catalogue entries); a catalogue may not take them.
pub const RESERVED_CODES: &[&str] = &["AT390", "AT399"];

/// One known failure.
#[derive(Debug, Clone)]
pub struct Signature {
    pub code: String,
    pub name: String,
    pub severity: Severity,
    pub title: String,
    pub patterns: Vec<Regex>,
    /// A wrapper or a symptom: the matcher looks for the root cause first.
    pub wrapper: bool,
    pub cause: String,
    pub fix: String,
    /// The fix when the failure happened in a JobManager (its memory has other keys).
    pub jobmanager_fix: Option<String>,
    pub docs: String,
    /// A Flink (or connector) release that fixes the bug behind it.
    pub fixed_in: Option<String>,
    pub set: Vec<Setting>,
    /// Named parts that must be equal where a pattern captured them all: "X cannot be cast to
    /// X" is two copies of one class, "X cannot be cast to Y" an ordinary bad cast.
    pub same: Vec<String>,
}

impl Signature {
    /// The first pattern that matches `text` (with its named parts equal where `same` asks),
    /// with its captures.
    pub fn matches<'t>(&self, text: &'t str) -> Option<regex::Captures<'t>> {
        self.matched(text).map(|(_, caps)| caps)
    }

    /// Like `matches`, with the pattern that matched.
    pub fn matched<'t>(&self, text: &'t str) -> Option<(&Regex, regex::Captures<'t>)> {
        self.patterns
            .iter()
            .filter_map(|p| p.captures(text).map(|caps| (p, caps)))
            .find(|(_, caps)| self.parts_agree(caps))
    }

    fn parts_agree(&self, caps: &regex::Captures<'_>) -> bool {
        let mut parts = self.same.iter().filter_map(|name| caps.name(name));
        let first = parts.next();
        first.is_none_or(|first| parts.all(|p| p.as_str() == first.as_str()))
    }
}

/// One config change a signature suggests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The newest spelling of the key.
    pub key: String,
    /// The value expression (see [`super::suggest`]).
    pub value: String,
    /// Flink's default for the key, if it has one.
    pub default: Option<String>,
    /// First release that reads the key.
    pub since: Option<FlinkVersion>,
    /// First release that no longer reads it.
    pub until: Option<FlinkVersion>,
    /// The named part of a pattern this setting is bound to: it is suggested only when that
    /// part matched (one failure, several causes: a Kafka producer that blocked vs a consumer
    /// whose API call timed out).
    pub when: Option<String>,
}

/// A key whose spelling changed: releases before `since` read `old`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rename {
    pub key: String,
    pub old: String,
    pub since: FlinkVersion,
}

#[derive(Debug, Clone)]
pub struct Catalogue {
    pub signatures: Vec<Signature>,
    pub renames: Vec<Rename>,
    /// Every pattern of every signature, to match a text against all of them in one pass.
    all_patterns: RegexSet,
    /// For each pattern of `all_patterns`, the index of its signature.
    owner: Vec<usize>,
}

/// What is wrong with a catalogue file, naming the entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogueError(pub String);

impl fmt::Display for CatalogueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CatalogueError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFormat {
    #[serde(default)]
    format: Option<u32>,
    #[serde(default)]
    signature: Vec<SignatureEntry>,
    #[serde(default)]
    rename: Vec<RenameEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignatureEntry {
    code: String,
    name: String,
    severity: Severity,
    title: String,
    patterns: Vec<String>,
    #[serde(default)]
    wrapper: bool,
    cause: String,
    fix: String,
    #[serde(default)]
    jobmanager_fix: String,
    docs: String,
    #[serde(default)]
    fixed_in: String,
    #[serde(default)]
    set: Vec<SettingEntry>,
    #[serde(default)]
    same: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingEntry {
    key: String,
    value: String,
    #[serde(default)]
    default: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    when: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RenameEntry {
    key: String,
    old: String,
    since: String,
}

impl SignatureEntry {
    /// The signature this entry describes, once every field is checked; `codes` are the
    /// codes of the entries before it.
    fn checked(self, codes: &mut BTreeSet<String>) -> Result<Signature, CatalogueError> {
        let e = self;
        let entry = format!("signature {} {}", e.code, e.name);
        check_code(&e.code, &entry, codes)?;
        if e.name.is_empty()
            || !e
                .name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(CatalogueError(format!(
                "{entry}: the name must be UPPER_SNAKE_CASE"
            )));
        }
        if e.patterns.is_empty() {
            return Err(CatalogueError(format!(
                "{entry}: it needs at least one pattern"
            )));
        }
        let patterns = e
            .patterns
            .iter()
            .map(|p| {
                Regex::new(p)
                    .map_err(|err| CatalogueError(format!("{entry}: pattern {p:?}: {err}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let set = e
            .set
            .into_iter()
            .map(|s| s.checked(&entry))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Signature {
            code: e.code,
            name: e.name,
            severity: e.severity,
            title: e.title,
            patterns,
            wrapper: e.wrapper,
            cause: e.cause.trim().to_string(),
            fix: e.fix.trim().to_string(),
            jobmanager_fix: non_empty(e.jobmanager_fix.trim().to_string()),
            docs: e.docs.trim().to_string(),
            fixed_in: non_empty(e.fixed_in),
            set,
            same: e.same,
        })
    }
}

/// A code is `AT` + digits, in the catalogue's ranges, and new.
fn check_code(code: &str, entry: &str, codes: &mut BTreeSet<String>) -> Result<(), CatalogueError> {
    let code_ok =
        code.len() >= 4 && code.starts_with("AT") && code[2..].chars().all(|c| c.is_ascii_digit());
    if !code_ok {
        return Err(CatalogueError(format!(
            "{entry}: the code must be AT followed by digits"
        )));
    }
    let number: u32 = code[2..].parse().unwrap_or(0);
    if RESERVED_CODES.contains(&code)
        || !((300..390).contains(&number) || (900..1000).contains(&number))
    {
        return Err(CatalogueError(format!(
            "{entry}: catalogue codes are AT300-AT389 (built in) or AT900-AT999 (yours); the others belong to the models"
        )));
    }
    if !codes.insert(code.to_string()) {
        return Err(CatalogueError(format!("{entry}: the code is used twice")));
    }
    Ok(())
}

impl SettingEntry {
    fn checked(self, entry: &str) -> Result<Setting, CatalogueError> {
        if self.key.trim().is_empty() || self.value.trim().is_empty() {
            return Err(CatalogueError(format!(
                "{entry}: every setting needs a key and a value"
            )));
        }
        Ok(Setting {
            since: version("since", &self.since, entry)?,
            until: version("until", &self.until, entry)?,
            key: self.key.trim().to_string(),
            value: self.value.trim().to_string(),
            default: non_empty(self.default),
            when: non_empty(self.when),
        })
    }
}

fn non_empty(s: String) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_string())
}

fn version(field: &str, text: &str, entry: &str) -> Result<Option<FlinkVersion>, CatalogueError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|e| CatalogueError(format!("{entry}: {field}: {e}")))
}

impl Catalogue {
    /// The built-in catalogue. It is checked by the tests, so it always parses.
    pub fn builtin() -> Catalogue {
        Catalogue::parse(BUILTIN).expect("the built-in catalogue is valid (tested)")
    }

    /// Reads a catalogue file. Every entry is checked: codes look like `AT` + digits and are
    /// unique, names are UPPER_SNAKE, patterns compile, versions parse.
    pub fn parse(text: &str) -> Result<Catalogue, CatalogueError> {
        let file: FileFormat = toml::from_str(text)
            .map_err(|e| CatalogueError(format!("not a valid catalogue: {e}")))?;
        if let Some(f) = file.format {
            if f != 1 {
                return Err(CatalogueError(format!(
                    "catalogue format {f} is not supported (this build reads format 1)"
                )));
            }
        }
        let mut codes = BTreeSet::new();
        let signatures = file
            .signature
            .into_iter()
            .map(|e| e.checked(&mut codes))
            .collect::<Result<Vec<_>, _>>()?;
        let mut renames = Vec::with_capacity(file.rename.len());
        for r in file.rename {
            let entry = format!("rename {} -> {}", r.old, r.key);
            let since = version("since", &r.since, &entry)?
                .ok_or_else(|| CatalogueError(format!("{entry}: since is required")))?;
            renames.push(Rename {
                key: r.key,
                old: r.old,
                since,
            });
        }
        Catalogue::indexed(signatures, renames)
    }

    fn indexed(
        signatures: Vec<Signature>,
        renames: Vec<Rename>,
    ) -> Result<Catalogue, CatalogueError> {
        let mut owner = Vec::new();
        let mut sources = Vec::new();
        for (i, s) in signatures.iter().enumerate() {
            for p in &s.patterns {
                owner.push(i);
                sources.push(p.as_str().to_string());
            }
        }
        let all_patterns = RegexSet::new(&sources)
            .map_err(|e| CatalogueError(format!("the patterns together are too large: {e}")))?;
        Ok(Catalogue {
            signatures,
            renames,
            all_patterns,
            owner,
        })
    }

    /// Indexes of the signatures with a pattern matching `text`, in catalogue order.
    pub fn matching(&self, text: &str) -> Vec<usize> {
        let mut out: Vec<usize> = self
            .all_patterns
            .matches(text)
            .into_iter()
            .map(|p| self.owner[p])
            .collect();
        out.dedup();
        out
    }

    /// Adds a user's catalogue: an entry with a code already present replaces it (the user
    /// knows their platform better), new codes are added, renames are merged.
    /// On error `self` is left as it was.
    pub fn extend(&mut self, other: Catalogue) -> Result<(), CatalogueError> {
        let mut signatures = self.signatures.clone();
        let mut renames = self.renames.clone();
        for s in other.signatures {
            match signatures.iter_mut().find(|mine| mine.code == s.code) {
                Some(mine) => *mine = s,
                None => signatures.push(s),
            }
        }
        for r in other.renames {
            if !renames.contains(&r) {
                renames.push(r);
            }
        }
        *self = Catalogue::indexed(signatures, renames)?;
        Ok(())
    }

    /// The built-in catalogue extended by a user's file (its text); errors name the entry.
    pub fn builtin_with(user: &str) -> Result<Catalogue, CatalogueError> {
        let mut catalogue = Catalogue::builtin();
        catalogue.extend(Catalogue::parse(user)?)?;
        Ok(catalogue)
    }

    pub fn get(&self, code: &str) -> Option<&Signature> {
        self.signatures.iter().find(|s| s.code == code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_catalogue_is_valid_and_large_enough() {
        let c = Catalogue::builtin();
        assert!(
            c.signatures.len() >= 35,
            "{} signatures",
            c.signatures.len()
        );
        for s in &c.signatures {
            assert!(
                !s.cause.is_empty() && !s.fix.is_empty() && !s.title.is_empty(),
                "{}",
                s.code
            );
            assert!(
                s.docs.starts_with("https://"),
                "{}: docs {}",
                s.code,
                s.docs
            );
            assert!(
                s.code.starts_with("AT3"),
                "{}: diagnosis codes are AT3xx",
                s.code
            );
        }
    }

    #[test]
    fn parts_that_must_agree_tell_two_copies_of_a_class_from_a_bad_cast() {
        let c = Catalogue::builtin();
        let duplicate = c.get("AT342").unwrap();
        let cast =
            |a: &str, b: &str| format!("java.lang.ClassCastException: {a} cannot be cast to {b}");
        assert!(duplicate
            .matches(&cast("org.x.Conf", "org.x.Conf"))
            .is_some());
        assert!(duplicate
            .matches(&cast("java.lang.String", "java.lang.Long"))
            .is_none());
        assert!(
            c.matching(&cast("java.lang.String", "java.lang.Long"))
                .contains(&c.signatures.iter().position(|s| s.code == "AT342").unwrap()),
            "the one-pass set still finds it: the parts are checked after"
        );
    }

    #[test]
    fn a_bad_entry_is_named_in_the_error() {
        let bad = r#"
[[signature]]
code = "AT900"
name = "MINE"
severity = "error"
title = "t"
patterns = ["(unclosed"]
cause = "c"
fix = "f"
docs = "https://example.org"
"#;
        let e = Catalogue::parse(bad).unwrap_err();
        assert!(
            e.0.contains("AT900 MINE") && e.0.contains("(unclosed"),
            "{e}"
        );
        let e = Catalogue::parse("[[signature]]\ncode = 1").unwrap_err();
        assert!(e.0.starts_with("not a valid catalogue"), "{e}");
        let twice = format!(
            "{}{}",
            bad.replace("(unclosed", "x"),
            bad.replace("(unclosed", "y")
        );
        assert!(Catalogue::parse(&twice)
            .unwrap_err()
            .0
            .contains("used twice"));
        assert!(
            Catalogue::parse(&bad.replace("AT900", "AT390").replace("(unclosed", "x")).is_err()
        );
        assert!(
            Catalogue::parse(&bad.replace("AT900", "AT400").replace("(unclosed", "x")).is_err(),
            "the advisor's"
        );
    }

    #[test]
    fn a_user_catalogue_adds_and_replaces_entries() {
        let mut c = Catalogue::builtin();
        let n = c.signatures.len();
        let first = c.signatures[0].code.clone();
        let mine = format!(
            r#"
[[signature]]
code = "{first}"
name = "REPLACED"
severity = "info"
title = "mine"
patterns = ["my text"]
cause = "c"
fix = "f"
docs = "https://example.org"

[[signature]]
code = "AT901"
name = "PLATFORM_QUOTA"
severity = "error"
title = "Our platform's quota"
patterns = ["QuotaExceeded: (?P<what>\\w+)"]
cause = "c"
fix = "f"
docs = "https://wiki.example.org/quota"
"#
        );
        c.extend(Catalogue::parse(&mine).unwrap()).unwrap();
        assert_eq!(c.signatures.len(), n + 1);
        assert_eq!(c.get(&first).unwrap().name, "REPLACED");
        assert_eq!(
            c.get("AT901")
                .unwrap()
                .matches("x QuotaExceeded: cpu")
                .unwrap()["what"]
                .to_string(),
            "cpu"
        );
    }
}
