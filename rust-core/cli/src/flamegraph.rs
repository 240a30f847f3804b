//! `flink-autotune flamegraph`: a vertex's flame graph from outside the cluster, through
//! Flink's own endpoint (`rest.flamegraph.enabled: true`), written as the plugin writes its
//! own; or a folded file rendered again as SVG.

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use autotune_coordinator::epoch_ms;
use autotune_coordinator::flamegraphs::{self, describe_top};
use autotune_coordinator::rest::{FlinkRest, JobVertex};
use autotune_model::profile::{Profile, ProfileLimits};

/// Which vertex of which job, and what kind of graph Flink should sample.
pub struct Capture<'a> {
    pub rest: &'a str,
    pub job: &'a str,
    pub vertex: &'a str,
    pub kind: &'a str,
    pub wait: Duration,
}

/// Asks Flink for the vertex's flame graph until it has one (sampling takes a few seconds),
/// then writes `.folded` and `.svg` into `out`.
pub fn capture(c: &Capture<'_>, out: &Path) -> Result<(), String> {
    let rest = FlinkRest::new(c.rest, Duration::from_secs(10));
    let enabled = rest
        .jobmanager_config()
        .map_err(|e| e.to_string())?
        .get("rest.flamegraph.enabled")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if !enabled {
        return Err(format!(
            "Flink's flame graphs are off on {}: set rest.flamegraph.enabled: true in its configuration and restart the JobManager, or read the plugin's own under <output dir>/{}/flamegraphs/ (written when the vertex is the bottleneck)",
            c.rest, c.job
        ));
    }
    let job = rest.job(c.job).map_err(|e| e.to_string())?;
    let vertex = find_vertex(&job.vertices, c.vertex)?;
    let asked = epoch_ms();
    let deadline = Instant::now() + c.wait;
    let stacks = loop {
        let graph = rest
            .flame_graph(&job.jid, &vertex.id, c.kind)
            .map_err(|e| e.to_string())?;
        // Flink answers with its last graph (or none) while it samples anew.
        if let (true, Some(root)) = (graph.end_timestamp >= asked, graph.data) {
            break root.stacks();
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "Flink gave no flame graph of vertex \"{}\" within {}s (is it running?)",
                vertex.name,
                c.wait.as_secs()
            ));
        }
        thread::sleep(Duration::from_millis(500));
    };
    let mut profile = Profile::from_folded(
        stacks.iter().map(|(s, n)| (s.as_str(), *n)),
        ProfileLimits::MERGED,
    );
    profile.job_id = job.jid.clone();
    profile.vertex_id = vertex.id.clone();
    profile.vertex_name = vertex.name.clone();
    profile.at_ms = epoch_ms();
    profile.threads = vertex.parallelism;
    report(
        &profile,
        &flamegraphs::write(out, &profile).map_err(|e| e.to_string())?,
    );
    Ok(())
}

/// Renders a folded file (`root;...;leaf count` lines) as SVG beside it, or into `out`.
pub fn render_folded(folded: &Path, out: Option<&Path>) -> Result<(), String> {
    let text = std::fs::read_to_string(folded)
        .map_err(|e| format!("cannot read {}: {e}", folded.display()))?;
    let mut stacks = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let parsed = line
            .rsplit_once(' ')
            .and_then(|(frames, count)| Some((frames, count.trim().parse::<u64>().ok()?)));
        match parsed {
            Some(stack) => stacks.push(stack),
            None => {
                return Err(format!(
                    "{} line {}: not `frame;frame;... count`: {line:.80}",
                    folded.display(),
                    n + 1
                ))
            }
        }
    }
    let mut profile = Profile::from_folded(stacks, ProfileLimits::MERGED);
    let stem = folded
        .file_stem()
        .map_or_else(|| "flamegraph".into(), |s| s.to_string_lossy().into_owned());
    profile.vertex_name = stem.clone();
    profile.at_ms = epoch_ms();
    let svg = flamegraphs::render_svg(&profile, &profile.folded()).map_err(|e| e.to_string())?;
    let dir = out.or(folded.parent()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let path = dir.join(format!("{stem}.svg"));
    std::fs::write(&path, svg).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    println!("{}", path.display());
    Ok(())
}

fn report(p: &Profile, files: &flamegraphs::Written) {
    println!(
        "vertex \"{}\" ({}): {} samples; top frames {}",
        p.vertex_name,
        p.vertex_id,
        p.samples,
        describe_top(&p.top_frames(5))
    );
    println!("{}", files.svg.display());
    println!("{}", files.folded.display());
}

/// A vertex by its id, its name, or the start of its name when only one matches.
fn find_vertex<'a>(vertices: &'a [JobVertex], wanted: &str) -> Result<&'a JobVertex, String> {
    if let Some(v) = vertices.iter().find(|v| v.id == wanted || v.name == wanted) {
        return Ok(v);
    }
    let starting: Vec<&JobVertex> = vertices
        .iter()
        .filter(|v| v.name.starts_with(wanted))
        .collect();
    match starting.as_slice() {
        [one] => Ok(one),
        _ => Err(format!(
            "no single vertex is \"{wanted}\"; the job's vertices: {}",
            vertices
                .iter()
                .map(|v| format!("\"{}\" ({})", v.name, v.id))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}
