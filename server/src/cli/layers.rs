//! The settings file under the environment under the command line.
//!
//! The file's keys are turned into flags placed before the user's own arguments, and the
//! whole is parsed by the one clap definition: every flag is a file key with the same checks
//! and messages, and a new flag needs nothing here. A key is left out when its flag or its
//! environment variable is set, because a flag in the arguments would otherwise beat the
//! environment.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{ArgMatches, Command};

/// The system-wide settings file, read when the user has none.
const SYSTEM_FILE: &str = "/etc/papo/server.toml";
/// Arguments that are about the settings rather than settings themselves.
const NOT_IN_FILE: [&str; 4] = ["config", "print-config", "help", "version"];

/// Parsed arguments with the settings file under them.
#[derive(Debug)]
pub struct Layered {
    /// What clap parsed, file keys included.
    pub matches: ArgMatches,
    /// The settings file read, if any.
    pub file: Option<PathBuf>,
}

impl Layered {
    /// Parses `args` (program name first) for `command`, under the settings file that
    /// `--config` names, or else the first of the user's and the system's that exists.
    pub fn load(mut command: Command, args: &[OsString]) -> Result<Self, clap::Error> {
        // Only to learn which file to read and what the user set: errors in the arguments
        // are reported by the full parse below, which the file may complete.
        let own = command.clone().ignore_errors(true).try_get_matches_from(args)?;
        let file = match own.get_one::<PathBuf>("config") {
            Some(explicit) => explicit.clone(),
            None => match default_file() {
                Some(found) => found,
                None => return Ok(Self { matches: command.try_get_matches_from(args)?, file: None }),
            },
        };
        let text = std::fs::read_to_string(&file).map_err(|e| {
            command.error(ErrorKind::Io, format!("cannot read the settings file {}: {e}", file.display()))
        })?;
        let from_file = file_flags(&command, &own, &text).map_err(|e| {
            command.error(ErrorKind::InvalidValue, format!("settings file {}: {e}", file.display()))
        })?;
        let mut combined = args[..1].to_vec();
        combined.extend(from_file);
        combined.extend_from_slice(&args[1..]);
        match command.clone().try_get_matches_from(&combined) {
            Ok(matches) => Ok(Self { matches, file: Some(file) }),
            // --help and --version.
            Err(e) if e.exit_code() == 0 => Err(e),
            Err(e) => match command.clone().try_get_matches_from(args) {
                // The user's own arguments are wrong, whatever the file says.
                Err(own) if own.kind() == e.kind() => Err(own),
                _ => {
                    Err(command.error(e.kind(), format!("settings file {}: {}", file.display(), message(&e))))
                }
            },
        }
    }
}

/// The user's settings file if it exists, else the system's if it exists.
fn default_file() -> Option<PathBuf> {
    let user = directories::ProjectDirs::from("", "", "papo-server")
        .map(|dirs| dirs.config_dir().join("config.toml"));
    user.into_iter().chain([PathBuf::from(SYSTEM_FILE)]).find(|path| Path::new(path).is_file())
}

/// The file's settings as `--key=value` arguments, leaving out those the user set.
fn file_flags(command: &Command, own: &ArgMatches, text: &str) -> Result<Vec<OsString>, String> {
    let table: toml::Table =
        text.parse().map_err(|e: toml::de::Error| e.to_string().trim_end().to_owned())?;
    let mut flags = Vec::new();
    for (key, value) in table {
        let arg = command
            .get_arguments()
            .find(|arg| arg.get_long() == Some(key.as_str()) && !NOT_IN_FILE.contains(&key.as_str()))
            .ok_or_else(|| unknown_key(command, &key))?;
        let user_set = matches!(
            own.value_source(arg.get_id().as_str()),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        );
        if user_set {
            continue;
        }
        if !arg.get_action().takes_values() {
            match value {
                toml::Value::Boolean(true) => flags.push(format!("--{key}").into()),
                toml::Value::Boolean(false) => {}
                other => return Err(format!("`{key}` is true or false, not {other}")),
            }
            continue;
        }
        let value = match value {
            toml::Value::String(text) => text,
            toml::Value::Integer(number) => number.to_string(),
            other => return Err(format!("`{key}` takes a string or a whole number, not {other}")),
        };
        flags.push(format!("--{key}={value}").into());
    }
    Ok(flags)
}

fn unknown_key(command: &Command, key: &str) -> String {
    let keys: Vec<&str> = command
        .get_arguments()
        .filter_map(|arg| arg.get_long())
        .filter(|long| !NOT_IN_FILE.contains(long))
        .collect();
    let dashed = key.replace('_', "-");
    if keys.contains(&dashed.as_str()) {
        return format!("unknown setting `{key}`; did you mean `{dashed}`?");
    }
    format!("unknown setting `{key}`; the settings are {}", keys.join(", "))
}

/// A clap error's message alone, on one line, without its usage and advice.
pub fn message(error: &clap::Error) -> String {
    let rendered = error.render().to_string();
    let text: Vec<&str> =
        rendered.lines().take_while(|line| !line.trim().is_empty()).map(str::trim).collect();
    let text = text.join(" ");
    text.strip_prefix("error: ").unwrap_or(&text).to_owned()
}
