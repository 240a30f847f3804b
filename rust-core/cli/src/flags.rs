//! The plugin's loop options as command-line flags: one flag per entry of the option table
//! (`--decision-window 30s` is `metrics.reporter.autotune.decision-window: 30s`), parsed and
//! validated by the same code as inside Flink.

use clap::{Arg, ArgMatches, Args, FromArgMatches};

use autotune_model::options::{OptionScope, OptionSpec, Options, OPTIONS};

/// Options `--rest` stands for on the command line.
const NOT_FLAGS: &[&str] = &["rest-url"];

fn flag_options() -> impl Iterator<Item = &'static OptionSpec> {
    OPTIONS
        .iter()
        .filter(|s| s.scope == OptionScope::Loop && !NOT_FLAGS.contains(&s.key))
}

/// The values given on the command line, by option key.
#[derive(Debug, Clone, Default)]
pub struct LoopFlags {
    given: Vec<(String, String)>,
}

impl LoopFlags {
    /// Parses the flags given over `defaults` (the command's own defaults, given flags win).
    /// A bad value is an error naming the flag, never a silent default.
    pub fn options(&self, defaults: &[(&str, String)]) -> Result<Options, String> {
        let pairs = defaults
            .iter()
            .filter(|(key, _)| !self.given.iter().any(|(k, _)| k == key))
            .map(|(k, v)| (*k, v.as_str()))
            .chain(self.given.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let parsed = Options::parse(pairs);
        if parsed.problems.is_empty() {
            Ok(parsed.options)
        } else {
            Err(parsed
                .problems
                .join("; ")
                .replace("metrics.reporter.autotune.", "--"))
        }
    }
}

impl FromArgMatches for LoopFlags {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let given = flag_options()
            .filter_map(|s| {
                matches
                    .get_one::<String>(s.key)
                    .map(|v| (s.key.to_string(), v.clone()))
            })
            .collect();
        Ok(LoopFlags { given })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl Args for LoopFlags {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        flag_options().fold(cmd, |cmd, spec| {
            let help = format!("{} [plugin default: {}]", spec.doc, spec.default).replace('`', "");
            cmd.arg(
                Arg::new(spec.key)
                    .long(spec.key)
                    .value_name("VALUE")
                    .help(help)
                    .help_heading("The plugin's options (metrics.reporter.autotune.<option>)"),
            )
        })
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}
