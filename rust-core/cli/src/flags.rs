//! The plugin's loop options as command-line flags: one flag per entry of the option table
//! (`--decision-window 30s` is `metrics.reporter.autotune.decision-window: 30s`), parsed and
//! validated by the same code as inside Flink.

use clap::{Arg, ArgAction, ArgMatches, Args, FromArgMatches};

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
        let mut given = Vec::new();
        for spec in flag_options() {
            let values = matches.get_many::<String>(spec.key).into_iter().flatten();
            for value in values {
                given.push(match spec.prefix() {
                    // A family's flag gives `name=value`: the key is `<prefix><name>`.
                    Some(prefix) => {
                        let (name, value) = value.split_once('=').unwrap_or((value, ""));
                        (format!("{prefix}{name}"), value.to_string())
                    }
                    None => (spec.key.to_string(), value.clone()),
                });
            }
        }
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
            let arg = Arg::new(spec.key)
                .help(help)
                .help_heading("The plugin's options (metrics.reporter.autotune.<option>)");
            cmd.arg(match spec.prefix() {
                // `--kafka.properties sasl.mechanism=PLAIN`, as often as there are properties.
                Some(prefix) => arg
                    .long(prefix.trim_end_matches('.'))
                    .value_name("NAME=VALUE")
                    .action(ArgAction::Append),
                None => arg.long(spec.key).value_name("VALUE"),
            })
        })
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(args: &[&str]) -> Options {
        let cmd = LoopFlags::augment_args(clap::Command::new("watch"));
        let matches = cmd
            .try_get_matches_from(std::iter::once("watch").chain(args.iter().copied()))
            .expect("flags");
        LoopFlags::from_arg_matches(&matches)
            .unwrap()
            .options(&[])
            .unwrap()
    }

    #[test]
    fn a_family_of_options_is_one_flag_given_once_per_entry() {
        let o = parsed(&[
            "--kafka.bootstrap-servers",
            "127.0.0.1:9092",
            "--kafka.properties",
            "security.protocol=SASL_PLAINTEXT",
            "--kafka.properties",
            "sasl.jaas.config=x required username=\"u\" password=\"p=q\";",
        ]);
        assert_eq!(o.kafka_bootstrap_servers.as_deref(), Some("127.0.0.1:9092"));
        assert_eq!(o.kafka_properties["security.protocol"], "SASL_PLAINTEXT");
        assert!(o.kafka_properties["sasl.jaas.config"].ends_with("password=\"p=q\";"));
    }
}
