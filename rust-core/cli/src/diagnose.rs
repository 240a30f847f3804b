//! `flink-autotune diagnose`: the plugin's diagnosis over log files, offline.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use autotune_model::diagnosis::logtext::{LogReader, Record};
use autotune_model::diagnosis::{Catalogue, Context, Diagnoser, Finding, FlinkVersion};
use serde::Serialize;

/// The catalogue: the built-in one, extended by the user's file.
pub fn catalogue(extra: Option<&Path>) -> Result<Catalogue, String> {
    let Some(path) = extra else {
        return Ok(Catalogue::builtin());
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the catalogue {}: {e}", path.display()))?;
    Catalogue::builtin_with(&text).map_err(|e| format!("{}: {e}", path.display()))
}

struct Source {
    name: String,
    reader: Box<dyn Read>,
}

fn open(files: &[PathBuf]) -> Result<Vec<Source>, String> {
    if files.is_empty() {
        return Ok(vec![Source {
            name: "stdin".into(),
            reader: Box::new(io::stdin()),
        }]);
    }
    files
        .iter()
        .map(|f| {
            if f.as_os_str() == "-" {
                return Ok(Source {
                    name: "stdin".into(),
                    reader: Box::new(io::stdin()),
                });
            }
            let file = File::open(f).map_err(|e| format!("cannot read {}: {e}", f.display()))?;
            Ok(Source {
                name: f.display().to_string(),
                reader: Box::new(file),
            })
        })
        .collect()
}

/// Feeds one source through the diagnoser, learning the version and the configuration the
/// process logged at startup as it goes.
fn feed(
    source: Source,
    diagnoser: &mut Diagnoser,
    version: Option<FlinkVersion>,
    lines: &mut u64,
) -> Result<Context, String> {
    // The file's name says whose log it is until its startup banner says so.
    let file_name = Path::new(&source.name)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut ctx = Context {
        version,
        ..Context::of_log_file(&file_name)
    };
    let forced_version = version.is_some();
    let mut reader = LogReader::new();
    let mut input = BufReader::with_capacity(1 << 16, source.reader);
    let mut buf = Vec::with_capacity(256);
    let handle = |record: Record, ctx: &mut Context, diagnoser: &mut Diagnoser| {
        diagnoser.observe_log(&record, Some(&source.name), ctx);
        if forced_version {
            ctx.version = version;
        }
    };
    loop {
        buf.clear();
        let n = input
            .read_until(b'\n', &mut buf)
            .map_err(|e| format!("cannot read {}: {e}", source.name))?;
        if n == 0 {
            break;
        }
        *lines += 1;
        // Logs are not always UTF-8 (user payloads in messages): never fail on them.
        let line = String::from_utf8_lossy(&buf);
        if let Some(record) = reader.push(&line) {
            handle(record, &mut ctx, diagnoser);
        }
    }
    if let Some(record) = reader.finish() {
        handle(record, &mut ctx, diagnoser);
    }
    Ok(ctx)
}

#[derive(Serialize)]
struct Report<'a> {
    files: Vec<String>,
    lines: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    flink_version: Option<FlinkVersion>,
    /// Most important first.
    findings: Vec<&'a Finding>,
    /// Every key the findings suggest, one value each: ready for flink-conf.yaml / config.yaml.
    config: BTreeMap<String, String>,
}

pub fn diagnose(
    files: &[PathBuf],
    json: bool,
    extra: Option<&Path>,
    version: Option<FlinkVersion>,
) -> Result<(), String> {
    let mut diagnoser = Diagnoser::new(Arc::new(catalogue(extra)?));
    let sources = open(files)?;
    let names: Vec<String> = sources.iter().map(|s| s.name.clone()).collect();
    let mut lines = 0;
    let mut seen_version = version;
    for source in sources {
        let ctx = feed(source, &mut diagnoser, version, &mut lines)?;
        seen_version = seen_version.or(ctx.version);
    }
    let report = Report {
        files: names,
        lines,
        flink_version: seen_version,
        findings: diagnoser.ranked(),
        config: diagnoser.config_keys(),
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
        );
        return Ok(());
    }
    print_text(&report);
    Ok(())
}

fn print_text(report: &Report<'_>) {
    let version = report
        .flink_version
        .map_or_else(|| "unknown".to_string(), |v| v.to_string());
    println!(
        "{} finding(s) in {} line(s) of {} (Flink {version})",
        report.findings.len(),
        report.lines,
        report.files.join(", ")
    );
    for d in &report.findings {
        println!();
        println!(
            "{} {} ({}) x{}: {}",
            d.code, d.name, d.severity, d.count, d.title
        );
        println!("  evidence: {}", d.evidence);
        if let Some(source) = &d.source {
            println!("  where:    {source}");
        }
        if let Some(context) = &d.context {
            println!("  context:  {context}");
        }
        println!("  cause:    {}", d.cause);
        for s in &d.config {
            println!("  set:      {}", s.describe());
        }
        println!("  fix:      {}", d.fix);
        if let Some(fixed) = &d.fixed_in {
            println!("  fixed in: {fixed}");
        }
        println!("  docs:     {}", d.docs);
    }
    if !report.config.is_empty() {
        println!();
        println!("# Keys for flink-conf.yaml / config.yaml:");
        for (k, v) in &report.config {
            println!("{k}: {v}");
        }
    }
}

/// The catalogue as a Markdown table: code, name, severity, what it is, the keys it sets.
pub fn signatures(extra: Option<&Path>) -> Result<(), String> {
    let catalogue = catalogue(extra)?;
    println!("| code | name | severity | what | keys |");
    println!("| --- | --- | --- | --- | --- |");
    let mut sorted: Vec<_> = catalogue.signatures.iter().collect();
    sorted.sort_by(|a, b| a.code.cmp(&b.code));
    for s in sorted {
        let keys: Vec<String> = s.set.iter().map(|k| format!("`{}`", k.key)).collect();
        let what = if s.wrapper {
            format!(
                "{} (a wrapper: the root cause is reported when known)",
                s.title
            )
        } else {
            s.title.clone()
        };
        println!(
            "| {} | {} | {} | {} | {} |",
            s.code,
            s.name,
            s.severity,
            what,
            keys.join(", ")
        );
    }
    Ok(())
}
